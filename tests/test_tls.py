"""The shared TLS context of replay mode: one default context for every HTTP client built.

Building a default ``ssl.SSLContext`` parses the whole CA bundle; in replay no client ever
connects, so the clients a crew builds share one. These tests check that sharing happens only
inside the block, only for the default settings, that the shared context trusts what a fresh
one would, and that a real crew replays through the plugin with it (and records without it).
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest

from pytest_crewguard.tls import shared_tls_context

from .conftest import answer, crew_test_file


def _context(client: Any) -> ssl.SSLContext:
    context: ssl.SSLContext = client._transport._pool._ssl_context
    return context


def test_default_clients_share_one_context_only_inside_the_block():
    before = [_context(httpx.Client()), _context(httpx.Client())]
    with shared_tls_context():
        inside = [_context(httpx.Client()), _context(httpx.AsyncClient()), _context(httpx.Client())]
    after = [_context(httpx.Client()), _context(httpx.Client())]

    assert inside[0] is inside[1] is inside[2]
    assert before[0] is not before[1]
    assert after[0] is not after[1]
    assert inside[0] not in after
    # The library's own function is back in place.
    assert httpx._transports.default.create_ssl_context is httpx._config.create_ssl_context


def test_shared_context_trusts_what_a_fresh_default_context_trusts():
    fresh = httpx.create_ssl_context()
    with shared_tls_context():
        shared = _context(httpx.Client())
    assert shared.verify_mode == ssl.CERT_REQUIRED
    assert shared.check_hostname is True
    assert shared.cert_store_stats() == fresh.cert_store_stats()
    assert shared.cert_store_stats()["x509_ca"] > 10


def test_explicit_verify_settings_are_not_shared():
    own = ssl.create_default_context()
    with shared_tls_context():
        default = _context(httpx.Client())
        unverified = _context(httpx.Client(verify=False))
        custom = _context(httpx.Client(verify=own))
    assert unverified is not default
    assert unverified.verify_mode == ssl.CERT_NONE
    assert custom is own


def test_ssl_cert_file_chooses_its_own_shared_context(tmp_path, monkeypatch):
    # A bundle with a single CA: a context built from it holds exactly one certificate.
    bundle = Path(certifi.where()).read_text()
    first = bundle[bundle.index("-----BEGIN CERTIFICATE-----") :]
    first = first[: first.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    one_ca = tmp_path / "one-ca.pem"
    one_ca.write_text(first + "\n")

    with shared_tls_context():
        monkeypatch.setenv("SSL_CERT_FILE", str(one_ca))
        narrow = [_context(httpx.Client()), _context(httpx.Client())]
        monkeypatch.delenv("SSL_CERT_FILE")
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        broad = _context(httpx.Client())
        untrusting = _context(httpx.Client(trust_env=False))

    assert narrow[0] is narrow[1]
    assert narrow[0].cert_store_stats()["x509_ca"] == 1
    assert broad is not narrow[0]
    assert broad.cert_store_stats()["x509_ca"] > 10
    assert untrusting.cert_store_stats()["x509_ca"] > 10


def test_httpx2_clients_share_too():
    httpx2 = pytest.importorskip("httpx2")
    with shared_tls_context():
        inside = [_context(httpx2.Client()), _context(httpx2.AsyncClient())]
        plain = _context(httpx.Client())
    after = [_context(httpx2.Client()), _context(httpx2.Client())]
    assert inside[0] is inside[1]
    assert after[0] is not after[1]
    # Each library keeps a context of its own making.
    assert plain is not inside[0]


def test_nested_blocks_restore_the_library_only_at_the_outermost_exit():
    original = httpx._transports.default.create_ssl_context
    with shared_tls_context():
        with shared_tls_context():
            inner = _context(httpx.Client())
        still = _context(httpx.Client())
        assert httpx._transports.default.create_ssl_context is not original
    assert inner is still
    assert httpx._transports.default.create_ssl_context is original


BODY = """
@pytest.mark.crewguard(max_cost=0.01)
def test_research(crewguard):
    crews = []

    def factory():
        crews.append(make_crew())
        return crews[0]

    run = crewguard.kickoff(factory, inputs={"topic": "AI agents"})
    llms = [crews[0].agents[0].llm, make_llm()]
    contexts = [sdk._client._transport._pool._ssl_context
                for llm in llms for sdk in (llm._client, llm._async_client)]
    with open(os.path.join(os.path.dirname(__file__), "tls.json"), "w") as f:
        json.dump({"distinct": len({id(c) for c in contexts}), "clients": len(contexts),
                   "raw": run.output.raw}, f)
"""


def _tls_dump(pytester: pytest.Pytester) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(pytester.path) / "tls.json").read_text())
    return data


def test_replay_shares_one_context_and_recording_builds_its_own(pytester, provider):
    server = provider([answer("AI agents plan, act and remember.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))

    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    recorded = _tls_dump(pytester)
    server.stop()
    pytester.runpytest().assert_outcomes(passed=1)
    replayed = _tls_dump(pytester)

    assert recorded["clients"] == replayed["clients"] == 4
    assert recorded["distinct"] == 4, "record mode must build every client as in production"
    assert replayed["distinct"] == 1, "replay should share one default TLS context"
    assert replayed["raw"] == recorded["raw"] == "AI agents plan, act and remember."
