"""The vcrpy cassette crewguard records and replays through.

A subclass of vcrpy's ``Cassette`` (vcrpy's stubs call these three methods for every request,
in the thread that sent it): each exchange is handed to the test's
:class:`~pytest_crewguard.wire.WireLog`, and in replay every request gets an answer here,
from the recording or a stand-in, so that nothing reaches vcrpy's own "cannot overwrite"
exception (which the SDKs would retry for seconds) or the network.
"""

from __future__ import annotations

import threading
from typing import Any

from vcr.cassette import Cassette
from vcr.errors import UnhandledHTTPRequestError

from .wire import WireLog


class GuardedCassette(Cassette):  # type: ignore[misc]  # vcrpy ships no type hints
    """A vcrpy cassette that reports each exchange to a :class:`WireLog`."""

    wire: WireLog | None = None  # attached right after loading, before any request
    _append_lock = threading.Lock()

    def can_play_response_for(self, request: Any) -> bool:
        if self.wire is not None:
            self.wire.request_started()
        if super().can_play_response_for(request):
            return True
        return bool(self.wire is not None and self.write_protected and self.filter_request(request))

    def play_response(self, request: Any) -> Any:
        if self.wire is not None:
            fault = self.wire.fault_for(request)  # a provider fault first, as faults= asks
            if fault is not None:
                return fault
        try:
            response = super().play_response(request)
        except UnhandledHTTPRequestError:
            if self.wire is None:
                raise
            return self.wire.stand_in(request)
        if self.wire is not None:
            self.wire.replayed(request, response)
        return response

    def append(self, request: Any, response: Any) -> None:
        if self.wire is None:
            super().append(request, response)
            return
        kept = self.wire.recorded_response(request, response)
        if kept is None:
            return
        with self._append_lock:
            before = len(self.data)
            super().append(request, kept)
            # vcrpy stores a filtered copy (secrets scrubbed): that is what the ledger reads.
            stored = self.data[-1][1] if len(self.data) > before else kept
        self.wire.recorded(request, stored)
