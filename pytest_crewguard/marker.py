"""The ``@pytest.mark.crewguard(...)`` marker: its arguments, checked once, as a ``GuardSpec``."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .match_config import parse_match_on

RECORD_MODES: tuple[str, ...] = ("none", "once", "new_episodes", "all", "rewrite")


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


ARGUMENTS: tuple[str, ...] = tuple(f.name for f in fields(GuardSpec))


def _number(name: str, value: Any, *, integer: bool, minimum: float) -> Any:
    kind = "a whole number" if integer else "a number"
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not ok or value < minimum:
        bound = "at least 1" if minimum >= 1 else ">= 0"
        raise ConfigError(f"argument {name}={value!r}: expected {kind} {bound}")
    return value


def _output(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, (str, Path)):
        if not str(value).endswith(".json"):
            raise ConfigError(f"argument output={value!r}: a schema file path must end in .json")
        return value
    if isinstance(value, type) and hasattr(value, "model_validate"):
        return value
    raise ConfigError(
        f"argument output={value!r}: expected a pydantic model class, a JSON Schema dict, "
        "or the path of a .json schema file"
    )


def spec_from_marker(args: tuple[Any, ...], kwargs: dict[str, Any], where: str) -> GuardSpec:
    """Validate marker arguments; a bad one raises ``ConfigError`` naming it and the fix."""
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
        for name in ("max_cost", "max_seconds"):
            if values.get(name) is not None:
                values[name] = float(_number(name, values[name], integer=False, minimum=0))
        if values.get("max_seconds") == 0:
            raise ConfigError("argument max_seconds=0: expected a number > 0")
        for name in ("max_tokens", "max_llm_calls", "max_iterations", "max_memory_growth"):
            if values.get(name) is not None:
                _number(name, values[name], integer=True, minimum=0)
        if "repeat" in values:
            _number("repeat", values["repeat"], integer=True, minimum=1)
        for name in ("allow_max_iter", "record_errors"):
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
        values["output"] = _output(values.get("output"))
        return GuardSpec(**values)
    except ConfigError as err:
        raise ConfigError(f"@pytest.mark.crewguard on {where}: {err}") from None
