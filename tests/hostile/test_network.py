"""Replay must not reach the network by any door a Python test can open, and must still reach
the hosts a test says it needs (a database on localhost).

The in-process tests use real sockets: a server on loopback, and one on this machine's own
non-loopback address standing in for a remote host (nothing leaves the machine).
"""

from __future__ import annotations

import _socket
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_crewguard.network import NetworkBlocked, network_blocked

from ..conftest import answer, crew_test_file
from ..test_iterations import outcomes


class Server:
    """A TCP server that answers every connection with ``ok`` (a stand-in for a database)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                try:
                    conn.sendall(b"ok")
                    conn.recv(16)  # until the client closes
                except OSError:  # the client went away first
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def loopback() -> Iterator[Server]:
    server = Server("127.0.0.1")
    yield server
    server.close()


def own_address() -> str:
    """This machine's address on its outbound interface (no packet is sent to find it)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # routing only: UDP connect sends nothing
        address: str = probe.getsockname()[0]
    except OSError:
        pytest.skip("this machine has no non-loopback IPv4 address")
    finally:
        probe.close()
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


@pytest.fixture
def remote() -> Iterator[Server]:
    server = Server(own_address())
    yield server
    server.close()


def test_a_bare_c_level_socket_cannot_connect(loopback: Server) -> None:
    with network_blocked() as refused:
        sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(NetworkBlocked, match=f"refused a connection to 127.0.0.1:{loopback.port}"):
            sock.connect(("127.0.0.1", loopback.port))
        with pytest.raises(NetworkBlocked):
            sock.connect_ex(("127.0.0.1", loopback.port))
        sock.close()
    assert refused == [f"127.0.0.1:{loopback.port}"] * 2
    assert loopback.accepted == 0


def test_a_datagram_cannot_be_sent() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    address = receiver.getsockname()
    with network_blocked():
        for sender in (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            _socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        ):
            with pytest.raises(NetworkBlocked, match=r"refused a datagram to 127\.0\.0\.1"):
                sender.sendto(b"leak", address)
            with pytest.raises(NetworkBlocked):
                sender.sendmsg([b"leak"], [], 0, address)
            sender.close()
    with pytest.raises(TimeoutError):
        receiver.recv(16)
    receiver.close()


def test_a_connection_made_before_the_block_cannot_carry_traffic(remote: Server) -> None:
    plain = socket.create_connection((remote.host, remote.port))
    as_file = socket.create_connection((remote.host, remote.port)).makefile("rb")
    with network_blocked():
        for attempt in (
            lambda: plain.recv(2),
            lambda: plain.sendall(b"x"),
            lambda: plain.send(b"x"),
            as_file.read1,
        ):
            with pytest.raises(NetworkBlocked, match=f"connection opened before the test to {remote.host}"):
                attempt()
    # Outside the block the same connection works again.
    assert plain.recv(2) == b"ok"
    plain.sendall(b"x")
    plain.close()
    as_file.close()


def test_a_connection_to_loopback_made_before_the_block_still_works(loopback: Server) -> None:
    # A debugger, a session's database pool: loopback traffic does not leave the machine.
    sock = socket.create_connection(("127.0.0.1", loopback.port))
    with network_blocked():
        assert sock.recv(2) == b"ok"
        sock.sendall(b"bye")
    sock.close()


def test_a_thread_stuck_in_a_receive_is_shown_where_it_waits_not_in_the_check() -> None:
    # The checked socket methods stay in place after a block: a hang report must not blame them.
    from pytest_crewguard.deadline import stack_of

    with network_blocked():
        pass
    quiet, other = socket.socketpair()
    waiting = threading.Thread(target=lambda: quiet.recv(1), name="stuck")
    waiting.start()
    try:
        for _ in range(200):
            if "recv" in stack_of(waiting):
                break
            threading.Event().wait(0.01)
        stack = stack_of(waiting)
        assert "quiet.recv(1)" in stack.splitlines()[-1]  # the innermost frame is the caller's
        assert "pytest_crewguard/network.py" not in stack
    finally:
        other.send(b"x")
        waiting.join()
        quiet.close()
        other.close()


