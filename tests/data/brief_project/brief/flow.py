import json
import time

from crewai import Agent
from crewai.flow.flow import Flow, listen, start
from crewai.tools import tool
from pydantic import BaseModel

from .crews import ResearchCrew, WriteCrew
from .llms import make_llm


class Brief(BaseModel):
    title: str
    points: list[str]


class BriefState(BaseModel):
    topic: str = ""
    notes: str = ""
    angle: str = ""
    headline: str = ""


class BriefFlow(Flow[BriefState]):
    """Research crew -> an editor agent picks an angle -> a direct LLM call -> write crew."""

    @start()
    def research(self) -> None:
        result = ResearchCrew().crew().kickoff(inputs={"topic": self.state.topic})
        self.state.notes = result.raw

    @listen(research)
    def pick_angle(self) -> None:
        editor = Agent(role="Editor", goal="Pick an angle", backstory="A sharp editor.", llm=make_llm())
        self.state.angle = editor.kickoff(f"Pick one angle for a brief on: {self.state.notes}").raw

    @listen(pick_angle)
    def headline(self) -> None:
        self.state.headline = str(make_llm().call(f"Write a headline for: {self.state.angle}"))

    @listen(headline)
    def write(self) -> dict:
        result = (
            WriteCrew()
            .crew()
            .kickoff(inputs={"topic": self.state.topic, "notes": self.state.notes, "angle": self.state.angle})
        )
        try:
            return json.loads(result.raw)
        except ValueError:
            return {"text": result.raw}


@tool("lookup")
def lookup(query: str) -> str:
    """Look something up."""
    return "nothing useful"


class LoopFlow(Flow[BriefState]):
    """One step: an agent that keeps calling a tool that never helps."""

    @start()
    def dig(self) -> str:
        digger = Agent(
            role="Digger", goal="Dig", backstory="Keeps digging.", llm=make_llm(), tools=[lookup], max_iter=4
        )
        return str(digger.kickoff(f"Find everything about {self.state.topic}").raw)


SHARED_RESEARCH = ResearchCrew().crew()  # module level: every flow run kicks off this one crew


class SharedCrewFlow(Flow[BriefState]):
    @start()
    def research(self) -> str:
        return SHARED_RESEARCH.kickoff(inputs={"topic": self.state.topic}).raw


class SlowFlow(Flow[BriefState]):
    @start()
    def wait(self) -> str:
        for _ in range(100):  # a step stuck on something slow
            time.sleep(0.05)
        return "late"
