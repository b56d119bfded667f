"""Isolation between tests: each test's CrewAI storage is its own, and objects are not reused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

from .conftest import crew_test_file, read_dump
from .test_iterations import outcomes

CODEWORD = "PINEAPPLE-42"


def _schema(request: ReceivedRequest) -> str | None:
    response_format = request.body.get("response_format")
    if isinstance(response_format, dict):
        name = (response_format.get("json_schema") or {}).get("name")
        return str(name) if name else None
    return None


def memory_responder(request: ReceivedRequest) -> Reply:
    """The crew's model and the model CrewAI memory uses to file and recall memories."""
    prompt = request.prompt_text
    schema = _schema(request)
    if schema == "ExtractedMemories":
        memories = [f"The secret codeword is {CODEWORD}."] if "Remember this" in prompt else []
        return Reply(text=json.dumps({"memories": memories}))
    if schema == "MemoryAnalysis":
        metadata = {"entities": [], "dates": [], "topics": ["codeword"]}
        analysis = {"suggested_scope": "/facts", "categories": ["facts"], "importance": 0.9}
        return Reply(text=json.dumps(analysis | {"extracted_metadata": metadata}))
    if schema == "QueryAnalysis":
        return Reply(
            text=json.dumps(
                {
                    "keywords": ["codeword"],
                    "suggested_scopes": ["/"],
                    "complexity": "simple",
                    "recall_queries": ["secret codeword"],
                    "time_filter": None,
                }
            )
        )
    if schema == "ConsolidationPlan":
        return Reply(text=json.dumps({"actions": [], "insert_new": True, "insert_reason": "new"}))
    if "Remember this" in prompt:
        return Reply(text=f"Noted: the secret codeword is {CODEWORD}.")
    if CODEWORD in prompt:
        return Reply(text=f"From memory: the codeword is {CODEWORD}.")
    return Reply(text="I do not know any codeword.")


MEMORY_BODY = """
import crewai_core.paths

def make_memory_crew(description, base_url=BASE_URL):
    llm = LLM(model=MODEL, base_url=base_url)
    agent = Agent(role="Keeper", goal="Keep codewords", backstory="Remembers things", llm=llm)
    task = Task(name="codeword", description=description, expected_output="The codeword", agent=agent)
    embedder = {"provider": "openai",
                "config": {"model_name": "text-embedding-3-small", "api_base": base_url}}
    return Crew(agents=[agent], tasks=[task], memory=True, embedder=embedder)


def storage(crewguard, crew_factory, name, **extra):
    crew = crew_factory()
    info = {"fixture_dir": str(crewguard.storage_dir),
            "env": os.environ["CREWAI_STORAGE_DIR"],
            "memory_dir": str(crew._memory._storage._path),
            "task_db": crew._task_output_handler.storage.db_path,
            "crewai_path": crewai_core.paths.db_storage_path(), **extra}
    with open(os.path.join(os.path.dirname(__file__), name + ".json"), "w") as f:
        json.dump(info, f)
    return crew


@pytest.mark.crewguard
def test_first(crewguard):
    crewguard.kickoff(lambda: storage(crewguard, lambda: make_memory_crew(
        "Remember this: the secret codeword is {codeword}"), "first"), inputs={"codeword": "PINEAPPLE-42"})
    # The same test recalls what it stored: memory works within a test.
    run = crewguard.kickoff(lambda: make_memory_crew("What is the secret codeword?"))
    assert "PINEAPPLE-42" in run.output.raw


@pytest.mark.crewguard(repeat=2)
def test_repeated(crewguard):
    # Each run of a repeated test has storage of its own: run 2 does not recall run 1.
    dirs = []

    def factory():
        crew = make_memory_crew("Remember this: the secret codeword is {codeword}")
        dirs.append(str(crew._memory._storage._path))
        return crew

    crewguard.kickoff(factory, inputs={"codeword": "PINEAPPLE-42"})
    with open(os.path.join(os.path.dirname(__file__), "repeated.json"), "w") as f:
        json.dump({"dirs": dirs, "fixture_dir": str(crewguard.storage_dir)}, f)


@pytest.mark.crewguard
def test_second(crewguard):
    # A provider of its own, so the outer test sees exactly what this test sent.
    with open(os.path.join(os.path.dirname(__file__), "first.json")) as f:
        first_dir = json.load(f)["fixture_dir"]
    run = crewguard.kickoff(lambda: storage(crewguard, lambda: make_memory_crew(
        "What is the secret codeword?", SECOND_URL), "second", first_left=os.path.exists(first_dir)))
    assert run.output.raw == "I do not know any codeword."
"""