def test_allowed_hosts_are_reached_and_nothing_else(loopback: Server, remote: Server) -> None:
    other = Server("127.0.0.1")
    try:
        with network_blocked([f"localhost:{loopback.port}", remote.host]):
            # A name covers the addresses it resolves to; host:port only that port.
            assert socket.create_connection(("127.0.0.1", loopback.port)).recv(2) == b"ok"
            with pytest.raises(NetworkBlocked, match="allow_hosts="):
                socket.create_connection(("127.0.0.1", other.port))
            assert socket.create_connection((remote.host, remote.port)).recv(2) == b"ok"
        assert other.accepted == 0
    finally:
        other.close()


DATABASE = """
import socket, threading

DB_PORT = {port}


def query():
    with socket.create_connection(("localhost", DB_PORT)) as conn:
        return conn.recv(2)


@pytest.fixture(scope="session")
def pool():
    # A session's own thread, connecting while a test runs (a pool refilling itself).
    asked, answered = threading.Event(), []

    def run():
        asked.wait()
        try:
            answered.append(query())
        except OSError as err:
            answered.append(err)

    threading.Thread(target=run, daemon=True).start()
    return asked, answered


@pytest.mark.crewguard{marker}
def test_research(crewguard, pool):
    run = crewguard.kickoff(make_crew, inputs={{"topic": "AI agents"}})
    asked, answered = pool
    asked.set()
    while not answered:
        threading.Event().wait(0.01)
    assert answered == [b"ok"], answered
    assert query() == b"ok"
    assert run.output.raw == "Agents plan and act."
"""


def test_a_replayed_test_reaches_the_hosts_it_allows(
    pytester: pytest.Pytester, provider: Any, loopback: Server
) -> None:
    server = provider([answer("Agents plan and act.")])

    def write(marker: str) -> None:
        pytester.makepyfile(
            test_crew=crew_test_file(
                server.openai_base_url, DATABASE.format(port=loopback.port, marker=marker)
            )
        )

    write(f"(allow_hosts=['127.0.0.1:{loopback.port}'])")
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()

    # Replay: the provider is gone, the database is reached through the marker's allow-list.
    assert outcomes(pytester.runpytest()) == {"test_research": "passed"}

    # Without it the database is refused, and the message says how to allow it.
    write("")
    blocked = pytester.runpytest()
    assert outcomes(blocked) == {"test_research": "failed"}
    blocked.stdout.fnmatch_lines(
        [
            f"*crewguard replay mode refused a connection to 127.0.0.1:{loopback.port}*"
            "--crewguard-allow-hosts=127.0.0.1*"
        ]
    )

    # The option (or ini key) allows it for every test.
    assert outcomes(pytester.runpytest(f"--crewguard-allow-hosts=localhost:{loopback.port}")) == {
        "test_research": "passed"
    }
    pytester.makeini(f"[pytest]\ncrewguard_allow_hosts = [::1]:6379, localhost:{loopback.port}\n")
    assert outcomes(pytester.runpytest()) == {"test_research": "passed"}


@pytest.mark.parametrize(
    ("args", "marker", "message"),
    [
        (
            ["--crewguard-allow-hosts=localhost:x"],
            "",
            "*--crewguard-allow-hosts='localhost:x': 'localhost:x' has no valid port*",
        ),
        ([], "(allow_hosts=5432)", "*argument allow_hosts=5432: expected a list of hosts or host:port*"),
        ([], "(allow_hosts=[':5432'])", "*allow_hosts=?':5432'?: ':5432' has no host*"),
        # A superscript two is a digit to str.isdigit but not to int(): an internal error before.
        ([], "(allow_hosts=['localhost:\u00b2'])", "*'localhost:\u00b2' has no valid port*"),
    ],
)
def test_a_bad_allow_list_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.crewguard{marker}
        def test_x():
            pass
        """
    )
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
