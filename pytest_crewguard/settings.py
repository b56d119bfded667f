"""The session's crewguard settings, as plain data: the guard reads them, pytest is not needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECORD_MODES: tuple[str, ...] = ("none", "once", "new_episodes", "all", "rewrite")


@dataclass(frozen=True)
class Settings:
    """The session's crewguard settings, from the command line (which wins) or the ini file."""

    rootdir: Path
    record_mode_cli: str | None
    record_mode_ini: str
    cassette_dir: Path
    max_cost: float | None
    prices_file: Path | None
    report: Path | None
    baseline: Path | None
    compare_fail: str | None
    match_on: tuple[str, ...] | None = None
    allow_hosts: tuple[str, ...] = ()
    markdown: Path | None = None
    step_summary: bool = True  # append the Markdown summary to $GITHUB_STEP_SUMMARY when set
    html: Path | None = None  # where the HTML report goes
    gc_freeze: bool = True  # pause the collector while collecting, freeze the heap (gc_freeze.py)

    @classmethod
    def defaults(cls, rootdir: Path, record_mode: str = "none", cassette_dir: Path | None = None) -> Settings:
        """The plugin's defaults, for a driver outside pytest: cassettes under ``rootdir/cassettes``,
        no budget, price file or reports."""
        return cls(
            rootdir=rootdir,
            record_mode_cli=None,
            record_mode_ini=record_mode,
            cassette_dir=cassette_dir or rootdir / "cassettes",
            max_cost=None,
            prices_file=None,
            report=None,
            baseline=None,
            compare_fail=None,
        )

    def record_mode_for(self, marker_mode: str | None) -> str:
        """An explicit command-line mode wins over the marker, which wins over the ini."""
        return self.record_mode_cli or marker_mode or self.record_mode_ini
