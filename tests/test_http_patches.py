"""vcrpy's HTTP patches: built once for every replayed cassette, each answering from its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from pytest_crewguard import vcr_setup
from pytest_crewguard.testing.scripted_provider import Reply, ScriptedProvider

from .test_matching_index import URL, _body, _interaction, _write


def _post() -> str:
    response = httpx.post(URL, content=_body("same question"), headers={"content-type": "application/json"})
    answer: str = json.loads(response.text)["answer"]
    return answer


def _cassettes(tmp_path: Path) -> tuple[Path, Path]:
    return (
        _write(tmp_path / "a.yaml", [_interaction(_body("same question"), "from a")]),
        _write(tmp_path / "b.yaml", [_interaction(_body("same question"), "from b")]),
    )


def test_replayed_cassettes_share_the_patches_and_answer_from_their_own(tmp_path: Path) -> None:
    a, b = _cassettes(tmp_path)
    unpatched = httpx.HTTPTransport.handle_request
    with vcr_setup.cassette(a, "none"):
        answer_a, patched_a = _post(), httpx.HTTPTransport.handle_request
    assert httpx.HTTPTransport.handle_request is unpatched  # gone between tests
    with vcr_setup.cassette(b, "none"):
        answer_b, patched_b = _post(), httpx.HTTPTransport.handle_request
    assert (answer_a, answer_b) == ("from a", "from b")
    assert patched_a is patched_b is not unpatched  # one set of patches, not rebuilt


def test_a_cassette_inside_another_gets_patches_of_its_own(tmp_path: Path) -> None:
    a, b = _cassettes(tmp_path)
    with vcr_setup.cassette(a, "none"):
        outer = httpx.HTTPTransport.handle_request
        with vcr_setup.cassette(b, "none"):
            assert _post() == "from b"
            assert httpx.HTTPTransport.handle_request is not outer
        assert httpx.HTTPTransport.handle_request is outer
        assert _post() == "from a"


def test_recording_goes_through_the_same_patches_and_reaches_the_provider(
    tmp_path: Path, provider: Callable[..., ScriptedProvider]
) -> None:
    a, _ = _cassettes(tmp_path)
    with vcr_setup.cassette(a, "none"):
        replaying = httpx.HTTPTransport.handle_request
    server = provider(lambda request: Reply(text="from the provider", input_tokens=3, output_tokens=2))
    url, body = f"{server.openai_base_url}/chat/completions", {"model": "gpt-4o-mini", "messages": []}
    recorded = tmp_path / "recorded.yaml"
    with vcr_setup.cassette(recorded, "new_episodes"):
        assert httpx.HTTPTransport.handle_request is replaying
        sent = httpx.post(url, json=body).json()
    assert sent["choices"][0]["message"]["content"] == "from the provider"
    assert len(server.llm_requests) == 1  # really sent, and recorded
    server.stop()
    with vcr_setup.cassette(recorded, "none"):
        again = httpx.post(url, json=body).json()
    assert again["choices"][0]["message"]["content"] == "from the provider"
    assert len(server.llm_requests) == 1


def test_leaving_restores_each_patched_attribute_as_it_was(tmp_path: Path) -> None:
    import http.client

    import urllib3.connectionpool as pools

    a, _ = _cassettes(tmp_path)

    def state() -> tuple[object, ...]:
        return (
            http.client.HTTPConnection,  # a module's own attribute
            vars(pools.HTTPConnectionPool)["_get_conn"],
            "_get_conn" in vars(pools.HTTPSConnectionPool),  # inherited: patched on the subclass
        )

    before = state()
    assert before[2] is False
    with vcr_setup.cassette(a, "none"):
        assert state()[0] is not before[0] and state()[2] is True
    assert state() == before
