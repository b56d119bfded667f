"""The vcrpy cassette crewguard records and replays through.

A subclass of vcrpy's ``Cassette`` (vcrpy's stubs call these three methods for every request,
in the thread that sent it): each exchange is handed to the test's
:class:`~pytest_crewguard.wire.WireLog`, and in replay every request gets an answer here,
from the recording or a stand-in, so that nothing reaches vcrpy's own "cannot overwrite"
exception (which the SDKs would retry for seconds) or the network.

A request finds its recorded answer through a :class:`~pytest_crewguard.request_index.RequestIndex`
built on the first request, instead of vcrpy's scan of the whole cassette (twice per request),
with vcrpy's semantics: recorded order among identical requests, each interaction answers once.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from vcr.cassette import Cassette
from vcr.errors import UnhandledHTTPRequestError
from vcr.record_mode import RecordMode

from .match_config import MatchConfig
from .request_index import RequestIndex
from .scrubbing import scrub_request
from .secret_values import secrets_fixed
from .virtual_clock import patch_loaded
from .wire import WireLog


class GuardedCassette(Cassette):  # type: ignore[misc]  # vcrpy ships no type hints
    """A vcrpy cassette that reports each exchange to a :class:`WireLog`."""

    wire: WireLog | None = None  # attached right after loading, before any request
    _append_lock = threading.Lock()

    def __init__(
        self,
        *args: Any,
        match_config: MatchConfig | None = None,
        loaded_filters: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The names behind vcrpy's matcher functions; without them, vcrpy's scan.
        self.match_config = match_config
        # What before_record_request/response do, minus vcrpy's defensive deep copies: applied
        # to interactions freshly read from the file for replay, which nothing else holds.
        self._loaded_filters = loaded_filters
        self._index: RequestIndex | None = None
        self._index_lock = threading.RLock()
        self._loading = False

    def _load(self) -> None:
        self._loading = True
        try:
            with secrets_fixed():
                super()._load()
        finally:
            self._loading = False
        if self.record_mode != RecordMode.ALL:  # "all" records every request, never replays
            self._request_index()  # each recorded body parsed once, now rather than per request

    def _request_index(self) -> RequestIndex | None:
        if self.match_config is None:
            return None
        with self._index_lock:
            if self._index is None:
                index = RequestIndex(self.match_config, self._match_on)
                for position, (request, _) in enumerate(self.data):
                    index.add(position, request)
                self._index = index
            return self._index

    def can_play_response_for(self, request: Any) -> bool:
        if self.wire is not None:
            self.wire.request_started()
            if self.write_protected:
                return True  # answered by play_response: the recording, else a stand-in
        index = self._request_index()
        if index is None:
            return bool(super().can_play_response_for(request))
        if self.record_mode == RecordMode.ALL or not (self.rewound or self.allow_playback_repeats):
            return False
        filtered = self._live_filtered(request, index)
        if not filtered:
            return False
        with self._index_lock:
            found = index.find(filtered, index.key(filtered), self._recorded, self.allow_playback_repeats)
        return found is not None

    def _append_loaded(self, request: Any, response: Any) -> None:
        # vcrpy's append deep-copies the response so that recording cannot change what the
        # client got; a response freshly read from the file for replay needs no such copy.
        on_request, on_response = self._loaded_filters or (
            self._before_record_request, self._before_record_response
        )
        request = on_request(request)
        if not request:
            return
        response = on_response(response)
        if response is not None:
            self.data.append((request, response))

    def _recorded(self, position: int) -> Any:
        return self.data[position][0]

    def _live_filtered(self, request: Any, index: RequestIndex) -> Any:
        """The sent request as it is compared with the recordings: scrubbed, on a copy."""
        # vcrpy's before_record_request deep-copies the request first (a hundred copy calls
        # for a crew's request, a third of its replay) so that no filter changes what is sent.
        # crewguard's filter replaces the request's attributes and never changes them in place,
        # so a shallow copy leaves the request as sent just as well.
        if self._loaded_filters is None:
            return self._before_record_request(request)
        # Compared by method, URL and body only (an exact index): the headers need no scrubbing.
        return scrub_request(copy.copy(request), headers=not index.exact)

    def _play_indexed(self, index: RequestIndex, request: Any) -> Any:
        filtered = self._live_filtered(request, index)
        if not filtered:
            return None
        key = index.key(filtered)
        with self._index_lock:
            position = index.find(filtered, key, self._recorded, self.allow_playback_repeats)
            if position is None:
                return None
            if self.play_counts[position] == 0:
                index.played(key, position)
                if position < self._loaded_count:  # for drop_unused_requests, as vcrpy keeps it
                    self._played_interactions.append(self.data[position])
            self.play_counts[position] += 1
            return self.data[position][1]

    def play_response(self, request: Any) -> Any:
        # The SDK that sent this may have been imported inside the kickoff: wrap its retry wait
        # before it can wait, as replay must not sleep.
        patch_loaded()
        if self.wire is not None:
            fault = self.wire.fault_for(request)  # a provider fault first, as faults= asks
            if fault is not None:
                return fault
        index = self._request_index()
        try:
            if index is None:
                response = super().play_response(request)
            else:
                response = self._play_indexed(index, request)
                if response is None:
                    raise UnhandledHTTPRequestError(
                        f"The cassette ({self._path!r}) doesn't contain the request ({request!r}) asked for"
                    )
        except UnhandledHTTPRequestError:
            if self.wire is None:
                raise
            return self.wire.stand_in(request)
        if self.wire is not None:
            self.wire.replayed(request, response)
        return response

    def append(self, request: Any, response: Any) -> None:
        if self.wire is None:
            self._append_indexed(request, response)
            return
        kept = self.wire.recorded_response(request, response)
        if kept is None:
            return
        with self._append_lock:
            before = len(self.data)
            self._append_indexed(request, kept)
            # vcrpy stores a filtered copy (secrets scrubbed): that is what the ledger reads.
            stored = self.data[-1][1] if len(self.data) > before else kept
        self.wire.recorded(request, stored)

    def _append_indexed(self, request: Any, response: Any) -> None:
        with self._index_lock:
            before = len(self.data)
            if self._loading and self.record_mode in (RecordMode.NONE, RecordMode.ONCE):
                self._append_loaded(request, response)
            else:
                super().append(request, response)
            if self._index is not None and len(self.data) > before:
                self._index.add(before, self.data[before][0])
