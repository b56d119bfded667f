"""The HTML report shows what the crew said and did as text, never as markup.

Prompts, answers, tool arguments, agent roles and test ids come from the application and the
provider: a ``<script>`` in any of them is shown, not run, and cannot close the report's own
elements. Forced final answers, failed gates and baseline changes are marked.
"""

from __future__ import annotations

from typing import Any

from pytest_crewguard.html_report import render
from pytest_crewguard.html_timeline import FOLD_AT, fold
from pytest_crewguard.pricing import PriceTable
from pytest_crewguard.session import CrewguardSession, GuardedTest

EVIL = "<script>alert(1)</script></pre></details><img src=x onerror=alert(2)>\"'&"


def _call(**changes: Any) -> dict[str, Any]:
    call = {
        "agent": EVIL, "task": EVIL, "model": "gpt-4o-mini", "provider": "openai", "input_tokens": 100,
        "output_tokens": 10, "cost": 0.0001, "recorded_latency_s": 0.5, "forced_final_answer": False,
        "url": "http://127.0.0.1/v1/chat/completions", "status": 200, "usage_known": True,
    }
    return {**call, **changes}


def _session() -> CrewguardSession:
    session = CrewguardSession(prices=PriceTable(), budget=0.01)
    message = {"role": "user", "text": EVIL, "tool_calls": [{"name": EVIL, "arguments": EVIL}]}
    reply = {"role": "assistant", "text": "Final Answer: " + EVIL, "tool_calls": []}
    items = [
        {"kind": "task", "name": EVIL, "agent": EVIL, "at_s": 0.0},
        {"kind": "call", "call": 0, "latency_s": 0.5, "at_s": 0.0, "messages": [message],
         "omitted_messages": 0, "reply": None},
        {"kind": "tool", "name": EVIL, "args": EVIL, "error": EVIL, "agent": EVIL, "at_s": 0.5},
        {"kind": "call", "call": 1, "latency_s": 0.5, "at_s": 0.5, "messages": [message],
         "omitted_messages": 3, "reply": reply},
    ]
    record = GuardedTest(
        nodeid=f"tests/test_x.py::test_a[{EVIL}]", llm_calls=2, input_tokens=200, output_tokens=20,
        cost=0.0002, runs=1, outcome="failed", failed_gates=["max_iter_hits"], max_iter_hits=1,
        calls=[_call(), _call(forced_final_answer=True)], notes=[EVIL],
        timeline=[{"kickoff_id": "k", "elapsed_s": 0.1, "projected_s": 1.1, "span_s": 1.1, "error": EVIL,
                   "items": items}],
    )
    session.add(record)
    return session


def test_every_text_from_the_crew_is_escaped() -> None:
    page = render(_session())

    assert "<script" not in page and "<img" not in page
    assert "onerror=alert(2)&gt;" in page  # shown as text
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10  # messages, tool, task, agent, test id
    assert page.count("<details") == page.count("</details>") == 2  # nothing closed early


def test_forced_answers_and_failed_gates_stand_out() -> None:
    page = render(_session())

    assert page.count('<details class="call forced" open>') == 1  # open: the call to look at
    assert page.count('<details class="call">') == 1
    assert "FORCED FINAL ANSWER" in page
    assert '<section class="test failed"' in page
    assert "failed gates: max_iter_hits" in page
    assert "1 forced final answer (max_iter hit)" in page
    assert "3 earlier messages not kept" in page


def test_a_baseline_marks_what_changed() -> None:
    nodeid = next(iter(_session().records))
    baseline = {
        "tests": {nodeid: {"cost": 0.0001, "tokens": 110, "llm_calls": 1}},
        "totals": {"cost": 0.0001, "tokens": 110, "llm_calls": 1},
    }
    page = render(_session(), baseline)

    assert "cost $0.000100 -&gt; $0.000200 (+100.0%)" in page
    assert "llm_calls 1 -&gt; 2 (+100.0%)" in page
    assert '<tr class="changed">' in page
    assert "since the baseline: TOTAL cost" in page
    assert "since the baseline" not in render(_session())


def test_long_texts_are_folded() -> None:
    text = "x" * (FOLD_AT + 500)
    assert fold(text).endswith("(500 more characters folded)")
    assert fold("short") == "short"


def test_secrets_in_the_conversation_are_masked_on_the_page(monkeypatch) -> None:
    # A key the model streamed in pieces is whole again in the rebuilt reply, and a key-shaped
    # string the cassette writer refused was still shown.
    monkeypatch.setenv("DEEPSEEK_API_KEY", "dsx-7Hq2Lm9Xv4Tz8Rw1Kp6Nc3Bj")
    key = "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"
    session = CrewguardSession(prices=PriceTable())
    reply = {"role": "assistant", "text": f"the key is dsx-7Hq2Lm9Xv4Tz8Rw1Kp6Nc3Bj and also {key}",
             "tool_calls": []}
    items = [{"kind": "call", "call": 0, "latency_s": 0.5, "at_s": 0.0, "omitted_messages": 0,
              "messages": [{"role": "user", "text": f"Research the account {key}", "tool_calls": []}],
              "reply": reply}]
    session.add(GuardedTest(nodeid="tests/test_x.py::test_a", llm_calls=1, calls=[_call(agent="a", task="t")],
                            runs=1, timeline=[{"kickoff_id": "k", "elapsed_s": 0.1, "projected_s": 0.6,
                                               "span_s": 0.6, "items": items}]))
    page = render(session)
    assert "Research the account" in page and "the key is" in page  # the conversation is shown
    assert key not in page and "dsx-7Hq2Lm9Xv4Tz8Rw1Kp6Nc3Bj" not in page
