"""More ways a secret reached a written file (cassette, report, message), each kept out now."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from vcr.request import Request

from pytest_crewguard.errors import CassetteError
from pytest_crewguard.scrubbing import scrub_request, scrub_response
from pytest_crewguard.secret_values import forget_remembered

from ..conftest import answer, crew_test_file, recorded_then_replayed
from .test_secrets import (
    ENV_KEY,
    _echo_server,
    _everything,
    _request,
    _response,
    _save,
    sends_then_prompts,
    tool_once,
)

TOKEN = "Zx9Qw7Er5Ty3Ui1Op"  # sent by the tool under a credential header name


_tool_then_answer = tool_once("fetch_profile", q="me")


HEADER_THEN_PROMPTED = sends_then_prompts(
    'httpx.get(os.environ["ECHO_URL"] + "/profile", headers={"X-Api-Key": TOKEN})', "test_header"
)


def _recorded_against_echo(pytester: Any, monkeypatch: Any, source: str, test: str) -> str:
    """Record ``source`` (one test, ``test``, calling $ECHO_URL): its cassette's text, decoded."""
    echo = _echo_server()
    monkeypatch.setenv("ECHO_URL", f"http://127.0.0.1:{echo.server_port}")
    try:
        pytester.makepyfile(test_echo=source)
        pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    finally:
        echo.shutdown()
    return _everything(Path(pytester.path) / "cassettes" / "test_echo" / f"{test}.yaml")


def _files_holding(root: Path, secret: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in str(path) and not path.name.endswith(".py"):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if secret in text:
                found.append(str(path.relative_to(root)))
    return found


def test_a_credential_a_tool_sent_in_a_header_and_quoted_to_the_model_replays(
    pytester, provider, monkeypatch
):
    # Recorded, the header's value was remembered and scrubbed from the next prompt; replayed,
    # the headers of a request matched by method, URL and body were not read, so the prompt
    # kept it: a miss, whose message printed it (terminal, JUnit XML).
    server = provider(_tool_then_answer)
    echo = _echo_server()
    monkeypatch.setenv("ECHO_URL", f"http://127.0.0.1:{echo.server_port}")
    try:
        pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, HEADER_THEN_PROMPTED))
        pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    finally:
        echo.shutdown()
    server.stop()
    cassette = Path(pytester.path) / "cassettes" / "test_crew" / "test_header.yaml"
    assert TOKEN not in cassette.read_text()
    result = pytester.runpytest("--crewguard-record-mode=none", "--junitxml=junit.xml",
                                "--crewguard-report=r.json", "--crewguard-html=r.html")
    leaked = _files_holding(Path(pytester.path), TOKEN)
    assert TOKEN not in result.stdout.str() and not leaked, leaked
    result.assert_outcomes(passed=1)


FIELD_THEN_PROMPTED = sends_then_prompts(
    'httpx.post(os.environ["ECHO_URL"] + "/profile", json={"user": "bob", "access_token": TOKEN})',
    "test_field",
)


def test_the_html_report_scrubs_a_credential_the_test_sent_by_name(pytester, provider, monkeypatch):
    # The cassette had it scrubbed; the report's conversations only the environment's secrets.
    server = provider(_tool_then_answer)
    echo = _echo_server()
    monkeypatch.setenv("ECHO_URL", f"http://127.0.0.1:{echo.server_port}")
    try:
        pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, FIELD_THEN_PROMPTED))
        recorded = pytester.runpytest("--crewguard-record-mode=once", "--crewguard-html=rec.html")
        recorded.assert_outcomes(passed=1)
    finally:
        echo.shutdown()
    server.stop()
    cassette = Path(pytester.path) / "cassettes" / "test_crew" / "test_field.yaml"
    assert TOKEN not in cassette.read_text()
    pytester.runpytest("--crewguard-record-mode=none", "--crewguard-html=play.html").assert_outcomes(passed=1)
    leaked = _files_holding(Path(pytester.path), TOKEN)
    assert not leaked, leaked


CAMEL_QUERY = """
import os
import pytest

import httpx

KEY = "Qq8vW2mN4xR7tY1uI3oP5aS6dF9gCCC3"


@pytest.mark.crewguard
def test_camel(crewguard):
    base = os.environ["ECHO_URL"]
    httpx.get(base + "/q", params={"accessToken": KEY})
    httpx.post(base + "/f", data={"clientSecret": KEY + "x"})
    httpx.get(base + "/h", headers={"X-AccessToken": KEY + "y"})
"""


