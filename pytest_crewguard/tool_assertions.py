"""``assert_tools``: the tool calls a run made, against the ones a test expects.

An expected item is a tool name, or ``(name, args_pattern)`` where ``args_pattern`` maps an
argument to an exact value, a compiled regular expression (searched in the value's text) or a
callable that returns true for an acceptable value. Names compare the way CrewAI sends them
to the model, so ``"Delegate work to coworker"`` matches ``delegate_work_to_coworker``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .tool_calls import ToolInvocation, short, tool_key

MODES = ("exact", "subsequence", "set")
Expected = str | tuple[str, Mapping[str, Any]]


class _Item:
    """One expected call."""

    def __init__(self, raw: Any) -> None:
        if isinstance(raw, str):
            name, pattern = raw, {}
        elif (
            isinstance(raw, tuple)
            and len(raw) == 2
            and isinstance(raw[0], str)
            and isinstance(raw[1], Mapping)
        ):
            name, pattern = raw[0], dict(raw[1])
        else:
            raise TypeError(
                f"assert_tools: expected item {raw!r} is neither a tool name nor (name, args_pattern), "
                "e.g. 'search' or ('search', {'query': re.compile('agents')})"
            )
        self.name = name
        self.key = tool_key(name)
        self.pattern: dict[str, Any] = pattern

    def matches(self, call: ToolInvocation) -> bool:
        if tool_key(call.tool) != self.key:
            return False
        args = call.args
        return all(name in args and _accepts(want, args[name]) for name, want in self.pattern.items())

    def text(self) -> str:
        if not self.pattern:
            return self.name
        shown = ", ".join(f"{k}={_pattern_text(v)}" for k, v in self.pattern.items())
        return f"{self.name}({shown})"


def _accepts(want: Any, value: Any) -> bool:
    if isinstance(want, re.Pattern):
        return want.search(value if isinstance(value, str) else str(value)) is not None
    if callable(want) and not isinstance(want, type):
        return bool(want(value))
    return bool(want == value)


def _pattern_text(want: Any) -> str:
    if isinstance(want, re.Pattern):
        return f"/{want.pattern}/"
    if callable(want) and not isinstance(want, type):
        return f"<{getattr(want, '__name__', 'check')}>"
    return short(want, 40)


def _aligned(items: Sequence[_Item], calls: Sequence[ToolInvocation]) -> list[tuple[str, str]]:
    """A diff of expected items against actual calls (longest common subsequence):
    ``(" ", ...)`` matched, ``("-", ...)`` expected but not made, ``("+", ...)`` made but not expected."""
    n, m = len(items), len(calls)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = (
                best[i + 1][j + 1] + 1 if items[i].matches(calls[j]) else max(best[i + 1][j], best[i][j + 1])
            )
    lines: list[tuple[str, str]] = []
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and items[i].matches(calls[j]) and best[i][j] == best[i + 1][j + 1] + 1:
            lines.append((" ", calls[j].describe()))
            i, j = i + 1, j + 1
        elif j < m and (i == n or best[i][j + 1] >= best[i + 1][j]):
            lines.append(("+", calls[j].describe()))
            j += 1
        else:
            lines.append(("-", items[i].text()))
            i += 1
    return lines


def _who(agent: str | None, task: str | None) -> str:
    parts = [f"agent={agent!r}" if agent is not None else "", f"task={task!r}" if task is not None else ""]
    shown = ", ".join(p for p in parts if p)
    return f" ({shown})" if shown else ""


def tools_problem(
    calls: Sequence[ToolInvocation],
    expected: Sequence[Expected],
    mode: str = "exact",
    agent: str | None = None,
    task: str | None = None,
) -> str | None:
    """Why ``calls`` do not meet ``expected`` under ``mode``, or ``None`` when they do."""
    if mode not in MODES:
        raise ValueError(f"assert_tools: mode={mode!r}; expected one of {', '.join(MODES)}")
    if isinstance(expected, (str, bytes)):
        raise TypeError(f"assert_tools: expected={expected!r} is a string; pass a list, e.g. [{expected!r}]")
    items = [_Item(raw) for raw in expected]
    chosen = [c for c in calls if (agent is None or c.agent == agent) and (task is None or c.task == task)]
    head = f"assert_tools(mode={mode!r}){_who(agent, task)}"
    if mode == "set":
        missing = [item.text() for item in items if not any(item.matches(c) for c in chosen)]
        extra = [c.describe() for c in chosen if not any(item.matches(c) for item in items)]
        if not missing and not extra:
            return None
        lines = [f"{head}: the tools called differ from the expected set"]
        lines += [f"  - {text}   (expected, never called)" for text in missing]
        lines += [f"  + {text}   (called, not expected)" for text in extra]
        return "\n".join(lines)
    diff = _aligned(items, chosen)
    if mode == "exact" and all(sign == " " for sign, _ in diff):
        return None
    if mode == "subsequence" and not any(sign == "-" for sign, _ in diff):
        return None
    note = " (calls marked + are allowed in subsequence mode)" if mode == "subsequence" else ""
    lines = [
        f"{head}: {len(items)} expected, {len(chosen)} made; - expected but not made, "
        f"+ made but not expected{note}"
    ]
    lines += [f"  {sign} {text}" for sign, text in diff] or ["    (no calls, nothing expected)"]
    return "\n".join(lines)


def assert_tools(
    calls: Sequence[ToolInvocation],
    expected: Sequence[Expected],
    mode: str = "exact",
    agent: str | None = None,
    task: str | None = None,
) -> None:
    """Raise ``AssertionError`` with a diff when ``calls`` do not meet ``expected``."""
    __tracebackhide__ = True
    problem = tools_problem(calls, expected, mode, agent, task)
    if problem:
        raise AssertionError(problem)

