"""Saved JSON reports read back: checked against the shipped schema, old ones accepted.

Reports written before the schema was versioned (no ``"schema"`` key) still load, so a
baseline kept from an earlier release keeps working; their missing fields take the defaults
of :class:`~pytest_crewguard.session.GuardedTest`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .pricing import PriceTable
from .report import SCHEMA
from .session import CrewguardSession, GuardedTest

SCHEMA_FILE = "crewguard-report-1.schema.json"


@cache
def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``crewguard-report/1``, as shipped in the package."""
    from importlib.resources import files

    text = files("pytest_crewguard").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _optional(node: Any) -> Any:
    """The schema with nothing required: what an unversioned report must still get right."""
    if isinstance(node, dict):
        return {k: _optional(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_optional(v) for v in node]
    return node


@cache
def _unversioned_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _optional(report_schema())
    schema["properties"]["budget"] = {"type": ["number", "null"]}  # a bare amount, then
    return schema


def schema_errors(data: Any, *, unversioned: bool = False) -> list[str]:
    """Where ``data`` breaks the report schema, one line each (empty when it is valid).

    ``unversioned``: a report written before the schema was versioned, which may lack fields
    but not have wrong ones."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(_unversioned_schema() if unversioned else report_schema())
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(top)'}: {err.message}"
        for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]


def check_report(data: Any, name: str) -> dict[str, Any]:
    """``data`` if it is a crewguard report (current or unversioned), else ``ConfigError``."""
    if not isinstance(data, dict) or not isinstance(data.get("tests"), dict) or "totals" not in data:
        raise ConfigError(f"{name}: not a crewguard report (write one with --crewguard-report=PATH)")
    schema = data.get("schema")
    if schema is not None and schema != SCHEMA:
        raise ConfigError(
            f"{name}: schema {str(schema)[:40]!r} is not one this crewguard reads ({SCHEMA}); "
            "upgrade pytest-crewguard to read it"
        )
    errors = schema_errors(data, unversioned=schema is None)  # None: written before versions
    if errors:
        shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
        raise ConfigError(f"{name}: not a valid {SCHEMA if schema else 'crewguard'} report: {shown}")
    return data


def load_report(path: Path, name: str | None = None) -> dict[str, Any]:
    """Read and check a saved report; ``FileNotFoundError`` when it is missing, ``ConfigError``
    when it is not a crewguard report. ``name`` is how messages call it (default: the path)."""
    name = name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{name}: cannot read it ({err})") from None
    try:
        data = json.loads(text, parse_constant=_not_a_number, object_pairs_hook=_unique_keys)
    except _Refused as err:
        raise ConfigError(f"{name}: not a valid crewguard report: {err}") from None
    except ValueError as err:
        raise ConfigError(f"{name}: not JSON ({err})") from None
    except RecursionError:
        raise ConfigError(f"{name}: not a crewguard report (JSON nested too deep to read)") from None
    return check_report(data, name)


class _Refused(ValueError):
    """A JSON report that parses but no crewguard wrote: said as such, not as bad JSON."""


def _not_a_number(constant: str) -> Any:
    # Python's json reads NaN and Infinity, which compare false with every limit: a NaN cost
    # would pass any threshold.
    raise _Refused(f"it holds {constant}, which is not a number crewguard writes")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON keeps the last of a repeated key silently: a test id given twice would lose a test.
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _Refused(f"the key {key[:200]!r} appears twice in one object")
        data[key] = value
    return data


class RecordedPrices(PriceTable):
    """The price data a saved report was made with, known by its version only."""

    def __init__(self, version: str) -> None:
        super().__init__()
        self._version = version

    @property
    def version(self) -> str:
        return self._version


def budget_of(data: dict[str, Any]) -> float | None:
    """The session budget a report was checked against (unversioned reports: a bare number)."""
    budget = data.get("budget")
    if isinstance(budget, dict):
        budget = budget.get("max_cost")
    return float(budget) if isinstance(budget, (int, float)) else None


def session_from_report(data: dict[str, Any], budget: float | None = None) -> CrewguardSession:
    """The session a report describes, so it renders and is judged like a live one.

    ``budget`` (default: the report's own) is the session budget to apply.
    """
    session = CrewguardSession(
        prices=RecordedPrices(str(data.get("prices") or "unknown")),
        budget=budget if budget is not None else budget_of(data),
    )
    for nodeid, entry in data["tests"].items():
        session.add(GuardedTest.from_json({**entry, "nodeid": nodeid}))
    return session
