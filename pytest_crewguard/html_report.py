"""The HTML report (``--crewguard-html``): one self-contained file to open from a CI artifact.

The session table with the terminal's numbers, then per test a timeline of each run on the
projected time axis (local time plus each call's recorded latency): its tasks, tool calls and
LLM calls, each call opening to its prompt messages and answer. No script, font or stylesheet is
fetched: the page is plain HTML with inline CSS, and every text in it is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

from .baseline import comparison_lines
from .html_style import CSS
from .limits import cost_text
from .money import sum_usd, usd
from .report import _cost, _plural, _seconds, _tokens, report_data, table_rows
from .secret_refusal import masked_text
from .session import CrewguardSession, GuardedTest


def _e(value: Any) -> str:
    # Every text shown, the crew's conversation included, with secrets masked: a key the model
    # streamed in pieces, or one the cassette writer refused, must not reach the page either.
    return escape(masked_text("" if value is None else str(value)))


def _changes(baseline: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, str]:
    """``{test or "TOTAL": "cost $a -> $b (+x%), ..."}`` for what changed since the baseline."""
    if baseline is None:
        return {}
    found: dict[str, str] = {}
    for line in comparison_lines(baseline, current):
        name, _, change = line.rpartition(": ")
        found[name] = f"{found[name]}; {change}" if name in found else change  # grew and shrank
    return found


def _table(session: CrewguardSession, records: list[GuardedTest], changes: dict[str, str]) -> str:
    # The terminal's own rows (report.table_rows, sorted by node id like ``records``), so the
    # page shows exactly the numbers the terminal does.
    headers, cells_of = table_rows(session)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    rows = []
    for i, (record, cells) in enumerate(zip(records, cells_of, strict=False)):
        first = f'<a href="#t{i}">{_e(cells[0])}</a>'
        change = changes.get(record.nodeid)
        if change:
            first += f'<br><span class="chg small">{_e(change)}</span>'
        verdict_class = "bad" if record.verdict != "passed" else "ok"
        rest = "".join(f"<td>{_e(c)}</td>" for c in cells[1:-1])
        rows.append(
            f'<tr class="{"changed" if change else ""}"><td>{first}</td>{rest}'
            f'<td class="{verdict_class}">{_e(cells[-1])}</td></tr>'
        )
    totals = report_data(session)["totals"]
    # The numbers only: lists (unpriced models) and unknowns (null projected time) are not data.
    data = " ".join(f'data-{k.replace("_", "-")}="{_e(v)}"' for k, v in sorted(totals.items())
                    if isinstance(v, (int, float)))
    total = "".join(f"<td>{_e(c)}</td>" for c in cells_of[-1])
    rows.append(f'<tr class="total" id="totals" {data}>{total}</tr>')
    body = "".join(rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _session_lines(session: CrewguardSession, changes: dict[str, str], baseline: bool) -> str:
    lines = []
    if session.budget is not None:
        over = session.over_budget
        state = f"OVER by {usd(over)}" if over is not None else "ok"
        spent = cost_text(session.total_cost, exact=session.cost_exact)
        cls = "bad" if over is not None else ""
        text = f"session budget: {spent} of {usd(session.budget)} ({state})"
        lines.append(f'<p class="meta {cls}">{_e(text)}</p>')
    if baseline:
        total = changes.get("TOTAL")
        text = f"since the baseline: TOTAL {total}" if total else "no change in the totals since the baseline"
        lines.append(f'<p class="meta chg">{_e(text)}</p>')
    lines.append(f'<p class="meta small">prices: {_e(session.prices.version)}</p>')
    return "".join(lines)


def _sum_calls(calls: Iterable[dict[str, Any]]) -> tuple[int, int, int, str]:
    """(calls, input tokens, output tokens, cost text) of some of a test's calls."""
    calls = list(calls)
    known = [c for c in calls if c.get("usage_known", True)]
    cost = sum_usd(c["cost"] for c in calls if c.get("cost") is not None)
    exact = all(c.get("cost") is not None for c in calls)
    return (
        len(calls),
        sum(c.get("input_tokens") or 0 for c in known),
        sum(c.get("output_tokens") or 0 for c in known),
        cost_text(cost, exact=exact),
    )


