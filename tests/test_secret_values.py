"""The scrubber's view of the environment: remembered while it is unchanged, never stale."""

from __future__ import annotations

import json
import os
import threading

import pytest

from pytest_crewguard.genai_price import genai_quote
from pytest_crewguard.scrubbing import SECRET_HEADERS, scrub_body, scrub_headers
from pytest_crewguard.secret_values import PLACEHOLDER, secret_env_values, secrets_fixed
from pytest_crewguard.usage import Usage

FIRST = "first-value-of-the-secret-0123456789"
SECOND = "second-value-of-the-secret-9876543210"


def test_a_secret_set_or_changed_later_is_scrubbed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", FIRST)
    assert ("MY_SERVICE_API_KEY", FIRST) in secret_env_values()
    assert scrub_body(f"uses {FIRST}", {}, secret_env_values()) == f"uses {PLACEHOLDER}"
    monkeypatch.setenv("MY_SERVICE_API_KEY", SECOND)
    assert ("MY_SERVICE_API_KEY", SECOND) in secret_env_values()
    assert ("MY_SERVICE_API_KEY", FIRST) not in secret_env_values()
    monkeypatch.delenv("MY_SERVICE_API_KEY")
    assert all(name != "MY_SERVICE_API_KEY" for name, _ in secret_env_values())


def test_secrets_fixed_for_every_thread_hold_until_the_block_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", FIRST)
    seen: list[list[tuple[str, str]]] = []

    def in_a_worker() -> None:
        seen.append(secret_env_values())

    with secrets_fixed():
        monkeypatch.setenv("MY_SERVICE_API_KEY", SECOND)
        worker = threading.Thread(target=in_a_worker)
        worker.start()
        worker.join()
    assert ("MY_SERVICE_API_KEY", FIRST) in seen[0]  # the worker saw the values fixed at the start
    assert ("MY_SERVICE_API_KEY", SECOND) in secret_env_values()  # afterwards, the environment again


def test_a_body_without_credential_fields_comes_back_as_it_was() -> None:
    body = b'{"messages":[{"role":"user","content":"{\\"note\\": \\"keys and tokens\\"}"}],"max_tokens":5}'
    assert scrub_body(body, {}, []) is body
    nested = b'{"tool":{"arguments":"{\\"apiKey\\": \\"abc\\"}"}}'
    assert b"abc" not in scrub_body(nested, {}, [])


def test_a_body_found_clean_is_checked_again_under_other_secrets() -> None:
    body = f'{{"content": "uses {FIRST}"}}'.encode()
    assert scrub_body(body, {}, []) is body  # clean while nothing is secret, and remembered so
    assert scrub_body(body, {}, []) is body
    assert FIRST.encode() not in scrub_body(body, {}, [("MY_SERVICE_API_KEY", FIRST)])


def test_headers_come_back_as_they_were_only_when_clean() -> None:
    from vcr.request import HeadersDict

    secrets = [("MY_SERVICE_API_KEY", FIRST)]
    clean = HeadersDict({"Content-Type": "application/json", "X-Trace": ["a", "b"]})
    assert scrub_headers(clean, SECRET_HEADERS, secrets) is clean
    for headers in (
        HeadersDict({"Content-Type": "application/json", "AUTHORIZATION": "Bearer x"}),  # any case
        {"content-type": "application/json", "X-Echo": ["a", f"k={FIRST}"]},  # a secret in a value
    ):
        scrubbed = scrub_headers(headers, SECRET_HEADERS, secrets)
        assert scrubbed is not headers
        assert "AUTHORIZATION" not in scrubbed and FIRST not in str(scrubbed)
        assert "application/json" in scrubbed.values()


def test_a_remembered_price_is_the_price_of_that_usage() -> None:
    quote = genai_quote("openai", "gpt-4o-mini")
    assert quote is not None
    small, large = Usage(input_tokens=1000, output_tokens=100), Usage(input_tokens=10**6, output_tokens=10**5)
    first = [quote.cost(small), quote.cost(large)]
    assert first == [quote.cost(small), quote.cost(large)]
    assert first[1] == pytest.approx(first[0] * 1000)


@pytest.mark.parametrize("name", ["AZURE_OPENAI_KEY", "SERPER_KEY", "MYAPIKEY", "GITHUB_TOKEN"])
def test_any_key_named_variable_is_a_secret(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # AZURE_OPENAI_KEY and SERPER_KEY were written into cassettes verbatim (not key-shaped).
    value = "0123456789abcdef0123"
    monkeypatch.setenv(name, value)
    assert (name, value) in secret_env_values()


def test_public_keys_and_plain_names_are_not_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_PUBLIC_KEY", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA")
    monkeypatch.setenv("HOCKEY", "a long harmless value")
    names = {name for name, _ in secret_env_values()}
    assert not names & {"SSH_PUBLIC_KEY", "HOCKEY"}


