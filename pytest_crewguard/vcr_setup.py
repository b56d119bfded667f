"""The vcrpy configuration crewguard records and replays with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import CassetteError, CrewguardError
from .matching import MATCH_ON, body_matcher
from .persister import AtomicYamlPersister, ReadableYamlSerializer
from .scrubbing import scrub_request, scrub_response


def make_vcr(record_mode: str) -> Any:
    """A ``vcr.VCR`` for one record mode (``rewrite`` is ``all`` without the old interactions)."""
    import vcr

    my_vcr = vcr.VCR(
        serializer="crewguard_yaml",
        record_mode="all" if record_mode == "rewrite" else record_mode,
        drop_unused_requests=record_mode == "rewrite",
        match_on=MATCH_ON,
        before_record_request=scrub_request,  # credentials out, on recorded and live requests
        before_record_response=scrub_response,
        decode_compressed_response=True,
    )
    my_vcr.register_serializer("crewguard_yaml", ReadableYamlSerializer)
    my_vcr.register_persister(AtomicYamlPersister)
    my_vcr.register_matcher("crewguard_body", body_matcher)
    return my_vcr


@contextmanager
def cassette(path: Path, record_mode: str) -> Iterator[Any]:
    """Open ``path`` with vcrpy in ``record_mode``; yields the vcrpy ``Cassette``.

    A refused or failed write is raised only after vcrpy has removed its patches: vcrpy saves
    before it unpatches, so an error from the save would leave every later test's HTTP
    clients patched with this test's cassette.
    """
    problems: list[CrewguardError] = []
    with make_vcr(record_mode).use_cassette(str(path)) as opened:
        save = opened._save

        def save_or_keep_the_error(force: bool = False) -> None:
            try:
                save(force=force)
            except CrewguardError as err:
                problems.append(err)
            except OSError as err:
                problems.append(CassetteError(f"crewguard could not write cassette {path}: {err}"))

        opened._save = save_or_keep_the_error
        yield opened
    if problems:
        raise problems[0]
