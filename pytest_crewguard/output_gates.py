"""The ``output=`` gate: which output each schema applies to.

``output=Brief`` checks the final output of what the test kicked off: a crew's ``CrewOutput``,
or, for :meth:`~pytest_crewguard.guard.CrewGuard.kickoff_flow`, the flow's return value (not
every crew the flow runs). ``output={"write": Brief}`` checks task ``write`` wherever it runs,
in any crew; a failure names the crew and the task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError
from .verdict import Gate, Violation

# Keys that make a dict a JSON Schema rather than a ``{task_name: schema}`` map.
SCHEMA_KEYWORDS = frozenset(
    {
        "$schema", "$ref", "$defs", "$id", "type", "properties", "required", "items", "title",
        "description", "anyOf", "oneOf", "allOf", "not", "enum", "const", "definitions",
        "additionalProperties", "patternProperties", "pattern", "minLength", "maxLength",
        "minimum", "maximum", "format", "prefixItems", "if", "then", "else",
    }
)  # fmt: skip


def is_schema(value: Any) -> bool:
    """A pydantic model class, a JSON Schema dict or a ``.json`` path."""
    if isinstance(value, type) and hasattr(value, "model_validate"):
        return True
    if isinstance(value, (str, Path)):
        return str(value).endswith(".json")
    return isinstance(value, dict)


def task_schemas(value: Any) -> dict[str, Any] | None:
    """``{task_name: schema}`` when ``value`` is a per-task map, else ``None`` (one schema)."""
    if not isinstance(value, dict) or not value or set(value) & SCHEMA_KEYWORDS:
        return None
    if all(isinstance(k, str) and is_schema(v) for k, v in value.items()):
        return {k.strip(): v for k, v in value.items()}
    return None


def task_map_problem(value: Any) -> str | None:
    """What is wrong with a dict meant as ``{task_name: schema}`` (``None`` if it is not one)."""
    if not isinstance(value, dict) or not value or set(value) & SCHEMA_KEYWORDS:
        return None
    # No JSON Schema keyword at its top: a map of task names, whatever its values are (read as
    # a schema, {"write": SomeDataclass} would accept any object).
    for task, schema in value.items():
        if not is_schema(schema):
            return (
                f"task {task!r} has {schema!r}, which is not a schema (and the dict has no JSON "
                "Schema keyword such as type or properties, so it is not one itself); give each "
                'task a pydantic model class, a JSON Schema dict or a .json file path, e.g. '
                'output={"write": Brief}'
            )
    return None


def _task_name(output: Any) -> str:
    return str(getattr(output, "name", None) or getattr(output, "description", None) or "").strip()


def _where(run: Any, task: str) -> str:
    crew = getattr(run, "crew", None)
    step = getattr(run, "flow_step", None)
    parts = [f"crew {crew!r}" if crew else "", f"flow step {step!r}" if step else "", f"task {task!r}"]
    return ", ".join(p for p in parts if p)


def output_violations(spec_output: Any, run: Any) -> list[Violation]:
    """The ``output=`` gate on one run (a crew, an ``Agent.kickoff()``)."""
    from .output_schema import check_output

    if spec_output is None:
        return []
    per_task = task_schemas(spec_output)
    if per_task is None:
        if getattr(run, "flow_step", None):
            return []  # a crew inside a flow: the schema is the flow's (see kickoff_flow)
        checked = _One(_Value(run.output)) if isinstance(run.output, str) else run
        problem = check_output(checked, spec_output, rootdir=run.rootdir)
        return [Violation(Gate.OUTPUT, problem)] if problem else []
    found: list[Violation] = []
    for output in run.task_outputs:
        name = _task_name(output)
        if name not in per_task:
            continue
        problem = check_output(_One(output), per_task[name], rootdir=run.rootdir)
        if problem:
            message = problem.replace("the crew's final output", f"the output of {_where(run, name)}", 1)
            found.append(Violation(Gate.OUTPUT, message, {"crew": run.crew, "task": name}))
    return found


def unmatched_tasks(spec_output: Any, runs: list[Any]) -> list[str]:
    """Tasks named in ``output={...}`` that no run of the test ran (a typo, a renamed task)."""
    per_task = task_schemas(spec_output)
    if not per_task:
        return []
    seen = {_task_name(o) for run in runs for o in run.task_outputs}
    return [name for name in per_task if name not in seen]


def end_of_test_violations(spec_output: Any, runs: list[Any], assembly: Any) -> list[Violation]:
    """What ``output=`` finds at the test's end over all its runs: a task of ``output={...}``
    that no run ran, or a schema with no output at all to check. Either would pass on nothing
    (a typo, a coroutine never awaited, a stream never read). Flows run by ``kickoff_flow``
    were checked by their runner."""
    if spec_output is None or assembly.fixture_flows:
        return []
    flows = assembly.events.count("flow_finished")
    if task_schemas(spec_output) is None:
        if runs or flows:
            return []
        message = (
            f"output={_shown(spec_output)} is set, but no crew or flow of this test gave an output "
            "to check: no kickoff ran. Was a coroutine not awaited (await crewguard.kickoff_async"
            "(...)), a stream not read to its end, or the kickoff left out?"
        )
        return [Violation(Gate.OUTPUT, message)]
    missing = unmatched_tasks(spec_output, runs)
    if not missing:
        return []
    ran = sorted({(r.crew or "-", _task_name(o)) for r in runs for o in r.task_outputs})
    known = ", ".join(f"{task!r} (crew {crew!r})" for crew, task in ran) or "none: no kickoff ran"
    names = ", ".join(map(repr, missing))
    message = (
        f"output={{...}} names task{'s' if len(missing) > 1 else ''} {names} but this test ran no such "
        f"task, so nothing was checked against {'them' if len(missing) > 1 else 'it'}; its tasks: {known}. "
        "Name the task as the crew's Task(name=...) does."
    )
    return [Violation(Gate.OUTPUT, message)]


def _shown(schema: Any) -> str:
    name = getattr(schema, "__name__", None)
    return name or (repr(str(schema)) if isinstance(schema, (str, Path)) else "{...}")


def flow_output_violation(spec_output: Any, output: Any, rootdir: Path | None) -> Violation | None:
    """The plain ``output=`` schema against a flow's return value."""
    from .output_schema import check_output

    if spec_output is None or task_schemas(spec_output) is not None:
        return None
    problem = check_output(_One(_as_output(output)), spec_output, rootdir=rootdir)
    if problem:
        return Violation(Gate.OUTPUT, problem.replace("the crew's final output", "the flow's output", 1))
    return None