def _interactions(pytester: pytest.Pytester, name: str) -> list[dict[str, Any]]:
    path = Path(pytester.path) / "cassettes" / "test_crew" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    return list(data["interactions"])


def test_memory_of_one_test_is_not_recalled_in_the_next(pytester, provider, lancedb_loaded):
    server = provider(memory_responder)
    second_server = provider(memory_responder)
    source = crew_test_file(server.openai_base_url, MEMORY_BODY).replace(
        "MODEL = ", f"SECOND_URL = {second_server.openai_base_url!r}\nMODEL = "
    )
    pytester.makepyfile(test_crew=source)
    # One session, as in a real run: test_first stores the codeword, then test_second asks.
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=3)

    # What the providers were sent: test_first's second crew got the codeword back from
    # memory (memory is on and works), test_second searched memory but never saw it.
    assert any("Relevant memories" in r.prompt_text and CODEWORD in r.prompt_text for r in server.requests)
    assert any(r.path.endswith("/embeddings") for r in second_server.requests)
    assert any(r.path.endswith("/chat/completions") for r in second_server.requests)
    assert not any(CODEWORD in json.dumps(r.body) for r in second_server.requests)

    first, second = read_dump(pytester, "first"), read_dump(pytester, "second")
    for info in (first, second):
        assert info["env"] == info["fixture_dir"] == info["crewai_path"]
        assert info["memory_dir"] == str(Path(info["fixture_dir"]) / "memory")
        assert info["task_db"] == str(Path(info["fixture_dir"]) / "latest_kickoff_task_outputs.db")
    assert first["fixture_dir"] != second["fixture_dir"]
    assert second["first_left"] is True  # memory stores stay (cached clients) until the session ends
    # Named for the test, plus a short hash of its node id.
    assert Path(first["fixture_dir"]).name.startswith("test_crew.py_test_first-")
    assert Path(second["fixture_dir"]).name.startswith("test_crew.py_test_second-")

    # The cassettes say the same: test_second's recording holds no trace of the codeword.
    assert CODEWORD in json.dumps(_interactions(pytester, "test_first"))
    assert CODEWORD not in json.dumps(_interactions(pytester, "test_second"))

    server.stop()
    second_server.stop()
    repeated = read_dump(pytester, "repeated")
    assert repeated["dirs"] == [str(Path(repeated["fixture_dir"]) / f"run-{n}" / "memory") for n in (1, 2)]
    # Replayed offline (test_repeated's second run is heap-traced, slow with memory: left out).
    pytester.runpytest("-k", "not test_repeated").assert_outcomes(passed=2)
    replayed_first, replayed_second = read_dump(pytester, "first"), read_dump(pytester, "second")
    assert replayed_first["fixture_dir"] != replayed_second["fixture_dir"]
    assert Path(replayed_second["memory_dir"]).parent == Path(replayed_second["fixture_dir"])


KNOWLEDGE_BODY = """
import sys
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource

def make_knowledge_crew(fact):
    embedder = {"provider": "openai",
                "config": {"model_name": "text-embedding-3-small", "api_base": BASE_URL}}
    agent = Agent(role="Librarian", goal="Answer from the library", backstory="Knows the library",
                  llm=make_llm())
    task = Task(name="lookup", description="What does the library say about the vault?",
                expected_output="The fact", agent=agent)
    return Crew(agents=[agent], tasks=[task], embedder=embedder,
                knowledge_sources=[StringKnowledgeSource(content=fact)])


def check(crewguard, fact, name):
    crew = make_knowledge_crew(fact)
    client = crew.knowledge.storage._client.client
    info = {"fixture_dir": str(crewguard.storage_dir),
            "persist_dir": client.get_settings().persist_directory,
            "default": sys.modules["crewai.rag.chromadb.config"].DEFAULT_STORAGE_PATH,
            "files": sorted(os.listdir(crewguard.storage_dir))}
    with open(os.path.join(os.path.dirname(__file__), name + ".json"), "w") as f:
        json.dump(info, f)
    return crew


@pytest.mark.crewguard
def test_first(crewguard):
    crewguard.kickoff(lambda: check(crewguard, "The vault code of the first test is AMBER-7.", "first"))


@pytest.mark.crewguard
def test_second(crewguard):
    crewguard.kickoff(lambda: check(crewguard, "The vault code of the second test is TEAL-9.", "second"))
"""


