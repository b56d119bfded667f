import asyncio
import json
from pathlib import Path

import pytest
from brief.crews import ResearchCrew
from brief.flow import Brief, BriefFlow, LoopFlow, SharedCrewFlow, SlowFlow

HERE = Path(__file__).parent


def dump(name, flow_run=None, runs=(), calls=()):
    data = {
        "output": flow_run.output if flow_run else None,
        "state_headline": flow_run.state.headline if flow_run else None,
        "runs": [
            {
                "crew": r.crew,
                "agent": r.agent,
                "flow_step": r.flow_step,
                "output": type(r.output).__name__,
                "task_outputs": [t.name for t in r.task_outputs],
                "iterations": [[a, t, n] for (a, t), n in r.iterations.items()],
                "max_iter_hits": [list(p) for p in r.max_iter_hits],
            }
            for r in runs
        ],
        "calls": [
            {"crew": c.crew, "flow_step": c.flow_step, "agent": c.agent, "task": c.task} for c in calls
        ],
        "cost": flow_run.cost if flow_run else None,
        "tokens": flow_run.tokens if flow_run else None,
        "projected_s": flow_run.projected_s if flow_run else None,
        "elapsed_s": flow_run.elapsed_s if flow_run else None,
    }
    (HERE / f"{name}.json").write_text(json.dumps(data))


@pytest.mark.crewguard
def test_crew(crewguard):
    run = crewguard.kickoff(lambda: ResearchCrew().crew(), inputs={"topic": "AI agents"})
    assert run.iterations == {("Researcher", "research"): 1}


@pytest.mark.crewguard(output={"write": Brief}, max_iterations=3)
def test_flow(crewguard):
    flow = crewguard.kickoff_flow(BriefFlow, inputs={"topic": "AI agents"})
    dump("flow", flow, flow.runs, flow.calls)
    assert Brief.model_validate(flow.output).title


@pytest.mark.crewguard(output={"write": Brief})
def test_flow_bad_brief(crewguard):
    crewguard.kickoff_flow(lambda: BriefFlow(), inputs={"topic": "broken"})


@pytest.mark.crewguard(output=Brief)
def test_flow_output(crewguard):
    crewguard.kickoff_flow(BriefFlow, inputs={"topic": "AI agents"})


@pytest.mark.crewguard(max_iterations=2, allow_max_iter=True)
def test_loop(crewguard):
    try:
        crewguard.kickoff_flow(LoopFlow, inputs={"topic": "AI agents"})
    finally:
        dump("loop", runs=crewguard.runs, calls=crewguard.calls)


@pytest.mark.crewguard(repeat=2)
def test_shared_crew(crewguard):
    crewguard.kickoff_flow(SharedCrewFlow, inputs={"topic": "AI agents"})


@pytest.mark.crewguard
def test_application_flow(crewguard):
    BriefFlow().kickoff(inputs={"topic": "AI agents"})
    dump("app", runs=crewguard.runs, calls=crewguard.calls)


@pytest.mark.crewguard(output={"write": Brief}, max_llm_calls=4)
def test_flow_async(crewguard):
    flow = asyncio.run(crewguard.kickoff_flow_async(BriefFlow, inputs={"topic": "AI agents"}))
    assert flow.output["title"] == "Agents at work"
    assert [c.flow_step for c in flow.calls] == ["research", "pick_angle", "headline", "write"]


@pytest.mark.crewguard(output={"summary": Brief})
def test_flow_unknown_task(crewguard):
    crewguard.kickoff_flow(BriefFlow, inputs={"topic": "AI agents"})


@pytest.mark.crewguard(max_seconds=0.5)
def test_slow_flow(crewguard):
    crewguard.kickoff_flow(SlowFlow)


@pytest.mark.crewguard
def test_flow_miss(crewguard):
    """Run in replay only: its cassette was never recorded."""
    crewguard.kickoff_flow(BriefFlow, inputs={"topic": "AI agents"})


@pytest.mark.crewguard(output=Brief)
def test_application_flow_output(crewguard):
    BriefFlow().kickoff(inputs={"topic": "broken"})  # the flow returns {"text": ...}
