"""Provider faults in replay (faults=), the virtual clock for retry and max_rpm waits, max_rpm."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from pytest_crewguard.errors import ConfigError
from pytest_crewguard.faults import FaultInjector, fault_response, parse_faults
from pytest_crewguard.ledger import LLMCall
from pytest_crewguard.marker import spec_from_marker
from pytest_crewguard.rate_limits import busiest_minutes, rpm_violations, timeline
from pytest_crewguard.run import GuardedRun
from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply, ToolCall

from .conftest import crew_test_file, read_dump
from .test_iterations import outcomes
from .test_time_limits import warm_up

# -- the marker argument ------------------------------------------------------------------------


def test_faults_argument_is_checked_at_collection() -> None:
    spec = spec_from_marker((), {"faults": {"agent": "Researcher", "429": 2, "every": 3}}, "t")
    assert spec.faults is not None
    assert spec.faults.sequence == ("429", "429") and spec.faults.agent == "Researcher"
    assert spec.faults.every == 3
    for bad, named in [
        ({"428": 1}, "unknown key '428'"),
        ({"429": 0}, "count of '429'"),
        ({"429": True}, "count of '429'"),
        ({"agent": "Researcher"}, "no fault to inject"),
        ({"429": 1, "every": 0}, "'every'"),
        ({"429": 1, "retry_after": 600}, "'retry_after'"),
        ({"503": 2, "retry_after": 20}, "no '429' is injected"),  # it was silently ignored
        ([429], "expected a non-empty dict"),
    ]:
        with pytest.raises(ConfigError, match="argument faults=") as err:
            spec_from_marker((), {"faults": bad}, "test_x.py::t")
        assert named in str(err.value) and "e.g. faults=" in str(err.value)
    with pytest.raises(ConfigError, match="argument max_rpm=0: expected a whole number at least 1"):
        spec_from_marker((), {"max_rpm": 0}, "t")


def test_every_nth_call_gets_the_faults_again() -> None:
    injector = FaultInjector(parse_faults({"429": 1, "500": 1, "every": 3}))
    served = [injector.next_fault() for _ in range(12)]
    # Calls 1 and 2 answered, call 3 after a 429 and a 500, calls 4-5, then call 6 the same.
    assert served == [None, None, "429", "500", None, None, None, "429", "500", None, None, None]
    once = FaultInjector(parse_faults({"429": 2}))
    assert [once.next_fault() for _ in range(5)] == ["429", "429", None, None, None]


def _status_error(client: Any, response: dict[str, Any]) -> Exception:
    raw = httpx.Response(
        response["status"]["code"],
        headers={k: v[0] for k, v in response["headers"].items()},
        content=response["body"]["string"],
        request=httpx.Request("POST", "https://api.example/v1"),
    )
    return client._make_status_error_from_response(raw)  # type: ignore[no-any-return]


def test_fault_answers_are_what_each_sdk_reads_as_the_provider_error() -> None:
    import anthropic
    import openai

    oa = openai.OpenAI(api_key="sk-test")
    err = _status_error(oa, fault_response("429", "openai", "gpt-4o-mini", 7))
    assert isinstance(err, openai.RateLimitError) and "Rate limit reached for gpt-4o-mini" in str(err)
    assert err.code == "rate_limit_exceeded"
    assert isinstance(_status_error(oa, fault_response("500", "openai", None, 1)), openai.InternalServerError)
    an = anthropic.Anthropic(api_key="sk-ant-test")
    err = _status_error(an, fault_response("529", "anthropic", "claude-3-5-haiku", 1))
    assert type(err).__name__ == "OverloadedError" and "Overloaded" in str(err)
    err = _status_error(an, fault_response("429", "anthropic", None, 1))
    assert isinstance(err, anthropic.RateLimitError)
    google = json.loads(fault_response("429", "google", None, 1)["body"]["string"])
    assert google["error"]["status"] == "RESOURCE_EXHAUSTED"
    # The SDK honours the retry-after the fault carries: that is the wait the clock advances.
    headers = httpx.Headers({k: v[0] for k, v in fault_response("429", "openai", None, 7)["headers"].items()})
    options = openai._base_client.FinalRequestOptions(method="post", url="/x")
    assert oa._calculate_retry_timeout(2, options, headers) == 7


# -- the timeline -------------------------------------------------------------------------------


def _call(n: int, waited: float = 0.0, latency: float = 1.0) -> LLMCall:
    return LLMCall(
        provider="openai", model="gpt-4o-mini", agent="Researcher", task=f"t{n}", input_tokens=10,
        output_tokens=5, cached_tokens=0, reasoning_tokens=0, cost=0.0, recorded_latency_s=latency,
        forced_final_answer=False, url="https://api.openai.com/v1/chat/completions", status=200,
        agent_round=True, kickoff_id="k", waited_s=waited,
    )  # fmt: skip


def test_requests_per_minute_on_the_projected_timeline() -> None:
    calls = [_call(1), _call(2), _call(3, waited=60.0), _call(4), _call(5, waited=60.0)]
    assert [round(start) for start, _ in timeline(calls)] == [0, 1, 62, 63, 124]
    run = GuardedRun(output=None, calls=calls, elapsed_s=0.1, projected_s=None)
    assert rpm_violations(2, run) == []
    assert [m for m, _ in busiest_minutes(calls, 1)] == [0, 1]
    (violation,) = rpm_violations(1, run)
    assert violation.message.splitlines()[:3] == [
        "2 LLM requests in minute 1 of the run's projected timeline (0-60 s), over max_rpm=1:",
        "    at    0.00 s  gpt-4o-mini Researcher / t1 in=10 out=5",
        "    at    1.00 s  gpt-4o-mini Researcher / t2 in=10 out=5",
    ]
    assert "(1 more minute over the limit)" in violation.message


# -- end to end: record real crews, replay them under faults -----------------------------------

RETRYING_CREW = """
def retrying_crew():
    llm = LLM(model=MODEL, base_url=BASE_URL, max_retries=3)
    agent = Agent(role="Researcher", goal="Research the topic", backstory="Expert researcher", llm=llm)
    task = Task(name="research", description="Research {topic} and summarise it",
                expected_output="A concise research summary", agent=agent)
    return Crew(agents=[agent], tasks=[task])