def test_knowledge_storage_frozen_at_import_is_per_test_too(pytester, provider, lancedb_loaded):
    import crewai.rag.chromadb.config as chroma_config

    frozen = chroma_config.DEFAULT_STORAGE_PATH  # where this process imported crewai
    server = provider(lambda request: Reply(text="The vault code is in the library."))
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, KNOWLEDGE_BODY))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=2)

    first, second = read_dump(pytester, "first"), read_dump(pytester, "second")
    for info in (first, second):
        # CrewAI would have used ``frozen`` for every test; each test got its own directory.
        assert info["persist_dir"] == info["default"] == info["fixture_dir"] != frozen
        assert "chroma.sqlite3" in info["files"]
    assert first["fixture_dir"] != second["fixture_dir"]
    assert chroma_config.DEFAULT_STORAGE_PATH == frozen  # put back after the tests

    # The knowledge found for test_second's prompt is its own, not test_first's.
    prompts = [r.prompt_text for r in server.llm_requests if "vault" in r.prompt_text]
    assert any("TEAL-9" in p for p in prompts)
    assert any("AMBER-7" in p for p in prompts)
    assert not any("TEAL-9" in p and "AMBER-7" in p for p in prompts)
    assert "AMBER-7" not in json.dumps(_interactions(pytester, "test_second"))

    server.stop()
    pytester.runpytest().assert_outcomes(passed=2)
    assert read_dump(pytester, "second")["persist_dir"] == read_dump(pytester, "second")["fixture_dir"]


REUSE_BODY = """
SHARED_AGENT = Agent(role="Researcher", goal="Research", backstory="Expert", llm=make_llm())
SHARED_LLM = make_llm()


def crew_with_shared_agent():
    task = Task(name="research", description="Research {topic}", expected_output="A summary",
                agent=SHARED_AGENT)
    return Crew(agents=[SHARED_AGENT], tasks=[task])


def crew_with_shared_llm():
    agent = Agent(role="Writer", goal="Write", backstory="Writer", llm=SHARED_LLM)
    task = Task(name="write", description="Write about {topic}", expected_output="Text", agent=agent)
    return Crew(agents=[agent], tasks=[task])


@pytest.mark.crewguard
def test_a(crewguard):
    crewguard.kickoff(crew_with_shared_agent, inputs={"topic": "AI"})


@pytest.mark.crewguard
def test_b(crewguard):
    crewguard.kickoff(crew_with_shared_agent, inputs={"topic": "AI"})


@pytest.mark.crewguard(repeat=2)
def test_repeat(crewguard):
    crewguard.kickoff(crew_with_shared_llm, inputs={"topic": "AI"})
"""


def test_objects_used_by_an_earlier_run_are_refused(pytester, provider):
    server = provider(lambda request: Reply(text="A short summary."))
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, REUSE_BODY))
    result = pytester.runpytest("--crewguard-record-mode=once")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_b _*",
            "crewguard: Agent 'Researcher' (model gpt-4o-mini) was already used in a crew run "
            "by test_crew.py::test_a.",
            "*CrewAI objects keep state between kickoffs*",
            "*Fix: create the crew, its agents, their LLMs and any memory or knowledge store anew for "
            "every run: per request in the application's own code, inside the factory*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_repeat _*",
            "crewguard: LLM 'gpt-4o-mini' was already used in a crew run earlier in this "
            "test (test_crew.py::test_repeat).",
        ]
    )
    # Refused before it ran: test_b sent nothing, test_repeat's second run sent nothing.
    assert len(server.llm_requests) == 2


def test_each_storage_directory_starts_with_an_empty_task_output_database(tmp_path: Path) -> None:
    from crewai import Agent, Task
    from crewai.memory.storage.kickoff_task_outputs_storage import KickoffTaskOutputsSQLiteStorage

    from pytest_crewguard.storage import TASK_OUTPUTS_DB, storage_at

    agent = Agent(role="Researcher", goal="Research", backstory="Expert", llm="gpt-4o-mini")
    task = Task(description="Research", expected_output="Notes", agent=agent)
    with storage_at(tmp_path / "first") as first:
        storage = KickoffTaskOutputsSQLiteStorage()  # where CrewAI puts it by default
        # The copy crewguard seeds is the very file CrewAI opens: same name, same place.
        assert Path(storage.db_path) == first / TASK_OUTPUTS_DB
        storage.add(task, {"raw": "first test's notes"}, task_index=0)
        assert [row["output"] for row in storage.load()] == [{"raw": "first test's notes"}]
    with storage_at(tmp_path / "second") as second:
        assert (second / TASK_OUTPUTS_DB).is_file()
        assert KickoffTaskOutputsSQLiteStorage().load() == []  # nothing of the first test