def test_camel_case_credential_names_in_query_form_and_headers_are_scrubbed(
    pytester, monkeypatch, crewai_loaded
):
    # Query parameters, form fields and headers were read by whole words only: accessToken,
    # clientSecret and x-accesstoken (clients send header names in lower case) were kept.
    text = _recorded_against_echo(pytester, monkeypatch, CAMEL_QUERY, "test_camel")
    key = "Qq8vW2mN4xR7tY1uI3oP5aS6dF9gCCC3"
    assert [k for k in (key, key + "x", key + "y") if k in text] == []


GATEWAY_CAMEL = "return LLM(model=MODEL, base_url=BASE_URL, default_query={'accessToken': %r})"
GATEWAY_KEY = "9f3c2a71b8e04d5f9a6c1e2d3b4f5a6c"


def test_a_camel_case_query_credential_of_the_llm_is_in_no_cassette_or_report(pytester, provider):
    server = provider([answer("Through the gateway.")])
    body = """
@pytest.mark.crewguard
def test_research(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI"})
"""
    source = crew_test_file(server.openai_base_url, body).replace(
        "return LLM(model=MODEL, base_url=BASE_URL)", GATEWAY_CAMEL % GATEWAY_KEY)
    pytester.makepyfile(test_crew=source)
    pytester.runpytest("--crewguard-record-mode=once", "--crewguard-report=r.json",
                       "--crewguard-html=r.html", "--crewguard-markdown=r.md").assert_outcomes(passed=1)
    leaked = _files_holding(Path(pytester.path), GATEWAY_KEY)
    assert not leaked, leaked


URL_FORMS = """
import os
import pytest
import httpx

KEY = "Kx7vW2mN4xR7tY1uI3oP5aS6dF9gDDD4"
GH = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
STRIPE = "rk_live_4eC39HqLyjWDarjtT1zdp7dc"


@pytest.mark.crewguard
def test_urls(crewguard):
    base = os.environ["ECHO_URL"]
    host = base.split("://")[1]
    httpx.get(base + "/me", headers={"X-Api-Key": KEY})
    httpx.get(base + "/keys/" + KEY + "/usage")  # the same key, in a later URL's path
    httpx.get(f"http://{GH}@{host}/user")  # a token as the URL's user name
    httpx.get(f"http://{STRIPE}:@{host}/v1/charges")  # user:<empty password>
"""


def test_credentials_in_later_urls_and_in_a_user_name_are_scrubbed(pytester, monkeypatch, crewai_loaded):
    text = _recorded_against_echo(pytester, monkeypatch, URL_FORMS, "test_urls")
    secrets = ("Kx7vW2mN4xR7tY1uI3oP5aS6dF9gDDD4", "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
               "rk_live_4eC39HqLyjWDarjtT1zdp7dc")
    assert [s for s in secrets if s in text] == []


DICT_RESULT = """
@tool("db_config")
def db_config(q: str) -> dict:
    \"\"\"Look up the database configuration.\"\"\"
    # As a vault / config API answered it (that HTTP answer is scrubbed by field name).
    return {"host": "db.internal", "user": "app", "password": "Pw-0123456789abcXYZ"}


@pytest.mark.crewguard
def test_dict(crewguard):
    crewguard.kickoff(lambda: make_crew(tools=[db_config]), inputs={"topic": "x"})
"""


def test_a_tools_dict_quoted_to_the_model_as_python_prints_it_loses_its_credential(pytester, provider):
    server = provider(tool_once("db_config", q="me"))
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, DICT_RESULT))
    for result in recorded_then_replayed(pytester, server):
        result.assert_outcomes(passed=1)
    text = _everything(Path(pytester.path) / "cassettes" / "test_crew" / "test_dict.yaml")
    assert "Pw-0123456789abcXYZ" not in text


# -- the writer and the scrubber driven directly, as vcrpy drives them ---------------------

ZSTD_ANSWER = base64.b64decode(  # an OpenAI answer quoting $DEEPSEEK_API_KEY and a key, zstd -19
    "KLUv/QRojQUAMosmFRD9yuef+Ar+8+xs1Z8NYIgIAAA4EHu478DiUsxbDbBFxFchY8acHbSG1Ftic8rdLbjH5F+QuvEbqHL6"
    "GOOUvBFhX0ueHXXHsFIBQ0pwy6SXUY9/1Qt4LLIsLXvR/xmNbU+2osfXlS5/LI5+RF939v+c/TnG4pd/7OW5/aYD+AaY2z+3"
    "7gjovgG+KcryZwEd9A0g/xF1zxHQAwUA5uoEpHPa/GUBFmrqsk9O/qszjCU8YQ=="
)