"""

RECORD = (
    RETRYING_CREW
    + """

@pytest.mark.crewguard(cassette="retrying.yaml", faults={"429": 1})  # not answered while recording
def test_record(crewguard):
    dump(crewguard.kickoff(retrying_crew, inputs={"topic": "rate limits"}), "recorded")
"""
)

REPLAY = (
    RETRYING_CREW
    + """

def report(run, name):
    dump(run, name)
    extra = {"retries": run.retries, "rate_limited_calls": run.rate_limited_calls,
             "waited_s": run.waited_s, "call_faults": [list(c.faults) for c in run.calls],
             "call_retries": [c.retries for c in run.calls], "models": [c.model for c in run.calls]}
    path = os.path.join(os.path.dirname(__file__), name + ".json")
    data = json.load(open(path))
    data.update(extra)
    json.dump(data, open(path, "w"))


@pytest.mark.crewguard(cassette="retrying.yaml", faults={FAULTS_OK})
def test_retried(crewguard):
    report(crewguard.kickoff(retrying_crew, inputs={"topic": "rate limits"}), "retried")


@pytest.mark.crewguard(cassette="retrying.yaml", faults={"429": 5})
def test_gives_up(crewguard):
    crewguard.kickoff(retrying_crew, inputs={"topic": "rate limits"})


@pytest.mark.crewguard(cassette="retrying.yaml", faults={"429": 100})
def test_crew_fails(crewguard):
    crewguard.kickoff(retrying_crew, inputs={"topic": "rate limits"})


@pytest.mark.crewguard(cassette="retrying.yaml", faults={"500": 1})
def test_server_error(crewguard):
    report(crewguard.kickoff(retrying_crew, inputs={"topic": "rate limits"}), "server_error")


@pytest.mark.crewguard(cassette="retrying.yaml", faults={"timeout": 1})
def test_timeout(crewguard):
    report(crewguard.kickoff(retrying_crew, inputs={"topic": "rate limits"}), "timeout")


@pytest.mark.crewguard(cassette="retrying.yaml", faults={"429": 2, "agent": "Reseacher"})
def test_misspelt_agent(crewguard):
    crewguard.kickoff(retrying_crew, inputs={"topic": "rate limits"})
