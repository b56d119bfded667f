"""The vcrpy configuration crewguard records and replays with.

Only vcrpy's public seams are used: ``VCR`` options and ``get_merged_config``, registered
matchers, a serializer, a persister, and :class:`GuardedCassette`, a ``Cassette`` subclass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import CassetteError, CrewguardError
from .http_patches import http_patches
from .match_config import MatchConfig
from .matching import body_matcher_for, method_matcher, normalising
from .persister import AtomicYamlPersister, ReadableYamlSerializer
from .scrubbing import scrub_request, scrub_response

# What vcrpy's context decorator takes for itself; no path transformation is configured here.
_NOT_CASSETTE_ARGUMENTS = ("path_transformer", "func_path_generator", "record_on_exception")


def make_vcr(record_mode: str, match_config: MatchConfig | None = None) -> Any:
    """A ``vcr.VCR`` for one record mode (``rewrite`` is ``all`` without the old interactions)."""
    import vcr

    config = match_config or MatchConfig()
    my_vcr = vcr.VCR(
        serializer="crewguard_yaml",
        record_mode="all" if record_mode == "rewrite" else record_mode,
        drop_unused_requests=record_mode == "rewrite",
        before_record_request=scrub_request,  # credentials out, on recorded and live requests
        before_record_response=scrub_response,
        decode_compressed_response=True,
    )
    my_vcr.register_serializer("crewguard_yaml", ReadableYamlSerializer)
    my_vcr.register_persister(AtomicYamlPersister)
    my_vcr.register_matcher("method", method_matcher)
    my_vcr.register_matcher("crewguard_body", body_matcher_for(config))
    for name, matcher in config.matchers.items():
        my_vcr.register_matcher(name, matcher)
    return my_vcr


def _loaded_response(response: dict[str, Any]) -> dict[str, Any]:
    """``before_record_response`` for a response read from the file: decompressed (as
    ``decode_compressed_response`` does) only when it is compressed, then scrubbed."""
    headers = response.get("headers") or {}
    if any(name.lower() == "content-encoding" for name in headers):
        from vcr.filters import decode_response

        response = decode_response(response)
    return scrub_response(response)


class _KeepingPersister:
    """The persister, with a failed or refused write kept for later instead of raised.

    vcrpy saves before it removes its patches: an error raised from the save would leave every
    later test's HTTP clients patched with this test's cassette. ``skip`` says when nothing
    may be written at all (the recording holds provider error answers).
    """

    def __init__(self, path: Path, skip: Callable[[], bool]) -> None:
        self.path = path
        self.skip = skip
        self.problems: list[CrewguardError] = []

    def load_cassette(self, cassette_path: Any, serializer: Any) -> Any:
        return AtomicYamlPersister.load_cassette(cassette_path, serializer)

    def save_cassette(self, cassette_path: Any, cassette_dict: dict[str, Any], serializer: Any) -> None:
        if self.skip():
            return
        try:
            AtomicYamlPersister.save_cassette(cassette_path, cassette_dict, serializer)
        except CrewguardError as err:
            self.problems.append(err)
        except OSError as err:
            self.problems.append(CassetteError(f"crewguard could not write cassette {self.path}: {err}"))


@contextmanager
def cassette(
    path: Path,
    record_mode: str,
    match_config: MatchConfig | None = None,
    skip_write: Callable[[], bool] = lambda: False,
) -> Iterator[Any]:
    """Open ``path`` with vcrpy in ``record_mode``; yields the :class:`GuardedCassette`.

    A refused or failed write is raised only after vcrpy has removed its patches.
    """
    from .guarded_cassette import GuardedCassette

    config = match_config or MatchConfig()
    persister = _KeepingPersister(path, skip_write)
    merged = make_vcr(record_mode, config).get_merged_config(
        path=str(path), persister=persister, match_on=config.match_on
    )
    merged["match_on"] = [normalising(m, config) for m in merged["match_on"]]
    loaded_filters = (scrub_request, _loaded_response)
    # vcrpy's `use` without its context decorator, for the patches built once (http_patches):
    # load, patch, and on the way out save first (also after an error), then unpatch.
    for name in _NOT_CASSETTE_ARGUMENTS:
        merged.pop(name, None)
    opened = GuardedCassette.load(**merged, match_config=config, loaded_filters=loaded_filters)
    with http_patches(opened):
        try:
            yield opened
        finally:
            opened._save()
    if persister.problems:
        raise persister.problems[0]