def test_an_answer_compressed_in_a_way_crewguard_cannot_read_is_refused(tmp_path, monkeypatch):
    # zstd (or br) is what a client asks for once zstandard (brotli) is installed: the body was
    # written opaque, secrets and all, and its usage could not be read either.
    monkeypatch.setenv("DEEPSEEK_API_KEY", ENV_KEY)
    path = tmp_path / "c.yaml"
    with pytest.raises(CassetteError, match="the response body of interaction 1 is compressed as 'zstd'"):
        _save(path, _request(), _response(ZSTD_ANSWER, {"Content-Encoding": ["zstd"]}))
    assert not path.exists()


def _split(answer: str) -> list[str]:
    return [answer[i:i + 5] for i in range(0, len(answer), 5)]


def test_an_env_secret_streamed_in_pieces_by_the_responses_api_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", ENV_KEY)
    pieces = _split(f"the key is {ENV_KEY}, keep it safe")
    chunk = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0}
    stream = "".join(
        f"event: response.output_text.delta\ndata: {json.dumps({**chunk, 'delta': p})}\n\n" for p in pieces
    )
    path = tmp_path / "c.yaml"
    with pytest.raises(CassetteError, match="split across the stream's chunks"):
        _save(path, _request("https://api.openai.com/v1/responses"),
              _response(stream.encode(), {"Content-Type": ["text/event-stream"]}))


def test_an_env_secret_streamed_in_pieces_as_json_lines_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", ENV_KEY)
    # Ollama's /api/chat streams newline-delimited JSON, not server-sent events.
    pieces = _split(f"the key is {ENV_KEY}, keep it safe")
    stream = "".join(json.dumps({"model": "llama3", "message": {"role": "assistant", "content": p},
                                 "done": False}) + "\n" for p in pieces)
    path = tmp_path / "c.yaml"
    with pytest.raises(CassetteError, match="split across the stream's chunks"):
        _save(path, _request("http://localhost:11434/api/chat"),
              _response(stream.encode(), {"Content-Type": ["application/x-ndjson"]}))


def test_credential_fields_of_a_server_sent_event_answer_are_scrubbed(tmp_path):
    # MCP's streamable HTTP answers JSON-RPC as server-sent events; the same answer as plain
    # JSON has its credential field scrubbed.
    result = {"jsonrpc": "2.0", "id": 1, "result": {"structuredContent": {"api_key": "9f3c2a71b8e04d5f9a6c"}}}
    path = tmp_path / "c.yaml"
    _save(path, _request("https://mcp.example/mcp"),
          _response(f"event: message\ndata: {json.dumps(result)}\n\n".encode(),
                    {"Content-Type": ["text/event-stream"]}))
    assert "9f3c2a71b8e04d5f9a6c" not in path.read_text()


def test_a_form_body_sent_without_a_content_type_loses_its_client_secret():
    # requests.post(url, data="grant_type=...&client_secret=...") sets no Content-Type
    sent = scrub_request(Request("POST", "https://auth.example/token",
                                 "grant_type=client_credentials&client_secret=cs-0123456789abc", {}))
    assert b"cs-0123456789abc" not in sent.body


def test_request_signatures_do_not_push_a_remembered_credential_out():
    # Remembered credentials are bounded; a SigV4 signature, new on every request, filled
    # the list after 64 requests and the key sent first was written again.
    forget_remembered()
    key = "Zx9Qw7Er5Ty3Ui1Op"
    scrub_request(Request("GET", "https://tool.example/me", "", {"X-Api-Key": key}))
    for n in range(64):  # SigV4 (Bedrock): a new Signature= on every request
        scrub_request(Request("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/x", "{}", {
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/"
                             f"aws4_request, SignedHeaders=host;x-amz-date, Signature={n:064x}"}))
    echoed = {"status": {"code": 401, "message": "x"}, "headers": {},
              "body": {"string": json.dumps({"error": f"invalid key {key}"}).encode()}}
    try:
        assert key.encode() not in scrub_response(echoed)["body"]["string"]
    finally:
        forget_remembered()
