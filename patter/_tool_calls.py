"""The user's tools as the LLM sees and calls them."""

from __future__ import annotations

import asyncio
from typing import Any

from patter._agent import Tool
from patter._log import get_logger
from patter._pipecat import FunctionCallParams, FunctionSchema
from patter.processors._tool_arguments import BadToolArguments, tool_arguments

logger = get_logger(__name__)


def tool_schema(tool: Tool) -> FunctionSchema:
    """The function schema the LLM sees for the user's ``tool``."""
    parameters = dict(tool.parameters)
    return FunctionSchema(
        name=tool.name,
        description=tool.description,
        properties=dict(parameters.get("properties", {})),
        required=list(parameters.get("required", [])),
    )


def tool_handler(tool: Tool) -> Any:
    """A Pipecat function handler running ``tool`` on checked arguments; a refusal or an
    exception becomes an ``{"error": ...}`` result for the LLM, never the end of the call."""
    async def handler(params: FunctionCallParams) -> None:
        try:
            arguments = tool_arguments(params.arguments)
        except BadToolArguments as exc:
            logger.warning("tool call refused: bad arguments", extra={"tool": tool.name})
            await params.result_callback({"error": str(exc)})
            return
        try:
            result = tool.handler(**arguments)
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:
            logger.exception("tool raised", extra={"tool": tool.name})
            result = {"error": f"{type(exc).__name__}: {exc}"}
        await params.result_callback(result)

    return handler
