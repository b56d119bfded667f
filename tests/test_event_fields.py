"""Reading CrewAI events on the handler thread: the same values as getattr, for every shape."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from pytest_crewguard.event_fields import field_of


class Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    agent_role: str | None = None
    output: Any = None

    @property
    def task_name(self) -> str:
        return "research"


class Plain:
    kind = "class attribute"

    def __init__(self) -> None:
        self.role = "Researcher"


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        (Event(agent_role="Writer"), "agent_role"),  # a field
        (Event(), "output"),  # a field left at its default
        (Event(), "tool_name"),  # a field this event type does not have
        (Event(), "task_name"),  # a property
        (Event(crew_name="crew"), "crew_name"),  # an extra field
        (Plain(), "role"),
        (Plain(), "kind"),
        (Plain(), "missing"),
        (None, "tools_handler"),
    ],
)
def test_field_reads_what_getattr_reads(obj: Any, name: str) -> None:
    assert field_of(obj, name) == getattr(obj, name, None)