def application_flow_violations(spec_output: Any, assembly: Any, rootdir: Path | None) -> list[Violation]:
    """The plain ``output=`` schema against what each flow the application ran returned.

    The crews inside a flow are not what the test kicked off, so the schema is the flow's:
    a flow kicked off by application code is checked here, at the end of the test, from
    CrewAI's ``flow_finished`` event (flows run by ``kickoff_flow`` were checked already).
    """
    if spec_output is None or task_schemas(spec_output) is not None:
        return []
    events = assembly.events
    found: list[Violation] = []
    for finished in events.ordered("flow_finished"):
        started = events.get(finished.started_id)
        if started is None or started.event_id in assembly.fixture_flows or started.parent_id:
            continue  # unknown, already checked, or a flow run inside another flow's step
        try:
            problem = flow_output_violation(spec_output, finished.output, rootdir)
        except ConfigError as err:
            problem = Violation(Gate.OUTPUT, str(err))
        if problem is not None:
            name = started.flow_name or "the application's flow"
            found.append(Violation(Gate.OUTPUT, problem.message.replace("the flow's", f"flow {name}'s", 1)))
    return found


class _One:
    """One output in the shape :func:`~pytest_crewguard.output_schema.check_output` reads."""

    def __init__(self, output: Any) -> None:
        self.output = output
        self.task_outputs: list[Any] = []


class _Value:
    """A plain return value (a dict, a model, a string) with a ``.raw``/``.json_dict``."""

    def __init__(self, value: Any) -> None:
        self.pydantic = value if hasattr(value, "model_dump") else None
        self.json_dict = value if isinstance(value, dict) else None
        self.raw = value if isinstance(value, str) else ""


def _as_output(value: Any) -> Any:
    if value is None or hasattr(value, "raw"):
        return value
    if isinstance(value, (dict, str)) or hasattr(value, "model_dump"):
        return _Value(value)
    raise ConfigError(
        f"output=: the flow returned a {type(value).__name__}, which no schema can check; return "
        "a dict, a pydantic model, a string of JSON or a crew's output from the flow's last step"
    )
