"""The crews ``kickoff_speed.py`` times, recorded and replayed: a one-call crew, the example
research crew, and a tool loop; the stub LLM (variant a) and the in-process transport (a2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from session_speed import ANSWER, CREW_MODULE

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

EXAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "example"
LOOP_STEPS, LOOP_ANSWER = 5, "Looked up all five steps."
LlmFactory = Callable[[], Any] | None  # None: the crew's own LLM(...)


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # pydantic resolves names there
    spec.loader.exec_module(module)
    return module


def tool_results(messages: Any) -> int:
    return sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")


class Step(NamedTuple):  # one recorded exchange: the tool results sent, the answer
    path: str
    tools_before: int
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclasses.dataclass
class Case:
    name: str
    build: Callable[[LlmFactory], Any]
    inputs: dict[str, Any]
    responder: Callable[[ReceivedRequest], Reply]
    steps: list[Step] = dataclasses.field(default_factory=list)
    answer: str = ""
    nodeid: str = ""
    plain: Path = Path()


def one_call_case(root: Path, base_url: str) -> Case:
    (root / "one_call_crew.py").write_text(CREW_MODULE.format(base_url=base_url, answer=ANSWER))
    module = load(root / "one_call_crew.py", "one_call_crew")
    return Case("one-call", lambda f: module.make_crew(f() if f else None), {"topic": "AI agents"},
                lambda _r: Reply(text=ANSWER, input_tokens=1200, output_tokens=300))


def example_case(root: Path, base_url: str) -> Case:
    os.environ["CREWGUARD_EXAMPLE_BASE_URL"] = base_url  # read when research_crew is imported
    crew: Any = load(EXAMPLE / "research_crew.py", "research_crew")
    script = load(EXAMPLE / "conftest.py", "example_conftest")  # its scripted gpt-4o-mini

    def build(factory: LlmFactory) -> Any:
        real = crew._llm
        crew._llm = factory or real  # the stub in place of the module's LLM(...)
        try:
            return crew.make_research_crew()
        finally:
            crew._llm = real

    return Case("example", build, {"topic": "AI agents"},
                lambda r: dataclasses.replace(script.respond(r), delay_s=0.0))


def tool_loop_case(root: Path, base_url: str) -> Case:
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool

    @tool("lookup_step")
    def lookup_step(step: int) -> str:
        """Look up the note for one numbered step."""
        return f"Step {step}: done."

    def build(factory: LlmFactory) -> Any:
        llm = factory() if factory else LLM(model="gpt-4o-mini", base_url=base_url)
        agent = Agent(role="Auditor", goal="Check every step of {topic}", backstory="Thorough auditor",
                      llm=llm, tools=[lookup_step], max_iter=10)
        task = Task(name="audit", description=f"Look up steps 1 to {LOOP_STEPS} of {{topic}}, one by one.",
                    expected_output="One line saying all steps were looked up", agent=agent)
        return Crew(agents=[agent], tasks=[task])

    def respond(request: ReceivedRequest) -> Reply:
        done = tool_results(request.body.get("messages", []))
        return Reply.tool("lookup_step", step=done + 1) if done < LOOP_STEPS else Reply(text=LOOP_ANSWER)

    return Case("tool-loop", build, {"topic": "the release"}, respond)


CASES = {"one-call": one_call_case, "example": example_case, "tool-loop": tool_loop_case}


def stub_llm_class() -> type:
    from crewai.llms.base_llm import BaseLLM

    class StubLLM(BaseLLM):
        """Answers with the recorded messages in order; ``script`` is shared by a crew's LLMs."""

        script: Any = None

        def supports_function_calling(self) -> bool:
            return True  # as the OpenAI LLM: CrewAI passes the tools and runs the calls returned

        def call(  # BaseLLM.call's signature: CrewAI passes its arguments by keyword
            self, messages: Any, tools: Any = None, callbacks: Any = None, available_functions: Any = None,
            from_task: Any = None, from_agent: Any = None, response_model: Any = None,
        ) -> Any:
            steps, served = self.script
            step = steps[len(served)] if len(served) < len(steps) else None
            if step is None or tool_results(messages) != step.tools_before:
                raise SystemExit(f"stub LLM: call {len(served) + 1} is not the recording's")
            served.append(step)
            message = json.loads(step.body)["choices"][0]["message"]  # fresh: CrewAI may change it
            if message.get("tool_calls"):
                if not tools:
                    raise SystemExit("stub LLM: a recorded tool call, but CrewAI passed no tools")
                return message["tool_calls"]
            # The OpenAI LLM returns the parsed model when CrewAI asks for structured output.
            content = message["content"]
            return response_model.model_validate_json(content) if response_model else content

    return StubLLM


@contextlib.contextmanager
def transport_replay(steps: list[Step]) -> Iterator[list[Step]]:
    """httpx's sync transport answers with the recorded responses in order, in process."""
    import httpx

    served: list[Step] = []
    original = httpx.HTTPTransport.handle_request

    def handle_request(_self: Any, request: Any) -> Any:
        if len(served) == len(steps) or request.url.path != steps[len(served)].path:
            raise SystemExit(f"in-process transport: unexpected request {request.url}")
        step = steps[len(served)]
        served.append(step)
        return httpx.Response(step.status, headers=step.headers, content=step.body, request=request)

    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign, assignment]
    try:
        yield served
    finally:
        httpx.HTTPTransport.handle_request = original  # type: ignore[method-assign]
