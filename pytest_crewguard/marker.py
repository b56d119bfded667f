"""The ``@pytest.mark.crewguard(...)`` marker: its arguments, checked once, as a ``GuardSpec``."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .cassette_location import check_inside
from .errors import ConfigError
from .faults import FaultPlan, parse_faults
from .match_config import parse_match_on
from .settings import RECORD_MODES


@dataclass(frozen=True)
class GuardSpec:
    """What a test asks of its crews. Every field is optional (``None``: no limit)."""

    cassette: str | None = None
    max_cost: float | None = None
    max_tokens: int | None = None
    max_llm_calls: int | None = None
    max_iterations: int | None = None
    allow_max_iter: bool = False
    max_seconds: float | None = None
    output: Any = None
    repeat: int = 1
    record_mode: str | None = None
    max_memory_growth: int | None = None
    match_on: tuple[str, ...] | None = None
    record_errors: bool = False
    allow_hosts: tuple[str, ...] = ()
    faults: FaultPlan | None = None
    max_rpm: int | None = None
    forbidden_tools: tuple[str, ...] = ()
    max_tool_calls: int | dict[str, int] | None = None
    allow_tool_errors: bool = False

    def limits(self) -> dict[str, Any]:
        """The limits this test set, as JSON values (the report's ``limits``); the output
        schema by its name, since a class or a schema document is not a limit one compares."""
        shown: dict[str, Any] = {}
        for name in ("max_cost", "max_tokens", "max_llm_calls", "max_iterations", "max_seconds",
                     "max_memory_growth"):
            if (value := getattr(self, name)) is not None:
                shown[name] = value
        if self.allow_max_iter:
            shown["allow_max_iter"] = True
        if self.repeat != 1:
            shown["repeat"] = self.repeat
        if isinstance(self.output, (str, Path)):
            shown["output"] = str(self.output)
        elif isinstance(self.output, dict):
            shown["output"] = str(self.output.get("title") or "JSON Schema")
        elif self.output is not None:
            shown["output"] = getattr(self.output, "__name__", repr(self.output))
        return shown


ARGUMENTS: tuple[str, ...] = tuple(f.name for f in fields(GuardSpec))


# name: (whole number?, smallest, largest, example). The upper bounds only catch nonsense
# (10**400, a misplaced exponent): a limit that large is no limit at all.
_NUMBERS: dict[str, tuple[bool, float, float, str]] = {
    "max_cost": (False, 0, 1e9, "max_cost=0.05"),
    "max_seconds": (False, 0, 1e7, "max_seconds=60"),
    "max_tokens": (True, 0, 10**15, "max_tokens=20000"),
    "max_llm_calls": (True, 0, 10**9, "max_llm_calls=10"),
    "max_iterations": (True, 0, 10**6, "max_iterations=4"),
    "max_memory_growth": (True, 0, 10**15, "max_memory_growth=1000000"),
    "repeat": (True, 1, 1000, "repeat=3"),
    "max_rpm": (True, 1, 10**9, "max_rpm=60"),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}… ({len(text)} digits)"


def _number(name: str, value: Any) -> Any:
    integer, low, high, example = _NUMBERS[name]
    kind = "a whole number" if integer else "a number"
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if ok:
        ok = (value > low if name == "max_seconds" else value >= low) and value <= high
    if not ok:
        above = {0: ">= 0", 1: "at least 1"}[int(low)] if name != "max_seconds" else "> 0"
        raise ConfigError(
            f"argument {name}={_shown(value)}: expected {kind} {above} and at most {high:g}, "
            f"e.g. {example}"
        )
    return float(value) if not integer else value


def _check_schema(schema: Any, shown: str) -> None:
    from .output_schema import check_schema

    try:
        check_schema(schema)
    except ConfigError as err:
        raise ConfigError(f"argument output={shown}: {err}") from None


def _output(value: Any, rootdir: Path | None) -> Any:
    from .output_gates import task_map_problem, task_schemas

    per_task = task_schemas(value)
    if per_task is not None:  # {task_name: schema}: each schema checked like a single one
        return {task: _output(schema, rootdir) for task, schema in per_task.items()}
    wrong = task_map_problem(value)
    if wrong:
        raise ConfigError(f"argument output={{...}}: {wrong}")
    if value is None:
        return value
    if isinstance(value, dict):  # checked now: a bad schema fails before any crew runs
        _refuse_task_named_like_a_keyword(value)
        _check_schema(value, "{...}")
        return value
    if isinstance(value, (str, Path)):
        if not str(value).endswith(".json"):
            raise ConfigError(f"argument output={value!r}: a schema file path must end in .json")
        if rootdir is not None:  # read it now: a missing file fails before any crew runs
            from .output_schema import load_schema

            try:
                loaded = load_schema(value, rootdir)
            except ConfigError as err:
                raise ConfigError(
                    f"argument output={str(value)!r}: {err}; give a .json file path relative to "
                    f"the rootdir ({rootdir}), e.g. output=\"schemas/research.json\""
                ) from None
            _check_schema(loaded, repr(str(value)))
        return value
    if isinstance(value, type) and hasattr(value, "model_validate"):
        return value
    raise ConfigError(
        f"argument output={value!r}: expected a pydantic model class, a JSON Schema dict, "
        "or the path of a .json schema file"
    )


def _refuse_task_named_like_a_keyword(value: dict[Any, Any]) -> None:
    """A map of task names whose task is named like a JSON Schema keyword (``format``,
    ``title``) is read as one JSON Schema: say so, not what the schema validator says."""
    from .output_gates import SCHEMA_KEYWORDS

    # A class is never a JSON Schema's value; a .json path is, under "$ref" and the like.
    def names_a_schema(key: Any, schema: Any) -> bool:
        path = isinstance(schema, (str, Path)) and str(schema).endswith(".json")
        return isinstance(schema, type) or (key not in SCHEMA_KEYWORDS and path)

    models = [k for k, v in value.items() if names_a_schema(k, v)]
    keywords = sorted(str(k) for k in value if k in SCHEMA_KEYWORDS)
    if models and keywords:
        raise ConfigError(
            f"argument output={{...}}: its key {keywords[0]!r} is a JSON Schema keyword, so the dict "
            "was read as one JSON Schema, not as a map of task names to schemas. A task named like a "
            f"keyword cannot be named there: check it in the test with run.assert_output(Model, "
            f"task={keywords[0]!r})"
        )


def _allow_hosts(value: Any) -> tuple[str, ...]:
    from .network import parse_allowed  # not at plugin load: it resolves and parses addresses

    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigError(
            f"argument allow_hosts={value!r}: expected a list of hosts or host:port, "
            "e.g. allow_hosts=['localhost:5432']"
        )
    return parse_allowed(value, f"argument allow_hosts={list(value)!r}")


def _tool_name(value: Any, where: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"argument {where}: {value!r} is not a tool name; expected e.g. {example}")
    return value


def _forbidden_tools(value: Any) -> tuple[str, ...]:
    example = "forbidden_tools=['delete_records']"
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigError(
            f"argument forbidden_tools={value!r}: expected a list of tool names, e.g. {example}"
        )
    return tuple(_tool_name(v, f"forbidden_tools={list(value)!r}", example) for v in value)


def _max_tool_calls(value: Any) -> int | dict[str, int]:
    example = "max_tool_calls=10 or max_tool_calls={'search': 3}"

    def count(n: Any, where: str) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10**9:
            raise ConfigError(f"argument {where}: expected a whole number >= 0, e.g. {example}")
        return n

    if isinstance(value, dict):
        return {
            _tool_name(k, f"max_tool_calls={value!r}", example): count(n, f"max_tool_calls[{k!r}]={n!r}")
            for k, n in value.items()
        }
    return count(value, f"max_tool_calls={_shown(value)}")


def spec_from_marker(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    where: str,
    *,
    cassette_dir: Path | None = None,
    rootdir: Path | None = None,
) -> GuardSpec:
    """Validate marker arguments; a bad one raises ``ConfigError`` naming it and the fix.

    With ``cassette_dir`` a ``cassette=`` path must stay inside it; with ``rootdir`` an
    ``output=`` schema file must exist and be a JSON object.
    """
    try:
        if args:
            raise ConfigError(
                f"positional arguments {args!r} are not accepted; name them, "
                "e.g. @pytest.mark.crewguard(max_cost=0.01)"
            )
        for name in kwargs:
            if name not in ARGUMENTS:
                close = difflib.get_close_matches(name, ARGUMENTS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown argument {name!r}{hint}; known arguments: {', '.join(ARGUMENTS)}")
        values = dict(kwargs)
        for name in _NUMBERS:
            if values.get(name) is not None or (name == "repeat" and name in values):
                values[name] = _number(name, values[name])
        for name in ("allow_max_iter", "record_errors", "allow_tool_errors"):
            if not isinstance(values.get(name, False), bool):
                raise ConfigError(f"argument {name}={values[name]!r}: expected True or False")
        if values.get("match_on") is not None:
            values["match_on"] = parse_match_on(values["match_on"], "argument match_on")
        mode = values.get("record_mode")
        if mode is not None and mode not in RECORD_MODES:
            raise ConfigError(f"argument record_mode={mode!r}: expected one of {', '.join(RECORD_MODES)}")
        cassette = values.get("cassette")
        if cassette is not None and not isinstance(cassette, (str, Path)):
            raise ConfigError(f"argument cassette={cassette!r}: expected a path relative to the cassette dir")
        if cassette is not None:
            values["cassette"] = str(cassette)
            if cassette_dir is not None:
                check_inside(cassette_dir, values["cassette"])
        values["output"] = _output(values.get("output"), rootdir)
        if values.get("faults") is not None:
            values["faults"] = parse_faults(values["faults"])
        if "allow_hosts" in values:
            values["allow_hosts"] = _allow_hosts(values["allow_hosts"])
        if "forbidden_tools" in values:
            values["forbidden_tools"] = _forbidden_tools(values["forbidden_tools"])
        if values.get("max_tool_calls") is not None:
            values["max_tool_calls"] = _max_tool_calls(values["max_tool_calls"])
        return GuardSpec(**values)
    except ConfigError as err:
        raise ConfigError(f"@pytest.mark.crewguard on {where}: {err}") from None