"""
)


def one_answer(req: ReceivedRequest) -> Reply:
    if "ping" in req.prompt_text:
        return Reply(text="pong")
    return Reply(text="Rate limits cap requests per minute.", input_tokens=1200, output_tokens=300)


@pytest.mark.parametrize(
    ("model", "faults", "min_wait"),
    [
        ("gpt-4o-mini", '{"429": 2, "retry_after": 20}', 40.0),
        # Anthropic's overloaded answer carries no retry-after: the SDK's own backoff follows it.
        ("anthropic/claude-3-5-haiku-latest", '{"529": 1, "429": 1, "retry_after": 20}', 20.0),
    ],
    ids=["openai", "anthropic"],
)
def test_rate_limited_crew_retries_on_the_virtual_clock(
    pytester: pytest.Pytester, provider: Any, model: str, faults: str, min_wait: float
) -> None:
    server = provider(one_answer)
    base_url = server.openai_base_url if model.startswith("gpt") else server.anthropic_base_url
    warm_up(server.openai_base_url)
    pytester.makepyfile(test_crew=crew_test_file(base_url, RECORD, model=model))
    recording = pytester.runpytest("--crewguard-record-mode=once")
    recording.assert_outcomes(passed=1)
    recording.stdout.fnmatch_lines(["crewguard: 1 test recorded with faults= set: faults are answered in "
                                    "replay only, so this run met none of them; replay the test to *"])
    recorded = read_dump(pytester, "recorded")
    server.stop()

    pytester.makepyfile(
        test_crew=crew_test_file(base_url, REPLAY.replace("{FAULTS_OK}", faults), model=model)
    )
    started = time.perf_counter()
    result = pytester.runpytest("-p", "no:randomly")
    took = time.perf_counter() - started
    assert outcomes(result) == {
        "test_retried": "passed",
        "test_gives_up": "failed",
        "test_crew_fails": "failed",
        "test_server_error": "passed",
        "test_timeout": "passed",
        "test_misspelt_agent": "failed",  # its faults answered nothing: it tested no fault
    }

    retried = read_dump(pytester, "retried")
    assert retried["retries"] == 2 and retried["call_retries"] == [2]
    assert retried["rate_limited_calls"] == 1
    kinds = [kind for kind, n in json.loads(faults).items() if kind != "retry_after" for _ in range(n)]
    assert retried["call_faults"] == [kinds]
    # The waits the SDK computed (retry-after honoured), none of them slept: the whole session
    # with its three crews is far quicker than the backoff it reports.
    assert retried["waited_s"] >= min_wait
    assert took < retried["waited_s"] / 4, f"{took:.2f} s for {retried['waited_s']:.1f} s of backoff"
    assert retried["projected_s"] >= retried["waited_s"] + retried["elapsed_s"]
    # A 429 is not billed: the cost is that of the one answer.
    assert retried["cost"] == recorded["cost"] > 0 and retried["llm_calls"] == 1

    server_error = read_dump(pytester, "server_error")
    assert server_error["call_faults"] == [["500"]] and server_error["retries"] == 1
    assert server_error["cost"] == recorded["cost"] and server_error["llm_calls"] == 1
    # A read timeout, raised by the HTTP client as httpx raises it, is retried by the SDK too.
    assert read_dump(pytester, "timeout")["call_faults"] == [["timeout"]]

    result.stdout.fnmatch_lines(
        [
            "*crewguard: the crew did not get past the provider's rate limit (429): the SDK gave up on 4 "
            "requests after its retries:",
            "    1. 429 rate limit: * Researcher / research",
        ]
    )
    # When the crew itself fails on the error, the cause comes first, then the application's error.
    result.stdout.fnmatch_lines(
        [
            "*_ test_crew_fails _*",
            "crewguard: the crew did not get past the provider's rate limit (429): the SDK gave up on * "
            "requests after its retries:",
            "  (the test then failed with *",
        ]
    )
    result.stdout.fnmatch_lines([
        "crewguard: faults= answered no request in test_crew.py::test_misspelt_agent: no LLM request "
        "matched agent 'Reseacher'; its LLM calls (agent / task / model): Researcher / research / *. "
        "Name an agent, task or model the test's calls have, or drop faults= from this test."
    ])
    result.stdout.fnmatch_lines(
        [
            "*test_gives_up*FAILED provider_fault*",
            "retries and waits (in projected time, not slept in replay):",
            "  test_crew.py::test_crew_fails: 0 retries answered, * fault answers the SDK gave up after, "
            "*s waited",
            "  test_crew.py::test_gives_up: 5 retries, 1 call rate-limited, *s waited",
            "  test_crew.py::test_retried: 2 retries, 1 call rate-limited, *s waited",
            "  test_crew.py::test_server_error: 1 retry, *s waited",
        ]
    )


# -- CrewAI's max_rpm controller, and the max_rpm gate -----------------------------------------

RPM_CREW = """
@tool("lookup")
def lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    return "some facts"