def test_a_tests_storage_goes_when_it_ends_unless_it_holds_stores(tmp_path: Path) -> None:
    import crewai.memory.storage.kickoff_task_outputs_storage  # noqa: F401  (seeded once loaded)

    from pytest_crewguard.guard_session import GuardSession
    from pytest_crewguard.storage import TASK_OUTPUTS_DB

    def run(nodeid: str, store: str | None) -> Path:
        session = GuardSession.for_test(nodeid, rootdir=tmp_path, storage_root=tmp_path / "storage")
        session.start()
        directory = session.storage_dir
        assert (directory / TASK_OUTPUTS_DB).is_file()  # what every kickoff writes to
        (directory / f"{TASK_OUTPUTS_DB}-wal").write_bytes(b"")
        if store:  # a memory or knowledge store: clients of it outlive the test, by path
            (directory / store).mkdir(parents=True)
            (directory / store / "chroma.sqlite3").write_bytes(b"")
        assert session.close() is None
        return directory

    assert not run("t.py::test_plain", None).exists()
    kept = run("t.py::test_knowledge", "knowledge")
    assert (kept / "knowledge" / "chroma.sqlite3").is_file()

    from pytest_crewguard.storage import remove_if_disposable

    repeated = tmp_path / "repeated"
    for number in (1, 2):  # a repeated test's runs: each run's own database, nothing else
        (repeated / f"run-{number}").mkdir(parents=True)
        (repeated / f"run-{number}" / TASK_OUTPUTS_DB).write_bytes(b"")
    remove_if_disposable(repeated)
    assert not repeated.exists()
    (tmp_path / "empty_store" / "memory").mkdir(parents=True)  # a store's folder, still empty
    remove_if_disposable(tmp_path / "empty_store")
    assert (tmp_path / "empty_store" / "memory").is_dir()


def test_the_file_lock_crewai_made_for_a_tests_database_goes_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from crewai import Agent, Task
    from crewai.memory.storage.kickoff_task_outputs_storage import KickoffTaskOutputsSQLiteStorage

    from pytest_crewguard.storage import remove_if_disposable, storage_at

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where CrewAI's file locks go
    agent = Agent(role="Researcher", goal="Research", backstory="Expert", llm="gpt-4o-mini")
    task = Task(description="Research", expected_output="Notes", agent=agent)
    (temp / "crewai:someone-elses.lock").write_bytes(b"")
    with storage_at(tmp_path / "test") as directory:
        before = set(temp.glob("crewai:*.lock"))
        KickoffTaskOutputsSQLiteStorage().add(task, {"raw": "notes"}, task_index=0)  # takes the lock
    made = set(temp.glob("crewai:*.lock")) - before
    assert len(made) == 1  # the database's lock file, left behind by CrewAI
    remove_if_disposable(directory)
    assert not directory.exists()
    assert not made & set(temp.glob("crewai:*.lock"))
    assert (temp / "crewai:someone-elses.lock").is_file()


SHARED_PARTS_BODY = """
from crewai import Memory, Process

EMBEDDER = {"provider": "openai", "config": {"model_name": "text-embedding-3-small", "api_base": BASE_URL}}
SHARED_MEMORY = Memory(llm=make_llm(), embedder=EMBEDDER)  # as CrewAI's docs build one
MANAGER = Agent(role="Manager", goal="Manage the team", backstory="A manager", llm=make_llm(),
                allow_delegation=True)


def memory_crew(description):
    agent = Agent(role="Keeper", goal="Keep codewords", backstory="Remembers things", llm=make_llm())
    task = Task(name="codeword", description=description, expected_output="The codeword", agent=agent)
    return Crew(agents=[agent], tasks=[task], memory=SHARED_MEMORY, embedder=EMBEDDER)


def managed_crew():
    worker = Agent(role="Researcher", goal="Research", backstory="Expert", llm=make_llm())
    task = Task(name="research", description="Research {topic}", expected_output="A summary")
    return Crew(agents=[worker], tasks=[task], process=Process.hierarchical, manager_agent=MANAGER)


@pytest.mark.crewguard
def test_remember(crewguard):
    crewguard.kickoff(lambda: memory_crew("Remember this: the secret codeword is PINEAPPLE-42"))


@pytest.mark.crewguard
def test_recall(crewguard):
    crewguard.kickoff(lambda: memory_crew("What is the secret codeword?"))


@pytest.mark.crewguard
def test_managed_a(crewguard):
    crewguard.kickoff(managed_crew, inputs={"topic": "AI"})


@pytest.mark.crewguard
def test_managed_b(crewguard):
    crewguard.kickoff(managed_crew, inputs={"topic": "AI"})
"""


