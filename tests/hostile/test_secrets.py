"""Secrets never reach a written cassette, whatever their shape, place or encoding.

The writer is driven directly (as vcrpy drives it) with hostile interactions; every written
file is then read back *decoded* (``!!binary`` bodies, gzip and deflate) and searched.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from vcr.request import Request

from pytest_crewguard.errors import CassetteError
from pytest_crewguard.persister import AtomicYamlPersister, ReadableYamlSerializer
from pytest_crewguard.scrubbing import PLACEHOLDER, scrub_request
from pytest_crewguard.testing.scripted_provider import Reply

from ..conftest import answer, crew_test_file, recorded_then_replayed

HEX_KEY = "9f3c2a71b8e04d5f9a6c1e2d3b4f5a6c"  # no provider prefix: only its place gives it away
ENV_KEY = "dsx-7Hq2Lm9Xv4Tz8Rw1Kp6Nc3Bj"  # $DEEPSEEK_API_KEY here; not key-shaped
SK_KEY = "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"


@pytest.fixture(autouse=True)
def _deepseek_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", ENV_KEY)


def _response(body: Any, headers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Type": ["application/json"], **(headers or {})},
        "body": {"string": body},
    }


def _request(uri: str = "https://api.example.com/v1/chat", body: Any = b"{}", **headers: str) -> Request:
    return Request("POST", uri, body, {"Content-Type": "application/json", **headers})


def _save(path: Path, request: Request, response: dict[str, Any]) -> None:
    AtomicYamlPersister.save_cassette(
        path, {"requests": [request], "responses": [response]}, ReadableYamlSerializer
    )


def _decode(value: Any) -> str:
    if isinstance(value, bytes):
        for unpack in (gzip.decompress, zlib.decompress, lambda b: zlib.decompress(b, -15)):
            try:
                value = unpack(value)
                break
            except Exception:
                continue
        return value.decode("latin-1")
    return str(value)


def _everything(path: Path) -> str:
    """Every string of the cassette, bodies decoded, headers and URIs included."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                parts.append(str(key))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        else:
            parts.append(_decode(node))

    walk(yaml.safe_load(path.read_text()))
    return "\n".join(parts)


def _written_without(path: Path, *secrets: str) -> str:
    text = _everything(path)
    for secret in secrets:
        assert secret not in text, f"{secret!r} was written to {path}"
    assert PLACEHOLDER in text  # scrubbed, not dropped: recording went on
    return text


@pytest.mark.parametrize(
    "header",
    ["Ocp-Apim-Subscription-Key", "Helicone-Auth", "X-Auth-Token", "X-Portkey-Api-Key", "X-Session-Id",
     "X-Pass"],
)
def test_credential_named_request_headers_are_scrubbed_whatever_the_value(tmp_path, header):
    path = tmp_path / "c.yaml"
    _save(path, _request(**{header: HEX_KEY}), _response(b"{}"))
    _written_without(path, HEX_KEY)


def test_credential_named_response_headers_are_scrubbed(tmp_path):
    path = tmp_path / "c.yaml"
    _save(path, _request(), _response(b"{}", {"X-Session-Token": [HEX_KEY]}))
    _written_without(path, HEX_KEY)


@pytest.mark.parametrize("param", ["KEY", "Key", "api_key", "code", "sig", "access_token"])
def test_credential_query_parameters_are_scrubbed_in_any_case(tmp_path, param):
    path = tmp_path / "c.yaml"
    uri = f"https://fn.azurewebsites.net/api/chat?model=x&{param}={HEX_KEY}&stream=true"
    _save(path, _request(uri), _response(b"{}"))
    text = _written_without(path, HEX_KEY)
    assert "model=x" in text and "stream=true" in text  # the rest of the URL is kept


def test_credential_json_fields_are_scrubbed_at_any_depth(tmp_path):
    path = tmp_path / "c.yaml"
    body = json.dumps({"model": "m", "max_tokens": 5, "extra": {"auth": [{"api_key": HEX_KEY}]}})
    call = {"function": {"name": "lookup", "arguments": json.dumps({"q": "x", "apiKey": HEX_KEY[::-1]})}}
    reply = json.dumps(
        {"choices": [{"message": {"tool_calls": [call]}}],
         "meta": {"clientSecret": HEX_KEY, "logprobs": [{"token": "Hi"}]}}
    )
    _save(path, _request(body=body.encode()), _response(reply.encode()))
    text = _written_without(path, HEX_KEY, HEX_KEY[::-1])
    assert '"max_tokens":5' in text.replace(" ", "") and '"token":"Hi"' in text.replace(" ", "")