def limited_crew():
    agent = Agent(role="Researcher", goal="Research the topic", backstory="Expert researcher",
                  llm=make_llm(), tools=[lookup])
    task = Task(name="research", description="Research {topic} and summarise it",
                expected_output="A concise research summary", agent=agent)
    return Crew(agents=[agent], tasks=[task], max_rpm=2)


@pytest.fixture
def no_real_minute(monkeypatch):
    # Recording only: the scripted provider has no rate limit, so CrewAI's controller need not
    # wait a real minute for it. Replay runs the controller unpatched, on crewguard's clock.
    from crewai.utilities.rpm_controller import RPMController

    if os.environ.get("RECORDING"):
        monkeypatch.setattr(RPMController, "_wait_for_next_minute", lambda self: None)


@pytest.mark.crewguard(cassette="limited.yaml", max_seconds=600)
def test_limited(crewguard, no_real_minute):
    dump(crewguard.kickoff(limited_crew, inputs={"topic": "rate limits"}), "limited")


@pytest.mark.crewguard(cassette="limited.yaml", max_rpm=1)
def test_limited_over_rpm(crewguard):
    crewguard.kickoff(limited_crew, inputs={"topic": "rate limits"})
"""


def four_lookups(req: ReceivedRequest) -> Reply:
    if "ping" in req.prompt_text:
        return Reply(text="pong")
    done = sum(1 for m in req.body.get("messages", []) if m.get("role") == "tool")
    if done < 4:
        return Reply(tool_calls=(ToolCall("lookup", {"q": f"q{done}"}),))
    return Reply(text="Rate limits cap requests per minute.")


def test_crew_max_rpm_waits_on_the_virtual_clock(
    pytester: pytest.Pytester, provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = provider(four_lookups)
    warm_up(server.openai_base_url)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, RPM_CREW))
    monkeypatch.setenv("RECORDING", "1")
    pytester.runpytest("--crewguard-record-mode=once", "-k", "test_limited and not over").assert_outcomes(
        passed=1
    )
    assert read_dump(pytester, "limited")["llm_calls"] == 5
    monkeypatch.delenv("RECORDING")
    server.stop()

    started = time.perf_counter()
    result = pytester.runpytest()
    took = time.perf_counter() - started
    assert outcomes(result) == {"test_limited": "passed", "test_limited_over_rpm": "failed"}
    run = read_dump(pytester, "limited")
    # Five calls at two a minute: CrewAI's controller waited for the next minute twice.
    assert run["llm_calls"] == 5 and run["projected_s"] >= 120.0
    assert took < run["projected_s"] / 10, (
        f"replay took {took:.2f} s for {run['projected_s']:.0f} s projected"
    )
    result.stdout.fnmatch_lines(
        [
            "*2 LLM requests in minute 1 of the run's projected timeline (0-60 s), over max_rpm=1:",
            "    at * s  gpt-4o-mini Researcher / research in=120 out=30",
            "    at * s  gpt-4o-mini Researcher / research in=120 out=30",
        ]
    )


# -- an application's fallback to another model -------------------------------------------------

FALLBACK = """
def crew_on(model, retries):
    llm = LLM(model=model, base_url=BASE_URL, max_retries=retries)
    agent = Agent(role="Researcher", goal="Research the topic", backstory="Expert researcher", llm=llm,
                  max_retry_limit=0)
    task = Task(name="research", description="Research {topic} and summarise it",
                expected_output="A concise research summary", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def answer(crewguard):
    # The application's own fallback: the small model first, the large one when it fails.
    try:
        return crewguard.kickoff(lambda: crew_on("gpt-4o-mini", 1), inputs={"topic": "rate limits"})
    except Exception:
        return crewguard.kickoff(lambda: crew_on("gpt-4o", 1), inputs={"topic": "rate limits"})


@pytest.mark.crewguard(cassette="fallback.yaml")
def test_record_both(crewguard):
    crewguard.kickoff(lambda: crew_on("gpt-4o-mini", 1), inputs={"topic": "rate limits"})
    crewguard.kickoff(lambda: crew_on("gpt-4o", 1), inputs={"topic": "rate limits"})


@pytest.mark.crewguard(cassette="fallback.yaml", faults={"model": "gpt-4o-mini", "429": 100})
def test_falls_back(crewguard):
    run = answer(crewguard)
    assert [c.model for c in run.calls] == ["gpt-4o"]
    assert run.cost == run.calls[0].cost
    dump(run, "fallback")
"""


def test_fallback_model_answers_and_is_priced_at_its_own_rate(
    pytester: pytest.Pytester, provider: Any
) -> None:
    server = provider(one_answer)
    warm_up(server.openai_base_url)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, FALLBACK))
    pytester.runpytest("--crewguard-record-mode=once", "-k", "record_both").assert_outcomes(passed=1)
    server.stop()

    result = pytester.runpytest("-k", "falls_back")
    result.assert_outcomes(passed=1)
    run = read_dump(pytester, "fallback")
    (call,) = run["calls"]
    # gpt-4o's rate, not gpt-4o-mini's: $2.50 and $10 per million tokens in and out.
    assert call["model"] == "gpt-4o" and call["cost"] == pytest.approx((1200 * 2.5 + 300 * 10) / 1e6)
    assert call["faults"] == [] and run["cost"] == call["cost"]


# -- the README's scenario: concurrent requests of a web app, rate-limited -------------------

WEB_APP = """
from concurrent.futures import ThreadPoolExecutor

job_store = {}


def run_research_crew(job_id, topic):
    # The guide's FastAPI background task: one crew per request, errors kept for the client.
    llm = LLM(model=MODEL, base_url=BASE_URL, max_retries=3)
    try:
        researcher = Agent(role="Researcher", goal=f"Research {topic} thoroughly",
                           backstory="Expert researcher", llm=llm)
        task = Task(description=f"Research and summarise: {topic}", agent=researcher,
                    expected_output="A concise research summary")
        result = Crew(agents=[researcher], tasks=[task]).kickoff()
        job_store[job_id] = {"status": "complete", "result": str(result)}
    except Exception as e:
        job_store[job_id] = {"status": "error", "error": str(e)}


def serve(topics):
    with ThreadPoolExecutor(max_workers=len(topics)) as pool:
        for job_id, topic in enumerate(topics):
            pool.submit(run_research_crew, str(job_id), topic)


TOPICS = ["AI agents", "RAG", "vector stores"]


@pytest.mark.crewguard(cassette="web.yaml", faults={FAULTS}, max_seconds=90)
def test_concurrent_requests(crewguard):
    serve(TOPICS)
    assert all(job["status"] == "complete" for job in job_store.values()), job_store
    runs = crewguard.runs
    json.dump({"retries": [r.retries for r in runs], "waited": [r.waited_s for r in runs],
               "projected": [r.projected_s for r in runs], "calls": sum(r.llm_calls for r in runs)},
              open(os.path.join(os.path.dirname(__file__), "web.json"), "w"))
"""


def test_concurrent_requests_of_a_web_app_under_rate_limits(pytester: pytest.Pytester, provider: Any) -> None:
    server = provider(one_answer)
    warm_up(server.openai_base_url)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, WEB_APP.replace("{FAULTS}", "None")))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()

    faults = '{"429": 3, "retry_after": 20}'
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, WEB_APP.replace("{FAULTS}", faults)))
    started = time.perf_counter()
    pytester.runpytest().assert_outcomes(passed=1)
    took = time.perf_counter() - started
    web = json.loads((pytester.path / "web.json").read_text())
    # Three faults, each retried by the SDK of the crew whose request got it, each waited 20 s
    # on that run's clock: the runs' retries add up to three and each waited as often.
    assert web["calls"] == 3 and sum(web["retries"]) == 3
    assert [round(w / 20) for w in web["waited"]] == web["retries"]
    assert all(p >= w for p, w in zip(web["projected"], web["waited"], strict=True))
    assert took < sum(web["waited"]) / 4


def test_faults_scoped_to_an_agent_task_or_model() -> None:
    injector = FaultInjector(parse_faults({"429": 1, "agent": "Writer", "model": "gpt-4o"}))
    assert injector.matches("gpt-4o", lambda: ("Writer", "draft"))
    assert injector.matches("openai/gpt-4o", lambda: ("Writer", None))
    assert not injector.matches("gpt-4o", lambda: ("Researcher", "draft"))
    assert not injector.matches("gpt-4o-mini", lambda: ("Writer", "draft"))
    by_task = FaultInjector(parse_faults({"500": 1, "task": "draft"}))
    assert by_task.matches(None, lambda: (None, "draft")) and not by_task.matches(None, lambda: (None, "x"))


def test_waits_outside_a_guard_still_sleep(crewai_loaded: None) -> None:
    # Imported first: virtual_waits patches the modules already loaded, as a guard finds them.
    from crewai.utilities.rpm_controller import RPMController

    from pytest_crewguard.virtual_clock import virtual_waits

    seen: list[tuple[float, str]] = []
    with virtual_waits(lambda s, kind: seen.append((s, kind))):
        controller = RPMController(max_rpm=1)
        assert controller.check_or_wait() and controller.check_or_wait()  # the second waits
        controller.stop_rpm_counter()
    assert seen == [(60.0, "rpm")]
    import openai

    client = openai.OpenAI(api_key="sk-test")
    options = openai._base_client.FinalRequestOptions(method="post", url="/x")
    started = time.perf_counter()
    client._sleep_for_retry(retries_taken=0, max_retries=2, options=options, response=None)
    assert time.perf_counter() - started >= 0.3  # the SDK's own backoff: a real sleep outside


def test_bad_faults_on_the_marker_stop_the_run_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.crewguard(faults={"428": 1})
        def test_x():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*@pytest.mark.crewguard on *::test_x: argument faults={'428': 1}: unknown key '428'*e.g. faults=*"]
    )


def test_an_answer_takes_only_the_faults_its_own_request_met() -> None:
    from pytest_crewguard.fault_log import FaultLog

    kickoff = (("k1", "crew_kickoff_started"),)
    log = FaultLog()
    log.fault("429", "gpt-4o-mini", kickoff, 0)
    log.waited(20.0, "retry", kickoff)
    log.fault("429", "gpt-4o-mini", (("k0", "crew_kickoff_started"),), 0)
    # The SDK gave up on gpt-4o-mini; the application's fallback to gpt-4o is answered next,
    # in the same thread: it met no fault, though it came after the wait.
    assert log.take(kickoff, "gpt-4o") == ((), 20.0)
    log.fault("500", "gpt-4o", kickoff, 1)
    assert log.take(kickoff, "gpt-4o") == (("500",), 0.0)
    assert log.take(kickoff, "gpt-4o") == ((), 0.0)


FALLBACK_BODY = """
from crewai.flow.flow import Flow, start


class Brief(Flow):
    @start()
    def summarise(self):
        llm = LLM(model=MODEL, base_url=BASE_URL, max_retries=1)
        try:
            return llm.call("Summarise rate limits in one line")
        except Exception:
            return "FALLBACK"  # the application's canned answer when the provider is down


@pytest.mark.crewguard(cassette="flow.yaml", faults=FAULTS)
def test_flow_step(crewguard):
    crewguard.kickoff_flow(Brief)


@pytest.mark.crewguard(cassette="direct.yaml", faults=FAULTS)
def test_direct_call(crewguard):
    try:
        LLM(model=MODEL, base_url=BASE_URL, max_retries=1).call("Summarise rate limits in one line")
    except Exception:
        pass
"""


def test_an_llm_call_outside_any_crew_that_gave_up_on_faults_fails(
    lancedb_loaded: None, pytester: pytest.Pytester, provider: Any
) -> None:
    # A flow step's (or the test's own) LLM.call that the SDK gave up on after the 429s, with
    # the application falling back to a canned answer, passed with no call at $0.
    server = provider(
        lambda request: Reply(text="pong" if "ping" in request.prompt_text else "Rate limits cap requests.")
    )
    warm_up(server.openai_base_url)
    with_faults = FALLBACK_BODY.replace("FAULTS", '{"429": 20}')
    without = FALLBACK_BODY.replace("FAULTS", "None")
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, without))
    pytester.runpytest("--crewguard-record-mode=once", "-p", "no:randomly").assert_outcomes(passed=2)
    server.stop()
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, with_faults))
    result = pytester.runpytest("-p", "no:randomly")
    assert outcomes(result) == {"test_flow_step": "failed", "test_direct_call": "failed"}
    result.stdout.fnmatch_lines(
        ["*an LLM call made outside any crew (a flow step's or the test's own LLM.call) did not get "
         "past the provider's rate limit (429): the SDK gave up on * requests after its retries:",
         "    1. 429 rate limit: gpt-4o-mini*"]
    )