def test_a_secret_escaped_in_a_json_string_is_scrubbed_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A quote, a backslash or a non-ASCII letter is escaped in JSON: the value was written as is.
    from pytest_crewguard.secret_refusal import find_secret

    monkeypatch.setenv("DB_PASSWORD", 'pa"ss\\w0rd/longer')
    monkeypatch.setenv("X_TOKEN", "pässwört-2024!")
    body = json.dumps({"content": f"db {os.environ['DB_PASSWORD']} and {os.environ['X_TOKEN']}"})
    assert 'pa\\"ss\\\\w0rd' in body and "p\\u00e4ssw" in body  # as JSON writes them
    scrubbed = scrub_body(body, {}, secret_env_values())
    assert json.loads(scrubbed)["content"] == f"db {PLACEHOLDER} and {PLACEHOLDER}"
    found = find_secret(body)
    assert found is not None and found[0].startswith("the value of $")


def test_credential_names_with_more_after_the_word_are_secrets_unless_it_names_something_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = {
        "OPENAI_API_KEY_2": "sk-second-key-0123456789abcdef",
        "SERPER_API_KEY2": "serper-second-0123456789abcdef",
        "ANTHROPIC_API_KEYS": "ant-one-0123456789,ant-two-0123456789",
        "GITHUB_TOKEN_RO": "ghp_readonly0123456789abcdef",
        "SECRET_KEY_BASE": "rails-secret-base-0123456789",
        "DB_PASS": "db-pass-0123456789abcdef",
        "GITHUB_PAT": "github_pat_0123456789abcdef",
        "GCP_CREDENTIALS": '{"private_key": "0123456789abcdef"}',
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/0123456789abcdef",
    }
    others = {
        "COMPASS_HEADING": "north-north-west",
        "CREDENTIALS_FILE": "/home/app/.config/credentials.json",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEID0123456",  # an id, not the secret
        "HF_TOKEN_PATH": "/home/app/.cache/token",  # where the secret is
        "OAUTH_TOKEN_URI": "https://oauth2.googleapis.com/token",
        "AZURE_KEY_VAULT_ENDPOINT": "https://my-vault.vault.azure.net/",
        "SECRET_MANAGER_PROJECT": "my-gcp-project-123",
        "MY_PUBLIC_KEY_2": "public-key-material-0123456789",
        "TOKENIZERS_PARALLELISM": "false-but-long-enough",
    }
    for name, value in {**secrets, **others}.items():
        monkeypatch.setenv(name, value)
    found = dict(secret_env_values())
    assert {name: found.get(name) for name in secrets} == secrets
    assert not set(others) & set(found)


def test_passwords_in_url_variables_are_secrets_in_their_urls_and_alone_when_they_look_like_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", '"postgresql://app:s3cr%40t-passw0rd@db.internal:5432/app"')  # quoted
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://u:FirstPassw0rd@h1//;amqp://u:SecondPassw0rd@h2//")
    monkeypatch.setenv("DEV_DB_URL", "postgresql://postgres:postgres@localhost:5432/postgres")  # a default
    monkeypatch.setenv("MONGO_SECRET", "mongodb://app:Tr0ub4dor-pw@db/app")  # credential-named too
    monkeypatch.setenv("SERVICE_HOME", "https://docs.example.com/path@v2")  # a URL, no password
    monkeypatch.setenv("REPO", "git+ssh://git@github.com/org/repo.git")  # a user, no password
    values = [value for _, value in secret_env_values()]
    for password in ("s3cr@t-passw0rd", "FirstPassw0rd", "SecondPassw0rd", "Tr0ub4dor-pw"):
        assert password in values
    assert "postgres" not in values and "postgres:postgres@" in values
    assert not any("docs.example.com" in value or "git@" in value for value in values)
    body = json.dumps({"dsn": "postgresql://app:s3cr%40t-passw0rd@db.internal:5432/app",
                       "note": "the password is s3cr@t-passw0rd, the broker's SecondPassw0rd",
                       "answer": "Use postgres 16; the dev URL is postgresql://postgres:postgres@localhost"})
    scrubbed = json.loads(scrub_body(body.encode(), {}, secret_env_values()))
    assert "s3cr" not in json.dumps(scrubbed) and "SecondPassw0rd" not in scrubbed["note"]
    # A default password is scrubbed where it is a URL's, not in prose.
    assert scrubbed["answer"] == f"Use postgres 16; the dev URL is postgresql://{PLACEHOLDER}localhost"


def test_reading_url_passwords_stays_linear_on_long_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # A long run of scheme characters was tried at every position: 2.5 s per test for 100 KB.
    import time

    from pytest_crewguard import secret_values

    def took(value: str) -> float:
        monkeypatch.setenv("LONG_SETTING", value)
        best = float("inf")
        for _ in range(3):
            secret_values._secret_values.cache_clear()
            secret_values._credential_values.cache_clear()
            started = time.perf_counter()
            secret_env_values()
            best = min(best, time.perf_counter() - started)
        return best

    hostile = "ab12" * 25_000 + " postgres://app:S3cr3t-pw@db/app"
    assert took(hostile) < 20 * took("ab 1" * 25_000 + " postgres://app:S3cr3t-pw@db/app")
    assert "S3cr3t-pw" in [value for _, value in secret_env_values()]