def test_env_values_are_scrubbed_in_headers_uris_and_bodies_of_both_sides(tmp_path):
    path = tmp_path / "c.yaml"
    request = _request(
        f"https://api.example.com/v1/{ENV_KEY}/chat?user={ENV_KEY}",
        body=json.dumps({"messages": [{"content": f"my key is {ENV_KEY}"}]}).encode(),
        **{"X-Trace": f"ctx {ENV_KEY}"},
    )
    response = _response(f"echo {ENV_KEY}".encode(), {"X-Echo": [ENV_KEY]})
    _save(path, request, response)
    _written_without(path, ENV_KEY)


def test_env_values_inside_binary_and_compressed_bodies_are_scrubbed(tmp_path):
    path = tmp_path / "c.yaml"
    binary = b"\xff\xfe\x00 not utf-8 " + ENV_KEY.encode() + b" \x80\x81"
    packed = gzip.compress(json.dumps({"note": ENV_KEY, "api_key": HEX_KEY}).encode())
    request = _request(body=packed, **{"Content-Encoding": "gzip"})
    _save(path, request, _response(binary, {"Content-Type": ["application/octet-stream"]}))
    _written_without(path, ENV_KEY, HEX_KEY)
    # Still the same encodings, so a replayed request still matches and decodes.
    stored = yaml.safe_load(path.read_text())["interactions"][0]
    assert gzip.decompress(stored["request"]["body"]).startswith(b"{")
    assert stored["response"]["body"]["string"].startswith(b"\xff\xfe")


def test_deflate_compressed_response_is_scrubbed(tmp_path):
    path = tmp_path / "c.yaml"
    body = zlib.compress(f"token for you: {ENV_KEY}".encode())
    _save(path, _request(), _response(body, {"Content-Encoding": ["deflate"]}))
    _written_without(path, ENV_KEY)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe binary " + SK_KEY.encode() + b" \x80",  # stored as !!binary: the text scan missed it
        gzip.compress(f"secret {SK_KEY}".encode()),
        zlib.compress(f"secret {SK_KEY}".encode()),
    ],
    ids=["binary", "gzip", "deflate"],
)
@pytest.mark.parametrize("side", ["request", "response"])
def test_a_key_shaped_string_in_a_binary_or_compressed_body_refuses_the_write(tmp_path, body, side):
    path = tmp_path / "c.yaml"
    request = _request(body=body if side == "request" else b"{}")
    response = _response(body if side == "response" else b"{}", {"Content-Encoding": ["deflate"]})
    with pytest.raises(CassetteError) as refused:
        _save(path, request, response)
    message = str(refused.value)
    assert f"{side} body of interaction 1" in message and "Nothing was written" in message
    assert "sk-p…" in message and SK_KEY[:5] not in message  # at most 4 characters shown
    assert not path.exists()


def test_the_refusal_shows_at_most_four_characters_of_an_env_value(tmp_path, monkeypatch):
    # A value that looks like a key but is also an env value: shown as the variable's name.
    monkeypatch.setenv("OPENAI_API_KEY", SK_KEY)
    path = tmp_path / "c.yaml"
    with pytest.raises(CassetteError) as refused:
        # The body is binary and the key is split from the env value's usual form: only the
        # key shape is left to find.
        _save(path, _request(body=b"\xff" + SK_KEY[:-1].encode() + b"!"), _response(b"{}"))
    assert SK_KEY[:5] not in str(refused.value) and "sk-p…" in str(refused.value)


def test_short_or_ordinary_env_values_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURE_TOKEN", "true")
    monkeypatch.setenv("RETRY_SECRET", "1")
    path = tmp_path / "c.yaml"
    _save(path, _request(body=b'{"stream": true, "n": 1}'), _response(b'{"ok": true}'))
    text = _everything(path)
    assert '"stream": true' in text and '"ok": true' in text and PLACEHOLDER not in text


def test_words_that_merely_contain_sk_dash_are_not_keys(tmp_path):
    path = tmp_path / "c.yaml"
    body = b'{"tools": ["risk-assessment-calculator-v2", "disk-usage-report-generator-tool"]}'
    _save(path, _request(body=body), _response(b"{}"))
    assert "risk-assessment-calculator-v2" in _everything(path)


