"""Structured output: does a crew's (or a task's) output match its schema?

A schema is a pydantic model class, a JSON Schema dict, or the path of a ``.json`` schema file
(relative to the rootdir). Failures name every failing field path, e.g.
``key_findings[1]: 3 is not of type 'string'``, followed by an excerpt of the raw output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

_FENCE = re.compile(r"```(?:json)?(.*)```", re.DOTALL)  # on stripped text: linear


def field_path(parts: Sequence[Any]) -> str:
    """``("key_findings", 1, "title")`` -> ``key_findings[1].title``; ``()`` -> ``(root)``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(root)"


def schema_name(schema: Any) -> str:
    if isinstance(schema, type):
        return schema.__name__
    if isinstance(schema, dict):
        return str(schema.get("title") or "the JSON Schema")
    return str(schema)


def load_schema(schema: Any, rootdir: Path | None) -> Any:
    """A pydantic model class or JSON Schema dict; a ``.json`` path is read (rootdir-relative)."""
    if isinstance(schema, (str, Path)):
        path = Path(schema)
        if not path.is_absolute() and rootdir is not None:
            path = rootdir / path
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"output schema file {schema}: cannot read {path} ({err.strerror})") from None
        except ValueError as err:
            raise ConfigError(f"output schema file {schema}: not valid JSON ({err})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"output schema file {schema}: expected a JSON object (a JSON Schema)")
        if "title" not in loaded:
            loaded["title"] = path.name
        return loaded
    return schema


def check_schema(schema: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the schema, the problem and where it is, when
    ``schema`` is not a valid JSON Schema (draft 2020-12)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        title = schema.get("title")
        name = f"output schema {title!r}" if title else "this schema"
        where = "/".join(map(str, err.absolute_path)) or "the top level"
        raise ConfigError(f"{name} is not a valid JSON Schema: {err.message} (at {where})") from None


def _raw_of(output: Any) -> str:
    raw = getattr(output, "raw", None)
    return "" if raw is None else str(raw)


def output_data(output: Any) -> tuple[Any, str]:
    """The structured data of a ``CrewOutput``/``TaskOutput``: ``.pydantic``, ``.json_dict``,
    or the raw text parsed as JSON (code fences allowed). Returns ``(data, raw_text)``;
    data is ``None`` when there is nothing to parse."""
    raw = _raw_of(output)
    model = getattr(output, "pydantic", None)
    if model is not None and hasattr(model, "model_dump"):
        return model.model_dump(mode="json"), raw
    as_dict = getattr(output, "json_dict", None)
    if as_dict:
        return as_dict, raw
    if not raw.strip():
        return None, raw
    text = raw.strip()
    fenced = _FENCE.fullmatch(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text), raw
    except ValueError as err:
        return _NotJson(str(err)), raw


class _NotJson:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def validation_errors(schema: Any, data: Any) -> list[str]:
    """``path: message`` for every way ``data`` fails ``schema``."""
    if isinstance(schema, type) and hasattr(schema, "model_validate"):
        from pydantic import ValidationError

        try:
            schema.model_validate(data)
        except ValidationError as err:
            return pydantic_errors(err.errors())
        return []
    from jsonschema import Draft202012Validator

    check_schema(schema)
    lines: list[tuple[list[str], str]] = []
    for error in Draft202012Validator(schema).iter_errors(data):
        path = list(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            # Name the missing field itself, as pydantic does, rather than its parent object.
            for name in error.validator_value:
                if name not in error.instance:
                    lines.append(
                        (
                            [*map(str, path), name],
                            f"{field_path([*path, name])}: required property is missing",
                        )
                    )
            continue
        lines.append((list(map(str, path)), f"{field_path(path)}: {error.message}"))
    return [line for _, line in sorted(lines, key=lambda item: item[0])]


def pydantic_errors(errors: Iterable[Any]) -> list[str]:
    """pydantic's error dicts as ``path: message (got value)`` lines."""
    lines = []
    for error in errors:
        got = error.get("input")
        shown = "" if error.get("type") == "missing" else f" (got {got!r})"
        lines.append(f"{field_path(error.get('loc', ()))}: {error.get('msg')}{shown}"[:300])
    return lines


def excerpt(raw: str, limit: int = 300) -> str:
    text = raw.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def _pick(run: Any, task: str | None) -> tuple[Any, str]:
    if task is None:
        return run.output, "the crew's final output"
    outputs = run.task_outputs
    for output in outputs:
        own = (getattr(output, "name", None), getattr(output, "description", None))
        if task.strip() in [str(n).strip() for n in own if n]:
            return output, f"the output of task {task!r}"
    names = ", ".join(repr(getattr(o, "name", None) or getattr(o, "description", "")[:40]) for o in outputs)
    raise ConfigError(
        f"assert_output(task={task!r}): the run has no such task; its tasks: {names or '(none)'}"
    )


def check_output(run: Any, schema: Any, task: str | None = None, rootdir: Path | None = None) -> str | None:
    """``None`` when the chosen output matches ``schema``; else the failure text."""
    resolved = load_schema(schema, rootdir)
    output, what = _pick(run, task)
    name = schema_name(resolved)
    if output is None:
        return f"{what} is missing: the kickoff produced no output to check against {name}."
    data, raw = output_data(output)
    if data is None:
        return (
            f"{what} is empty: the agent returned no text, so there is nothing to check against "
            f"{name}. Make the task's expected_output specific (the fields you need) and check "
            "that the agent does not stop early."
        )
    if isinstance(data, _NotJson):
        if isinstance(resolved, dict) and resolved.get("type") == "string":
            data = raw  # a text task checked against a string schema (pattern, minLength...)
        else:
            return (
                f"{what} is not JSON ({data.reason}), so it cannot match {name}.\n"
                f"  raw output: {excerpt(raw)}"
            )
    problems = validation_errors(resolved, data)
    if not problems:
        return None
    lines = [f"{what} does not match {name}:"]
    lines += [f"  {line}" for line in problems]
    lines.append(f"  raw output: {excerpt(raw)}")
    return "\n".join(lines)


# What CrewAI raises when the model's answer is empty, after its own retries.
_EMPTY_RESPONSE = "None or empty"


def crewai_output_error(error: BaseException, run: Any = None) -> str | None:
    """The failure text when CrewAI itself rejected the model's output, else ``None``:
    a structured output that does not validate, or an empty answer."""
    from pydantic import ValidationError

    calls = list(getattr(run, "calls", None) or [])
    last = calls[-1] if calls else None
    where = f" (agent {last.agent!r} on task {last.task!r})" if last is not None and last.agent else ""
    spent = f"; the run made {len(calls)} LLM calls, all recorded" if calls else ""
    if isinstance(error, ValidationError):
        lines = [f"CrewAI could not build {error.title} from the model's output{where}{spent}:"]
        lines += [f"  {line}" for line in pydantic_errors(error.errors())]
        whole = next((e.get("input") for e in error.errors() if isinstance(e.get("input"), dict)), None)
        if whole is not None:
            lines.append(f"  model output: {excerpt(json.dumps(whole, default=str))}")
        return "\n".join(lines)
    if type(error).__name__ == "ConverterError":
        return f"CrewAI could not convert the model's output to the task's schema{where}{spent}: {error}"
    if isinstance(error, ValueError) and _EMPTY_RESPONSE in str(error):
        return (
            f"the output is empty: the model returned an empty answer{where} and CrewAI gave up "
            f"({error}){spent}. Check the model's replies in the cassette; a prompt that asks for "
            "something specific (the task's expected_output) usually fixes it."
        )
    return None
