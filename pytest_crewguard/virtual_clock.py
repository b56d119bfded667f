"""A virtual clock for the waits of a replayed crew: SDK retry backoff and CrewAI's RPM limit.

In replay a retry after a 429 answered from the cassette, or CrewAI's ``max_rpm`` controller
waiting for the next minute, would sleep for real: seconds to a minute per wait, for nothing
the test checks. While a guard is active these waits are added to a clock instead, and to the
projected time of the run, which is what they cost in production.

Only these call sites are patched, not ``time.sleep`` itself: the SDKs' ``_sleep_for_retry``
(OpenAI's and Anthropic's, sync and async: the delay is computed by the SDK's own
``_calculate_retry_timeout``, ``retry-after`` included), the ``sleep`` of CrewAI's own
rate-limit retry around an LLM call (``crewai.llms.retry``, which retries a 429 the SDK gave up
on, ``retry-after`` honoured) and
``crewai.utilities.rpm_controller.RPMController._wait_for_next_minute``. A tool's or the
application's own sleep still takes real time.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

RPM_WAIT_S = 60.0  # CrewAI's RPMController sleeps this long when the minute's budget is spent

Sink = Callable[[float, str], None]  # (seconds, kind: "retry" | "rpm")

_sink: Sink | None = None
_lock = threading.Lock()


def _retry_timeout(client: Any, retries_taken: int, max_retries: int, options: Any, response: Any) -> float:
    remaining = max_retries - retries_taken
    headers = response.headers if response is not None else None
    return float(client._calculate_retry_timeout(remaining, options, headers))


def _patch_sdk(module: Any) -> None:
    sync_client, async_client = module.SyncAPIClient, module.AsyncAPIClient
    real_sync, real_async = sync_client._sleep_for_retry, async_client._sleep_for_retry

    def sleep_for_retry(
        self: Any, *, retries_taken: int, max_retries: int, options: Any, response: Any
    ) -> None:
        sink = _sink
        if sink is None:
            real_sync(
                self, retries_taken=retries_taken, max_retries=max_retries, options=options, response=response
            )
            return
        sink(_retry_timeout(self, retries_taken, max_retries, options, response), "retry")

    async def sleep_for_retry_async(
        self: Any, *, retries_taken: int, max_retries: int, options: Any, response: Any
    ) -> None:
        sink = _sink
        if sink is None:
            await real_async(
                self, retries_taken=retries_taken, max_retries=max_retries, options=options, response=response
            )
            return
        sink(_retry_timeout(self, retries_taken, max_retries, options, response), "retry")

    sync_client._sleep_for_retry = sleep_for_retry
    async_client._sleep_for_retry = sleep_for_retry_async


def _patch_rpm(module: Any) -> None:
    controller = module.RPMController
    real_wait = controller._wait_for_next_minute

    def wait_for_next_minute(self: Any) -> None:
        sink = _sink
        if sink is None:
            real_wait(self)
            return
        sink(RPM_WAIT_S, "rpm")
        self._current_rpm = 0

    controller._wait_for_next_minute = wait_for_next_minute


def _sleep(seconds: float) -> None:
    sink = _sink
    if sink is None:
        time.sleep(seconds)
    else:
        sink(seconds, "retry")


async def _sleep_async(seconds: float) -> None:
    sink = _sink
    if sink is None:
        await asyncio.sleep(seconds)
    else:
        sink(seconds, "retry")


def _patch_crewai_retry(module: Any) -> None:
    """CrewAI's retry takes its sleep as a keyword default, bound when it was defined."""
    for name, sleep in (("run_with_rate_limit_retry", _sleep), ("arun_with_rate_limit_retry", _sleep_async)):
        function = getattr(module, name, None)
        defaults = getattr(function, "__kwdefaults__", None)
        if isinstance(defaults, dict) and "sleep" in defaults:
            defaults["sleep"] = sleep


_PATCHES: tuple[tuple[str, Callable[[Any], None]], ...] = (
    ("openai._base_client", _patch_sdk),
    ("anthropic._base_client", _patch_sdk),
    ("crewai.utilities.rpm_controller", _patch_rpm),
    ("crewai.llms.retry", _patch_crewai_retry),
)
# Each module patched, by identity: a module imported afresh is patched again, and so is every
# module by a fresh copy of this one (pytester's in-process runs re-import it), since the old
# wrappers read the old copy's sink.
_patched: dict[str, Any] = {}


def patch_loaded() -> None:
    """Wrap the wait call sites of the modules imported so far; outside a guard they wait for real.

    Only what is already imported: importing an SDK the crew does not use (``anthropic`` alone
    costs a fifth of a second) would slow every session down. The guarded cassette calls this
    again before it answers a request, which is always before the SDK can wait for a retry, so
    an SDK first imported inside the kickoff is patched in time.
    """
    for name, patch in _PATCHES:
        module = sys.modules.get(name)
        if module is not None and _patched.get(name) is not module:
            with _lock:
                if _patched.get(name) is not module:
                    patch(module)
                    _patched[name] = module


@contextmanager
def virtual_waits(sink: Sink) -> Iterator[None]:
    """Within this block the patched waits call ``sink`` instead of sleeping."""
    global _sink
    patch_loaded()
    previous, _sink = _sink, sink
    try:
        yield
    finally:
        _sink = previous