def test_a_scrubbed_request_still_matches_the_same_live_request():
    """vcrpy filters live requests with the same hook before matching."""
    live = _request(f"https://x/api?code={HEX_KEY}", body=json.dumps({"api_key": ENV_KEY}).encode(),
                    **{"Helicone-Auth": HEX_KEY})
    first, second = scrub_request(live), scrub_request(_request(
        f"https://x/api?code={HEX_KEY}", body=json.dumps({"api_key": ENV_KEY}).encode(),
        **{"Helicone-Auth": HEX_KEY}))
    assert (first.uri, first.body, dict(first.headers)) == (second.uri, second.body, dict(second.headers))
    assert HEX_KEY not in first.uri and ENV_KEY.encode() not in first.body


def test_rerecording_keeps_the_file_mode_and_new_files_follow_the_umask(tmp_path):
    old_umask = os.umask(0o022)
    try:
        new = tmp_path / "new.yaml"
        _save(new, _request(), _response(b"{}"))
        assert stat.S_IMODE(new.stat().st_mode) == 0o644  # not mkstemp's 0600
        kept = tmp_path / "kept.yaml"
        kept.write_text("interactions: []\nversion: 1\n")
        kept.chmod(0o640)
        _save(kept, _request(), _response(b"{}"))
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    finally:
        os.umask(old_umask)


SECRET_IN_PROMPT = """
@pytest.mark.crewguard(record_mode="new_episodes")
def test_research(crewguard):
    run = crewguard.kickoff(make_crew, inputs={"topic": "the account " + os.environ["DEEPSEEK_API_KEY"]})
    assert run.llm_calls == 1
"""


