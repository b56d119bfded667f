from crewai import Agent, Crew, Task
from crewai.project import CrewBase, agent, crew, task

from .llms import make_llm


@CrewBase
class ResearchCrew:
    agents_config = "config/research_agents.yaml"
    tasks_config = "config/research_tasks.yaml"

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"], llm=make_llm())

    @task
    def research(self) -> Task:
        return Task(config=self.tasks_config["research"])

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks)


@CrewBase
class WriteCrew:
    agents_config = "config/write_agents.yaml"
    tasks_config = "config/write_tasks.yaml"

    @agent
    def writer(self) -> Agent:
        return Agent(config=self.agents_config["writer"], llm=make_llm())

    @task
    def write(self) -> Task:
        return Task(config=self.tasks_config["write"])

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks)
