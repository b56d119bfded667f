"""What crewguard keeps for one pytest run: settings, prices, storage, baseline and results."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .environment import new_storage_root, prepare_crewai_environment, remove_orphan_roots
from .settings import Settings

if TYPE_CHECKING:
    from .baseline import Comparison, Threshold
    from .guard_session import GuardSession
    from .isolation import UsedObjects
    from .marker import GuardSpec
    from .pricing import PriceTable
    from .session import CrewguardSession, GuardedTest


@dataclass
class RunState:
    """Built once at configure time; ``results`` exists once a guarded test ran."""

    settings: Settings
    prices: PriceTable | None  # None: genai-prices alone, built at the first guarded test
    baseline: dict[str, Any] | None
    thresholds: list[Threshold]
    storage: Path
    saved_env: dict[str, str | None]
    used: UsedObjects | None = None  # made at the first guarded test
    results: CrewguardSession | None = None
    write_problems: list[str] = field(default_factory=list)  # reports that could not be written

    @classmethod
    def load(cls, settings: Settings) -> RunState:
        """Read the price file and the baseline (``CrewguardError`` if bad), and give CrewAI
        a storage directory of the run's own."""
        # A bad price file is a usage error before any test runs; the file is small and parsed
        # without importing genai-prices, whose data loads only when a cost is computed.
        prices = None
        if settings.prices_file:
            from .pricing import PriceTable

            prices = PriceTable.from_file(settings.prices_file)
        baseline: dict[str, Any] | None = None
        thresholds: list[Threshold] = []
        if settings.baseline is not None or settings.compare_fail:
            from .baseline import load_comparison

            baseline, thresholds = load_comparison(settings.baseline, settings.compare_fail)
        storage = new_storage_root(sweep=False)  # swept at the first guarded test, not at start-up
        return cls(settings, prices, baseline, thresholds, storage, prepare_crewai_environment(storage))

    def session(self) -> CrewguardSession:
        """The run's results, created at the first guarded test (so plain runs show no table)."""
        if self.results is None:
            from .pricing import PriceTable
            from .session import CrewguardSession

            if self.prices is None:  # imported only now: a run without crew tests never pays for it
                self.prices = PriceTable()
            remove_orphan_roots(self.storage)
            self.results = CrewguardSession(prices=self.prices, budget=self.settings.max_cost)
        return self.results

    def guard_session(self, nodeid: str, spec: GuardSpec | None, fixture_config: Any) -> GuardSession:
        """The guard of one test, not started yet; ``CrewguardError`` for a bad ``crewguard_config``."""
        from .guard_session import GuardSession
        from .isolation import UsedObjects
        from .marker import GuardSpec
        from .match_config import config_from_fixture

        if self.used is None:
            self.used = UsedObjects()
        spec = spec or GuardSpec()
        match_config = config_from_fixture(fixture_config, spec.match_on or self.settings.match_on)
        return GuardSession(
            spec=spec, nodeid=nodeid, settings=self.settings, results=self.session(),
            used=self.used, storage_root=self.storage, match_config=match_config,
        )

    def comparison(self) -> Comparison | None:
        """This run against the baseline (``None`` without one)."""
        if self.baseline is None or self.results is None:
            return None
        from .baseline import compare
        from .report import report_data

        return compare(self.baseline, report_data(self.results), self.thresholds)

    def regressions(self) -> list[str]:
        """The ``--crewguard-compare-fail`` regressions against the baseline."""
        if self.baseline is None or not self.thresholds or self.results is None:
            return []
        from .baseline import regressions
        from .report import report_data

        return regressions(self.baseline, report_data(self.results), self.thresholds)

    def write_reports(self) -> None:
        """The JSON, Markdown and HTML reports the options ask for (the run had guarded tests).

        One that cannot be written is kept in :attr:`write_problems`, to be said under the
        table and fail the run; the others are written still."""
        results = self.results
        if results is None:
            return
        settings = self.settings
        if settings.report is not None:
            from .report import write_report

            report = settings.report
            self._writing("--crewguard-report", report, lambda: write_report(results, report))
        step_summary = settings.step_summary and os.environ.get("GITHUB_STEP_SUMMARY")
        if settings.markdown is not None or step_summary:
            from .markdown import markdown, write_markdown
            from .report import report_data

            text = markdown(report_data(results), self.comparison())
            if settings.markdown is not None:
                self._writing("--crewguard-markdown", settings.markdown,
                              lambda: write_markdown(text, settings.markdown, step_summary=False))
            if step_summary:
                self._writing("$GITHUB_STEP_SUMMARY", Path(step_summary),
                              lambda: write_markdown(text, None, step_summary=True))
        if settings.html is not None:
            from .html_report import write_html

            html = settings.html
            self._writing("--crewguard-html", html, lambda: write_html(results, html, baseline=self.baseline))

    def _writing(self, option: str, path: Path | None, write: Callable[[], object]) -> None:
        try:
            write()
        except (OSError, UnicodeError) as err:
            detail = getattr(err, "strerror", None) or str(err)
            self.write_problems.append(f"could not write {option}={path}: {detail}")

    def fails_run(self) -> bool:
        """Whether the session budget or a regression fails the run, whatever its tests did."""
        results = self.results
        if results is None:
            return False
        budget_broken = results.over_budget is not None or results.budget_unknown() is not None
        return budget_broken or bool(self.write_problems) or bool(self.regressions())


def junit_properties(record: GuardedTest) -> list[tuple[str, object]]:
    """The numbers a ``--junitxml`` testcase carries as properties."""
    return [
        ("crewguard_cost_usd", f"{record.cost:.6f}"),
        ("crewguard_tokens", record.tokens),
        ("crewguard_llm_calls", record.llm_calls),
        ("crewguard_max_iter_hits", record.max_iter_hits),
        ("crewguard_projected_s", "" if record.projected_s is None else f"{record.projected_s:.3f}"),
    ]