def test_an_env_value_in_prompt_and_answer_is_scrubbed_and_replay_still_matches(pytester, provider):
    server = provider([answer(f"Noted the account {ENV_KEY}.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, SECRET_IN_PROMPT))
    pytester.runpytest().assert_outcomes(passed=1)
    assert any(ENV_KEY in r.prompt_text for r in server.llm_requests)  # it did go out
    cassette = Path(pytester.path) / "cassettes" / "test_crew" / "test_research.yaml"
    _written_without(cassette, ENV_KEY)
    server.stop()
    # The live request carries the value again; it is scrubbed the same way before matching.
    pytester.runpytest("--crewguard-record-mode=none").assert_outcomes(passed=1)


GATEWAY_LLM = (
    "return LLM(model=MODEL, base_url=BASE_URL, "
    "default_headers={'Ocp-Apim-Subscription-Key': %r, 'Helicone-Auth': 'Bearer ' + %r}, "
    "default_query={'code': %r})"
)


def test_gateway_credentials_in_headers_and_query_are_scrubbed_and_replay_still_matches(pytester, provider):
    """An API gateway's subscription key, auth header and ``?code=`` through a real crew."""
    header_key, auth_key, code_key = HEX_KEY, HEX_KEY[::-1], "c0de" + HEX_KEY[4:]
    server = provider([answer("Through the gateway.")])
    source = crew_test_file(server.openai_base_url, SECRET_IN_PROMPT).replace(
        "return LLM(model=MODEL, base_url=BASE_URL)", GATEWAY_LLM % (header_key, auth_key, code_key)
    )
    pytester.makepyfile(test_crew=source)
    pytester.runpytest().assert_outcomes(passed=1)
    sent = server.requests[-1]
    assert header_key in str(sent.headers) and code_key in sent.path  # they did go out
    cassette = Path(pytester.path) / "cassettes" / "test_crew" / "test_research.yaml"
    _written_without(cassette, header_key, auth_key, code_key, ENV_KEY)
    server.stop()
    pytester.runpytest(
        "--crewguard-record-mode=none", "--crewguard-report=r.json", "--crewguard-html=r.html"
    ).assert_outcomes(passed=1)
    # The reports name each call's URL: scrubbed as in the cassette (the key was written there).
    report = json.loads((Path(pytester.path) / "r.json").read_text())
    [call] = report["tests"]["test_crew.py::test_research"]["calls"]
    assert call["url"].endswith("/chat/completions?code=crewguard-scrubbed")
    html = (Path(pytester.path) / "r.html").read_text()
    assert code_key not in html and "?code=crewguard-scrubbed" in html


def test_a_refused_error_answer_is_told_without_the_keys_in_its_url_and_text(tmp_path, monkeypatch) -> None:
    # The request as sent (query keys) and the provider's text quoting the refused key were
    # printed, and written into the JUnit XML failure.
    from pytest_crewguard import vcr_setup
    from pytest_crewguard.wire import WireLog

    key = "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"
    monkeypatch.setenv("SERPER_KEY", "9f3c2a71b4d5e6f7a8b9")
    with vcr_setup.cassette(tmp_path / "c.yaml", "once") as cassette:
        wire = WireLog(cassette, nodeid="t.py::test_x", record_mode="once", cassette_path="c.yaml",
                       cassette_exists=False)
        sent = Request("POST", "https://x/v1/chat/completions?key=9f3c2a71b4d5e6f7a8b9&api-key=abc12345678",
                       "{}", {})
        wire.refused_errors.append((sent, 401, f"Incorrect API key provided: {key}"))
        [problem] = wire.error_answers()
    assert key not in problem and "9f3c2a71b4d5e6f7a8b9" not in problem and "abc12345678" not in problem
    assert "with HTTP 401: Incorrect API key provided: sk-p" in problem


def _stream(chunks: list[dict[str, Any]]) -> str:
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


def test_a_secret_a_model_streamed_in_pieces_is_refused(tmp_path, monkeypatch) -> None:
    # No one chunk holds it, so nothing scrubbed it and the cassette was written with it.
    from pytest_crewguard.secret_refusal import refuse_secrets

    monkeypatch.setenv("DEEPSEEK_API_KEY", "dsx-7Hq2Lm9Xv4Tz8Rw1Kp6Nc3Bj")
    answer = "the key is dsx-7Hq2Lm9Xv4Tz8Rw1Kp6Nc3Bj, keep it safe"
    pieces = [answer[i:i + 5] for i in range(0, len(answer), 5)]
    openai = _stream([{"id": "c1", "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces])
    anthropic = _stream(
        [{"type": "content_block_delta", "delta": {"type": "text_delta", "text": p}} for p in pieces]
    )
    for body in (openai, anthropic):
        response = {"status": {"code": 200, "message": "OK"}, "body": {"string": body},
                    "headers": {"content-type": ["text/event-stream"]}}
        request = {"method": "POST", "uri": "https://x/v1", "body": "{}", "headers": {}}
        with pytest.raises(CassetteError) as refused:
            interaction = {"request": request, "response": response}
            refuse_secrets(str(tmp_path / "c.yaml"), "the file's text", [interaction])
        expected = "(dsx-…) in the response body of interaction 1, split across the stream's chunks"
        assert expected in str(refused.value)


def test_credential_query_parameters_are_told_by_their_words_and_url_passwords_scrubbed() -> None:
    # Only exact names were scrubbed: auth_token, client-secret, X-Amz-Signature were written.
    from pytest_crewguard.scrubbing import scrub_uri

    uri = scrub_uri(
        "https://x/v1?auth_token=a1&refresh_token=r1&client-secret=s1&X-Amz-Signature=g1"
        "&X-Amz-Security-Token=t1&api-version=2024-06-01&max_tokens=5",
        [],
    )
    for value in ("a1", "r1", "s1", "g1", "t1"):
        assert f"={value}" not in uri
    assert "api-version=2024-06-01" in uri and "max_tokens=5" in uri  # not credentials
    assert scrub_uri("https://app:Hunter2Hunter2@db.example/q", []) == f"https://app:{PLACEHOLDER}@db.example/q"


def test_json_held_in_a_string_after_whitespace_is_scrubbed_too() -> None:
    from pytest_crewguard.scrubbing import scrub_body

    body = json.dumps({"arguments": ' \n {"api_key": "abc123456789", "q": "x"}'})
    scrubbed = json.loads(scrub_body(body, {}, []))
    assert json.loads(scrubbed["arguments"]) == {"api_key": PLACEHOLDER, "q": "x"}


def test_credential_fields_of_a_form_encoded_body_are_scrubbed() -> None:
    # An OAuth token request recorded by a tool: client_secret and password were written.
    from pytest_crewguard.scrubbing import scrub_body

    form = {"Content-Type": ["application/x-www-form-urlencoded"]}
    body = "grant_type=password&username=app&password=Hunter2Hunter2&client_secret=cs-0123456789"
    scrubbed = scrub_body(body, form, [])
    assert "Hunter2Hunter2" not in scrubbed and "cs-0123456789" not in scrubbed
    assert scrubbed.startswith("grant_type=password&username=app&password=crewguard-scrubbed")
    assert scrub_body("page=2&size=10", form, []) == "page=2&size=10"  # nothing to scrub: as it was


def test_credential_parts_of_a_multipart_body_are_scrubbed() -> None:
    # An upload (a transcription, a file for a tool) with the key in a form field.
    from pytest_crewguard.scrubbing import scrub_body

    form = {"Content-Type": ["multipart/form-data; boundary=XyZ"]}
    body = (
        '--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        '--XyZ\r\nContent-Disposition: form-data; name="api_key"\r\n\r\nab12cd34ef56gh78\r\n'
        '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n"
    )
    scrubbed = scrub_body(body, form, [])
    assert "ab12cd34ef56gh78" not in scrubbed
    assert scrubbed == body.replace("ab12cd34ef56gh78", PLACEHOLDER)  # nothing else changed
    assert scrub_body(scrubbed, form, []) == scrubbed


def test_a_credential_is_known_by_its_form_under_any_header_name_not_in_bodies() -> None:
    # Basic and Bearer credentials under names with no credential word in them; in a body the
    # same words are prose a replayed answer must keep.
    from pytest_crewguard.scrubbing import scrub_body, scrub_headers, scrub_response

    basic, bearer = "Basic YXBwOkh1bnRlcjJIdW50ZXIy", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"
    sent = {"X-Upstream": [basic.encode()], "X-Forward": f"{bearer}, {basic}", "Accept": "text/html"}
    headers = scrub_headers(sent, frozenset(), [])
    assert headers == {"X-Upstream": [f"Basic {PLACEHOLDER}".encode()],
                       "X-Forward": f"Bearer {PLACEHOLDER}, Basic {PLACEHOLDER}", "Accept": "text/html"}
    import base64

    for pair in (":my-pat-0123456789", "user:pässwörd"):  # a personal access token; a UTF-8 password
        credential = "Basic " + base64.b64encode(pair.encode()).decode()
        scrubbed_header = scrub_headers({"X-Upstream": credential}, frozenset(), [])
        assert scrubbed_header == {"X-Upstream": f"Basic {PLACEHOLDER}"}
    challenge = {"WWW-Authenticate": 'Bearer resource_metadata="https://mcp.example/.well-known/oauth"'}
    assert scrub_headers(challenge, frozenset(), []) is challenge  # a server's challenge: no credential
    answer = {"text": "Basic Overview", "note": "Bearer YOUR_API_KEY_HERE", "topic": "Basic concepts"}
    response = scrub_response({"status": {"code": 200, "message": "OK"}, "headers": {},
                               "body": {"string": json.dumps(answer).encode()}})
    assert json.loads(response["body"]["string"]) == answer
    assert scrub_body(json.dumps(answer), {}, []) == json.dumps(answer)


def test_bodies_that_defeated_the_scrubber_are_scrubbed_or_left_whole() -> None:
    from pytest_crewguard.scrubbing import scrub_body

    form = b"grant_type=client_credentials&client_secret=hunter2hunter2"
    assert scrub_body(form, {"Content-Type": "text/plain"}, []) == form  # text: nothing to scrub
    # The same bytes as a form: not taken for the text checked a moment ago.
    assert b"hunter2" not in scrub_body(form, {"Content-Type": "application/x-www-form-urlencoded"}, [])
    with_bom = ("\ufeff" + json.dumps({"access_token": "at-0123456789abcdefXYZ"})).encode()
    scrubbed = scrub_body(with_bom, {"Content-Type": "application/json"}, [])
    assert b"at-0123" not in scrubbed and scrubbed.startswith("\ufeff".encode())
    latin = b'{"api_key":"abcdefgh12345678","note":"caf\xe9 \\u2019"}'  # not UTF-8, an escape beyond Latin-1
    assert b"abcdefgh" not in scrub_body(latin, {"Content-Type": "application/json"}, [])
    # A credential field holding more than one string; one described by a schema is left as it is.
    fields = {"api_key": ["k-0123456789"], "password": {"value": "pw-0123456789"}}
    nested = json.loads(scrub_body(json.dumps(fields), {}, []))
    assert nested == {"api_key": [PLACEHOLDER], "password": {"value": PLACEHOLDER}}
    schema = {"properties": {"password": {"type": "string", "description": "The database password"}}}
    assert json.loads(scrub_body(json.dumps(schema), {}, [])) == schema
    # Nested deeper than the parser goes, beside a credential field.
    for depth in (500, 2000):
        deep_secret = f'{{"client_secret":"hunter2hunter2","password":{"[" * depth}"x"{"]" * depth}}}'
        assert "hunter2" not in scrub_body(deep_secret, {"Content-Type": "application/json"}, [])
    deep = b"[" * 100_000
    assert scrub_body(deep, {"Content-Type": "application/json"}, []) == deep  # no RecursionError


ECHOED = """
import os

import httpx
import pytest

KEY = "Qq8vW2mN4xR7tY1uI3oP5aS6dF9gCCC3"  # in the code, not in a credential-named variable


@pytest.mark.crewguard
def test_echo(crewguard):
    base = os.environ["ECHO_URL"]
    with httpx.Client() as client:
        client.get(base + "/q?api_key=" + KEY)
        client.post(base + "/f", data={"api_key": KEY})
        client.post(base + "/j", json={"client_secret": KEY})
        client.get(base + "/h", headers={"Authorization": "Bearer " + KEY})
        client.get(base + "/x", headers={"x-api-key": "Kx7vW2mN4xR7tY1uI3oP5aS6dF9gDDD4"})  # a dropped header
"""


def _echo_server() -> Any:
    """An HTTP server on 127.0.0.1 answering every request with its path, headers and body."""
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def _echo(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.dumps({"path": self.path, "headers": dict(self.headers),
                               "body": self.rfile.read(length).decode()}).replace("/", "\\/")
            if self.path == "/x":  # an error quoting the key, as providers' do
                quoted = f"Incorrect API key provided: {self.headers['x-api-key']}"
                body = json.dumps({"error": {"message": quoted}})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _echo

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_credential_sent_by_name_is_scrubbed_where_the_server_echoes_it(
    pytester, monkeypatch, crewai_loaded
) -> None:
    # The request's credential fields were replaced, the response that quoted them kept them.
    server = _echo_server()
    monkeypatch.setenv("ECHO_URL", f"http://127.0.0.1:{server.server_port}")
    try:
        pytester.makepyfile(test_echo=ECHOED)
        pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    finally:
        server.shutdown()
    text = _written_without(Path(pytester.path) / "cassettes" / "test_echo" / "test_echo.yaml",
                            "Qq8vW2mN4xR7tY1uI3oP5aS6dF9gCCC3", "Kx7vW2mN4xR7tY1uI3oP5aS6dF9gDDD4")
    assert text.count(PLACEHOLDER) >= 4 + 2  # each echo, and the requests named by field


def test_secret_forms_cover_json_in_json_and_escaped_slashes() -> None:
    from pytest_crewguard.secret_values import secret_forms

    value = "wJalrXUtnFEMI/K7MDENG/bPxRfi\"CYEX"
    forms = secret_forms(value)
    as_tool_arguments = json.dumps({"arguments": json.dumps({"note": value})})
    assert any(form in as_tool_arguments for form in forms if form != value)
    assert "wJalrXUtnFEMI\\/K7MDENG\\/bPxRfi\\\"CYEX" in forms


SECRET_AS_PARAMETER = """
import os


@pytest.mark.crewguard
@pytest.mark.parametrize("account", [os.environ["DEEPSEEK_API_KEY"]])
def test_research(crewguard, account):
    crewguard.kickoff(make_crew, inputs={"topic": "AI agents"})
"""


def test_a_secret_given_as_a_parameter_is_in_no_file_name_or_report(pytester, provider):
    server = provider([answer("Noted.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, SECRET_AS_PARAMETER))
    pytester.runpytest(
        "--crewguard-record-mode=once", "--crewguard-report=r.json", "--crewguard-markdown=r.md"
    ).assert_outcomes(passed=1)
    written = [p for p in Path(pytester.path).rglob("*") if p.is_file()]
    assert not [p for p in written if ENV_KEY in str(p)]
    [cassette] = (Path(pytester.path) / "cassettes").rglob("*.yaml")
    assert cassette.name == f"test_research-{PLACEHOLDER}.yaml"
    for report in ("r.json", "r.md"):
        text = (Path(pytester.path) / report).read_text()
        assert ENV_KEY not in text and f"test_research[{PLACEHOLDER}]" in text


WORD_AS_SECRET = """
@tool("unlock")
def unlock(secret: str) -> str:
    \"\"\"Unlock the door with the secret word.\"\"\"
    return "unlocked"


@pytest.mark.crewguard
def test_door(crewguard):
    crew = make_crew(description="Open the lighthouse door; the secret word is lighthouse.", tools=[unlock])
    assert "open" in crewguard.kickoff(crew).output.raw
"""


def test_a_tool_argument_named_secret_is_no_credential_to_scrub_everywhere(pytester, provider):
    # The model's tool call {"secret": "lighthouse"} made "lighthouse" a secret scrubbed from
    # every later request: the cassette just recorded then never replayed.
    server = provider(tool_once("unlock", "The lighthouse door is open.", secret="lighthouse"))
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, WORD_AS_SECRET))
    for result in recorded_then_replayed(pytester, server):
        result.assert_outcomes(passed=1)
    cassette = (Path(pytester.path) / "cassettes" / "test_crew" / "test_door.yaml").read_text()
    assert "Open the lighthouse door" in cassette


def test_only_credential_shaped_values_are_remembered() -> None:
    from pytest_crewguard.secret_values import _credential_like

    assert _credential_like("Qq8vW2mN4xR7tY1uI3oP5aS6dF9gCCC3")
    assert _credential_like("sk-proj-abcdefghijkl")
    assert not _credential_like("lighthouse") and not _credential_like("keeperswordsmith")
    assert not _credential_like("Abc123")


def tool_once(name: str, answer: str = "Done.", **arguments: Any) -> Callable[[Any], Reply]:
    """A script: call the tool ``name`` with ``arguments`` while tools are offered and none was
    called yet, then answer ``answer``."""

    def reply(request: Any) -> Reply:
        if request.body.get("tools") and not any(m.get("role") == "tool" for m in request.body["messages"]):
            return Reply.tool(name, **arguments)
        return Reply(text=answer)

    return reply


def sends_then_prompts(call: str, test: str) -> str:
    """A test whose crew's tool sends TOKEN with ``call`` (an httpx call to $ECHO_URL), then
    quotes it to the model in its result."""
    return f"""
import os

import httpx

TOKEN = "Zx9Qw7Er5Ty3Ui1Op"  # in the code, not in a credential-named variable


@tool("fetch_profile")
def fetch_profile(q: str) -> str:
    \"\"\"Fetch the profile.\"\"\"
    {call}
    return "profile fetched for account " + TOKEN


@pytest.mark.crewguard
def {test}(crewguard):
    crewguard.kickoff(lambda: make_crew(tools=[fetch_profile]), inputs={{"topic": "x"}})

"""


SENT_THEN_PROMPTED = sends_then_prompts(
    'httpx.post(os.environ["ECHO_URL"] + "/profile", json={"user": "bob", "access_token": TOKEN})',
    "test_a_sends_then_prompts",
) + """
@pytest.mark.crewguard
def test_b_prompts_only(crewguard):
    crew = make_crew(description="Summarise {topic} for account " + TOKEN)
    crewguard.kickoff(crew, inputs={"topic": "y"})
"""


def test_a_remembered_credential_changes_no_request_and_no_other_test(pytester, provider, monkeypatch):
    # Remembered credentials scrubbed requests too: a prompt holding one was recorded scrubbed
    # and replayed raw (a miss), and one test's credential changed the next test's cassette.
    server = provider(tool_once("fetch_profile", q="me"))
    echo = _echo_server()
    monkeypatch.setenv("ECHO_URL", f"http://127.0.0.1:{echo.server_port}")
    try:
        pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, SENT_THEN_PROMPTED))
        pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=2)
    finally:
        echo.shutdown()
    server.stop()
    pytester.runpytest().assert_outcomes(passed=2)
    # A process of its own: what this one remembered must not help the test replay.
    pytester.runpytest_subprocess("-k", "b_prompts", timeout=120).assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:randomly", "-k", "b_prompts or a_sends").assert_outcomes(passed=2)
    # The field by name, its echo and the tool's result in the next prompt as remembered: the
    # recording holds it nowhere, and still replays (the same scrubbing, request by request).
    path = Path(pytester.path) / "cassettes" / "test_crew" / "test_a_sends_then_prompts.yaml"
    assert "Zx9Qw7Er5Ty3Ui1Op" not in path.read_text()