def _breakdown(calls: list[dict[str, Any]]) -> str:
    """Calls, tokens and cost per agent and per task."""
    parts = []
    for key, title in (("agent", "agent"), ("task", "task")):
        groups: dict[str, list[dict[str, Any]]] = {}
        for call in calls:
            groups.setdefault(call.get(key) or "(none)", []).append(call)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (name, *_sum_calls(group))) + "</tr>"
            for name, group in groups.items()
        )
        parts.append(
            f'<table class="small"><thead><tr><th>{title}</th><th>calls</th><th>in tok</th>'
            f"<th>out tok</th><th>cost</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return '<div style="display:flex;gap:2em;flex-wrap:wrap">' + "".join(parts) + "</div>"


def _pct(value: float, span: float) -> str:
    return f"{min(max(value / span * 100, 0.0), 100.0):.2f}%" if span > 0 else "0%"


def _message_html(message: dict[str, Any], cls: str) -> str:
    tools = "".join(
        f"<pre>→ {_e(t.get('name'))}({_e(t.get('arguments'))})</pre>" for t in message.get("tool_calls") or []
    )
    text = f"<pre>{_e(message.get('text'))}</pre>" if message.get("text") else ""
    return f'<div class="msg {_e(cls)}"><b>{_e(message.get("role"))}</b>{text}{tools}</div>'


def _call_html(item: dict[str, Any], call: dict[str, Any], span: float) -> str:
    forced = bool(call.get("forced_final_answer"))
    latency = item.get("latency_s")
    tokens = (
        f"in={call.get('input_tokens')} out={call.get('output_tokens')}"
        if call.get("usage_known", True) else "usage unknown"
    )
    cost = usd(call["cost"]) if call.get("cost") is not None else "cost unknown"
    label = (
        f"#{item['call'] + 1} {call.get('agent') or '-'} · {tokens} · {cost}"
        f" · {'n/a' if latency is None else f'{latency:.2f}s'}" + (" · FORCED FINAL ANSWER" if forced else "")
    )
    style = f"left:{_pct(item['at_s'], span)};width:{_pct(latency or 0.0, span)}"
    bar = f'<span class="bar" style="{style}"></span>'
    where = f"{call.get('model') or '?'} at {call.get('url') or '?'}, task {call.get('task') or '-'}"
    body = f'<p class="meta small">{_e(where)}</p>'
    body += "".join(_message_html(m, m.get("role", "")) for m in item.get("messages") or [])
    if item.get("omitted_messages"):
        note = f'<p class="meta small">… {item["omitted_messages"]} earlier messages not kept</p>'
        body = body.replace("</div>", "</div>" + note, 1)
    reply = item.get("reply")
    if reply:
        body += _message_html({**reply, "role": "answer"}, "reply")
    else:
        body += '<p class="meta">no answer read</p>'
    status = call.get("status")
    if status and int(status) >= 400:
        body += f'<p class="bad">HTTP {_e(status)}</p>'
    # The calls to look at first are open: a forced final answer, an error answer.
    opened = " open" if forced or (status and int(status) >= 400) else ""
    return (
        f'<details class="call{" forced" if forced else ""}"{opened}><summary class="row">'
        f'<span class="label" title="{_e(label)}">{_e(label)}</span><span class="track">{bar}</span>'
        f'</summary><div class="msgs">{body}</div></details>'
    )


def _run_html(n: int, run: dict[str, Any], calls: list[dict[str, Any]]) -> str:
    span = float(run.get("span_s") or 0.0) or 1.0
    items = run.get("items") or []
    mine = [calls[i["call"]] for i in items if i.get("kind") == "call" and i["call"] < len(calls)]
    count, tin, tout, cost = _sum_calls(mine)
    head = (
        f"<h3>run {n}: {_plural(count, 'LLM call')}, in={tin} out={tout}, {_e(cost)}, "
        f"time {_e(_seconds(run.get('elapsed_s')))}, projected {_e(_seconds(run.get('projected_s')))}</h3>"
    )
    rows = []
    task_starts = [i["at_s"] for i in items if i.get("kind") == "task"]
    for item in items:
        kind = item.get("kind")
        if kind == "task":
            later = [t for t in task_starts if t > item["at_s"]]
            end = later[0] if later else span
            agent = f" ({item['agent']})" if item.get("agent") else ""
            style = f"left:{_pct(item['at_s'], span)};width:{_pct(end - item['at_s'], span)}"
            rows.append(
                f'<div class="row task"><span class="label">task: {_e(item.get("name"))}{_e(agent)}</span>'
                f'<span class="track"><span class="span" style="{style}"></span></span></div>'
            )
        elif kind == "tool":
            error = item.get("error")
            text = f"tool: {item.get('name')}({item.get('args') or ''})"
            text += f" failed: {error}" if error else ""
            tick = f'<span class="tick" style="left:{_pct(item["at_s"], span)}"></span>'
            rows.append(
                f'<div class="row tool{" err" if error else ""}"><span class="label" title="{_e(text)}">'
                f'{_e(text)}</span><span class="track">{tick}</span></div>'
            )
        elif kind == "call" and item["call"] < len(calls):
            rows.append(_call_html(item, calls[item["call"]], span))
    axis = (
        '<div class="row"><span></span><span class="axis"><span>0s</span>'
        f"<span>{span:.2f}s projected</span></span></div>"
    )
    error = f'<p class="bad">the kickoff failed: {_e(run["error"])}</p>' if run.get("error") else ""
    return head + error + '<div class="tl">' + axis + "".join(rows) + "</div>" + _breakdown(mine)


def _test_html(i: int, record: GuardedTest, change: str | None) -> str:
    failed = record.verdict != "passed"
    parts = [
        f'<section class="test{" failed" if failed else ""}" id="t{i}">',
        f'<h2>{_e(record.nodeid)} <span class="{"bad" if failed else "ok"}">{_e(record.verdict)}</span></h2>',
        f'<p class="meta">{_e(_plural(record.llm_calls, "LLM call"))}, '
        f"in={_e(_tokens(record.input_tokens, record.usage_unknown))} "
        f"out={_e(_tokens(record.output_tokens, record.usage_unknown))}, {_e(_cost(record))}, "
        f"{_e(_plural(record.runs, 'run'))}</p>",
    ]
    if record.failed_gates:
        gates = ", ".join(dict.fromkeys(record.failed_gates))
        parts.append(f'<p class="bad">failed gates: {_e(gates)}</p>')
    if record.max_iter_hits:
        hits = _plural(record.max_iter_hits, "forced final answer")
        parts.append(f'<p class="bad">{_e(hits)} (max_iter hit)</p>')
    if change:
        parts.append(f'<p class="chg">since the baseline: {_e(change)}</p>')
    parts += [f'<p class="meta small">{_e(note)}</p>' for note in record.notes]
    if record.timeline:
        parts += [_run_html(n, run, record.calls) for n, run in enumerate(record.timeline, 1)]
    elif record.calls:
        parts.append(_breakdown(record.calls))
    parts.append("</section>")
    return "".join(parts)


def render(session: CrewguardSession, baseline: dict[str, Any] | None = None) -> str:
    """The whole report as one HTML document."""
    records = sorted(session.records.values(), key=lambda r: r.nodeid)
    changes = _changes(baseline, report_data(session))
    body = [
        "<h1>crewguard report</h1>",
        _table(session, records, changes),
        _session_lines(session, changes, baseline is not None),
        *(_test_html(i, r, changes.get(r.nodeid)) for i, r in enumerate(records)),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        # Nothing may load from elsewhere: the page is opened from a CI artifact, often offline.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>crewguard report</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_html(session: CrewguardSession, path: Path, *, baseline: dict[str, Any] | None = None) -> None:
    """Write the HTML report atomically."""
    from .persister import atomic_write

    atomic_write(path, render(session, baseline))
