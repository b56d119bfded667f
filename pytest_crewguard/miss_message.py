"""The message of a cassette miss in replay: why the request has no recorded answer, what
changed against the nearest recorded request, and the command that records it again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .matching import body_diff, nearest_request

if TYPE_CHECKING:
    from .wire import WireLog


def miss_message(wire: WireLog, request: Any) -> str:
    """Why ``request`` has no recorded answer, what changed, and how to record it."""
    lines = [
        f"crewguard: no recorded response for {request.method} {request.uri}",
        f"  test:     {wire.nodeid}",
        f"  cassette: {wire.cassette_path} (record mode: {wire.record_mode})",
    ]
    recorded = [r for r, _ in wire.cassette.data]
    if not wire.existed:
        state = "has no interactions" if wire.cassette_exists else "does not exist yet"
        mode = "once" if not wire.cassette_exists else "rewrite"
        lines += [
            f"  The cassette {state}, and replay mode never calls the network.",
            "  Record it (this calls the real provider):",
            f"    pytest '{wire.nodeid}' --crewguard-record-mode={mode}",
        ]
        return "\n".join(lines)
    # An interaction already answered cannot answer again: the nearest one still unplayed
    # is what this request was meant to be, and its diff names the field that changed.
    counts = getattr(wire.cassette, "play_counts", {})
    unplayed = [r for i, r in enumerate(recorded) if not counts.get(i)]
    nearest = nearest_request(request, unplayed) or nearest_request(request, recorded)
    if nearest is not None:
        position = recorded.index(nearest) + 1
        diff = body_diff(nearest, request, wire.match_config.ignore_body_fields)
        if diff.startswith("(bodies are equal"):
            lines.append(
                f"  The same request was recorded (interaction {position} of {len(recorded)}) "
                "and already answered: this run sent it more often than the recording did."
            )
        else:
            lines.append(
                f"  Nearest recorded request not yet answered: interaction {position} of "
                f"{len(recorded)}; what changed:"
            )
            lines += ["    " + line for line in diff.splitlines()]
    lines += [
        "  If the change is intended, record this test again (this calls the real provider):",
        f"    pytest '{wire.nodeid}' --crewguard-record-mode=rewrite",
    ]
    return "\n".join(lines)
