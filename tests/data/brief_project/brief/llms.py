import os

from crewai import LLM


def make_llm() -> LLM:
    """A new LLM for every agent: CrewAI objects keep state between kickoffs."""
    return LLM(model="gpt-4o-mini", base_url=os.environ["BRIEF_BASE_URL"])
