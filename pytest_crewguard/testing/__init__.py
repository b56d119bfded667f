"""Test support: a scripted LLM provider for recording cassettes without an API key."""

from .scripted_provider import ReceivedRequest, Reply, ScriptedProvider, ToolCall

__all__ = ["ReceivedRequest", "Reply", "ScriptedProvider", "ToolCall"]
