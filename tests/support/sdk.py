"""What tests that drive the official SDK client share: the text of a result, and a sampling callback that
answers like a model and records what it was asked."""

from __future__ import annotations

from typing import Any

from mcp import types

__all__ = ["Sampler", "text_of"]


def text_of(result: types.CallToolResult | types.GetPromptResult) -> str:
    """The text content of a tool result (or of a prompt's messages), joined."""
    if isinstance(result, types.GetPromptResult):
        return "".join(m.content.text for m in result.messages if isinstance(m.content, types.TextContent))
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


class Sampler:
    """A client's sampling callback: answers ``sampled: <prompt>`` and keeps each prompt in ``sampled``."""

    def __init__(self) -> None:
        self.sampled: list[str] = []

    async def sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = params.messages[0].content
        text = prompt.text if isinstance(prompt, types.TextContent) else str(prompt)
        self.sampled.append(text)
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text=f"sampled: {text}"))
