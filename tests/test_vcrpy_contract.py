"""What crewguard relies on in vcrpy, checked against the installed release.

crewguard plugs into vcrpy through public seams only: ``VCR.get_merged_config``, registered
matchers, serializer and persister, and a ``Cassette`` subclass whose ``can_play_response_for``,
``play_response`` and ``append`` vcrpy's stubs call for every request. If a vcrpy release stops
calling them, these tests fail before any user's replay silently stops being seen.
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import httpx
import pytest
import vcr
import vcr.cassette
import vcr.request

import pytest_crewguard
from pytest_crewguard import vcr_setup
from pytest_crewguard.wire import WireLog


def _client() -> httpx.Client:
    def provider(request: httpx.Request) -> httpx.Response:
        usage = {"prompt_tokens": 3, "completion_tokens": 1}
        return httpx.Response(200, json={"choices": [], "usage": usage})

    return httpx.Client(transport=httpx.MockTransport(provider))


def _post(client: httpx.Client, prompt: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "m": prompt}
    return client.post("https://api.openai.com/v1/chat/completions", json=body)


def _open(path: Path, mode: str):  # type: ignore[no-untyped-def]
    return vcr_setup.cassette(path, mode)


def _attach(cassette: object, path: Path) -> WireLog:
    wire = WireLog(
        cassette, nodeid="t.py::t", record_mode="none", cassette_path=str(path), cassette_exists=path.exists()
    )
    cassette.wire = wire  # type: ignore[attr-defined]
    return wire


def test_vcrpy_calls_the_cassette_subclass_for_recording_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    with _open(path, "once") as cassette:
        wire = _attach(cassette, path)
        assert _post(_client(), "hello").status_code == 200
    assert [(c.replayed, c.status) for c in wire.calls] == [(False, 200)]
    assert path.is_file()

    with _open(path, "none") as cassette:
        wire = _attach(cassette, path)
        with _client() as client:
            assert _post(client, "hello").json()["usage"]["prompt_tokens"] == 3
            # Not recorded: answered by the stand-in, never by the (mock) network.
            missed = _post(client, "changed")
    assert [(c.replayed, c.status) for c in wire.calls] == [(True, 200)]
    assert missed.status_code == 400 and missed.headers["x-should-retry"] == "false"
    assert "crewguard" in json.dumps(missed.json())
    assert len(wire.misses) == 1 and "+m: changed" in wire.misses[0]


def test_a_refused_write_is_raised_after_vcrpy_removed_its_patches(tmp_path: Path) -> None:
    from pytest_crewguard.errors import CrewguardError

    path = tmp_path / "c.yaml"
    original = httpx.MockTransport.handle_request
    with pytest.raises(CrewguardError, match="refused to write"), _open(path, "once") as cassette:
        _attach(cassette, path)
        _post(_client(), "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789")
    assert httpx.MockTransport.handle_request is original
    assert not path.exists()


def test_a_repeated_request_is_diffed_against_the_interaction_still_unanswered(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    with _open(path, "once") as cassette, _client() as client:
        _attach(cassette, path)
        _post(client, "hello")
        _post(client, "world")
    with _open(path, "none") as cassette, _client() as client:
        wire = _attach(cassette, path)
        _post(client, "hello")
        _post(client, "hello")  # meant to be the second request, which changed
    (message,) = wire.misses
    assert "interaction 2 of 2" in message
    assert "-m: world" in message and "+m: hello" in message


# -- no monkeypatching of vcrpy's objects ------------------------------------------------------

# Methods of vcrpy's objects: replacing one on an instance (``cassette.play_response = ...``)
# or a class works until a release renames or stops calling it, and then replay silently
# changes. crewguard overrides them in a subclass instead, where this contract test sees them.
VCRPY_METHODS = frozenset(
    name
    for cls in (vcr.cassette.Cassette, vcr.request.Request, vcr.VCR)
    for name, member in inspect.getmembers(cls)
    if callable(member) and not name.startswith("__")
)


def _patches_vcrpy(source: str) -> list[str]:
    """Assignments to a vcrpy method name or to a private attribute of anything named like a
    cassette or vcrpy, and ``setattr`` on such objects, as ``line: code``. (The virtual clock
    replaces the SDKs' own retry sleeps on purpose; that is not vcrpy's business.)"""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in ast.walk(target)]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if not isinstance(target, ast.Attribute) or target.attr.startswith("__"):
                continue
            own = isinstance(target.value, ast.Name) and target.value.id in ("self", "cls")
            vcrpy_like = any(word in ast.unparse(target.value).lower() for word in ("cassette", "vcr"))
            if target.attr in VCRPY_METHODS or (target.attr.startswith("_") and not own and vcrpy_like):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            obj, name = (node.args + [ast.Constant(None)] * 2)[:2]
            named = isinstance(name, ast.Constant) and isinstance(name.value, str)
            if (
                any(word in ast.unparse(obj).lower() for word in ("cassette", "vcr"))
                or (named and (name.value in VCRPY_METHODS or name.value.startswith("_")))
            ):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_sees_each_way_of_patching_a_vcrpy_object():
    assert len(VCRPY_METHODS & {"play_response", "append", "can_play_response_for", "_save"}) == 4
    source = (
        "cassette.play_response = fake\n"
        "self._cassette._save = lambda **kw: None\n"
        "setattr(cassette, name, value)\n"
        "setattr(obj, '_load', value)\n"
        "self._mine = 1\n"
        "run.stream = stream\n"
        "client._sleep_for_retry = virtual_sleep\n"
    )
    assert [line.split(":")[0] for line in _patches_vcrpy(source)] == ["1", "2", "3", "4"]


def test_crewguard_never_patches_a_vcrpy_object():
    package = Path(pytest_crewguard.__file__).parent
    found = [
        f"{path.relative_to(package)}:{hit}"
        for path in sorted(package.rglob("*.py"))
        for hit in _patches_vcrpy(path.read_text(encoding="utf-8"))
    ]
    assert not found, "override in GuardedCassette (a subclass) instead of patching:\n" + "\n".join(found)
