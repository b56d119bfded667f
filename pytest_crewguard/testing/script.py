"""What a scripted provider is told to answer, and what it received: the script's vocabulary."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReceivedRequest", "Reply", "Script", "ToolCall"]


@dataclass(frozen=True)
class ToolCall:
    """A function/tool call the scripted model asks for."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One scripted model reply, with the usage block the provider reports for it."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 120
    output_tokens: int = 30
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    delay_s: float = 0.0
    status: int = 200
    model: str | None = None

    @classmethod
    def tool(cls, name: str, **arguments: Any) -> Reply:
        """A reply that calls one tool."""
        return cls(tool_calls=(ToolCall(name, arguments),))


@dataclass(frozen=True)
class ReceivedRequest:
    """A request the provider answered, as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt_text(self) -> str:
        """All message text of the request, joined, for assertions on what a crew sent."""
        return "\n".join(_message_texts(self.body))


Script = Iterable[Reply] | Callable[[ReceivedRequest], Reply]


def _message_texts(body: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, list):
        texts.extend(str(b.get("text", "")) for b in system if isinstance(b, dict))
    for message in body.get("messages") or body.get("input") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict):
                    texts.append(str(block.get("text") or block.get("content") or ""))
    return texts