def test_a_memory_or_manager_kept_at_module_level_is_refused_in_the_next_test(
    pytester: pytest.Pytester, provider: Any, lancedb_loaded: None
) -> None:
    # Fresh crews and agents, but one Memory built at module level: the second test recalled
    # the first one's codeword and passed. So did a hierarchical crew's shared manager agent.
    server = provider(memory_responder)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, SHARED_PARTS_BODY))
    result = pytester.runpytest("--crewguard-record-mode=once", "-p", "no:randomly")
    assert outcomes(result) == {
        "test_remember": "passed", "test_recall": "failed",
        "test_managed_a": "passed", "test_managed_b": "failed",
    }
    result.stdout.fnmatch_lines(
        ["crewguard: Memory was already used in a crew run by test_crew.py::test_remember.",
         "*any memory or knowledge store anew*"]
    )
    result.stdout.fnmatch_lines(
        ["crewguard: Agent 'Manager' (model gpt-4o-mini) was already used in a crew run by "
         "test_crew.py::test_managed_a."]
    )


PER_TEST_MEMORY_BODY = """
EMBEDDER = {"provider": "openai", "config": {"model_name": "text-embedding-3-small", "api_base": BASE_URL}}


@pytest.mark.crewguard
def test_remember(crewguard):
    agent = Agent(role="Keeper", goal="Keep codewords", backstory="Remembers things", llm=make_llm())
    task = Task(name="codeword", description="Remember this: the secret codeword is PINEAPPLE-42",
                expected_output="The codeword", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], memory=True, embedder=EMBEDDER)
    with open(os.path.join(os.path.dirname(__file__), "paths.json"), "w") as f:
        json.dump({"memory": str(crew._memory._storage._path)}, f)
    crewguard.kickoff(lambda: crew)
"""


def test_a_memory_store_leaves_no_lock_file_in_the_temp_dir(
    pytester: pytest.Pytester, provider: Any, lancedb_loaded: None
) -> None:
    # CrewAI locks a LanceDB memory through an empty file in the temp dir named after its
    # folder, and never removes it: one per test with memory piled up there.
    import hashlib
    import tempfile

    server = provider(memory_responder)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, PER_TEST_MEMORY_BODY))
    pytester.runpytest("--crewguard-record-mode=once", "-p", "no:randomly").assert_outcomes(passed=1)
    memory = Path(read_dump(pytester, "paths")["memory"])
    name = hashlib.md5(f"lancedb:{memory.resolve()}".encode(), usedforsecurity=False).hexdigest()
    lock = Path(tempfile.gettempdir()) / f"crewai:{name}.lock"
    left = lock.exists()
    lock.unlink(missing_ok=True)
    assert not memory.exists() and not left


APP_REUSE_BODY = """
SHARED_AGENT = Agent(role="Researcher", goal="Research", backstory="Expert", llm=make_llm())


def handle_request(topic):  # the application's endpoint: a crew per request, one agent for all
    task = Task(name="research", description=f"Research {topic}", expected_output="A summary",
                agent=SHARED_AGENT)
    return Crew(agents=[SHARED_AGENT], tasks=[task]).kickoff()


@pytest.mark.crewguard
def test_a(crewguard):
    handle_request("AI")


@pytest.mark.crewguard
def test_b(crewguard):
    handle_request("AI")


@pytest.mark.crewguard
def test_fresh_twice(crewguard):
    for topic in ("AI", "ML"):
        agent = Agent(role="Researcher", goal="Research", backstory="Expert", llm=make_llm())
        task = Task(name="research", description=f"Research {topic}", expected_output="A summary",
                    agent=agent)
        Crew(agents=[agent], tasks=[task]).kickoff()
"""


def test_an_agent_the_application_keeps_across_requests_is_refused(
    pytester: pytest.Pytester, provider: Any
) -> None:
    # Only crews crewguard built were claimed: the application's own, with one module-level
    # agent serving every request (the server bug this check is for), passed in every test.
    server = provider(lambda request: Reply(text="A short summary."))
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, APP_REUSE_BODY))
    result = pytester.runpytest("--crewguard-record-mode=once", "-p", "no:randomly")
    assert outcomes(result) == {"test_a": "passed", "test_b": "failed", "test_fresh_twice": "passed"}
    result.stdout.fnmatch_lines(
        ["crewguard: Agent 'Researcher' (model gpt-4o-mini) was already used in a crew run by "
         "test_crew.py::test_a."]
    )
