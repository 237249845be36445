"""Checking the arguments an LLM passed to a tool: a JSON object, shaped as the schema says.

Pipecat 1.14 (``BaseOpenAILLMService._process_context``) ``json.loads`` the streamed
argument text: text that is not JSON is logged by Pipecat and the call is dropped (no
handler runs, the LLM is not re-prompted); any JSON value reaches the handler as
``params.arguments`` — an object, but also a list, a string, a number or ``null``. A
handler calls ``tool_arguments`` first and answers the LLM with ``{"error": ...}`` on
``BadToolArguments``, so the model can retry and the call goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patter._pipecat import FunctionSchema

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
SHOWN_NAMES = 5


class BadToolArguments(Exception):
    """The arguments do not fit the tool; the text tells the LLM what to send instead."""


def tool_arguments(arguments: object, schema: FunctionSchema | None = None) -> dict[str, Any]:
    """``arguments`` as a dict, checked against ``schema`` when given, else ``BadToolArguments``.

    Without a schema only the shape (a JSON object) is checked. With one, unknown fields,
    missing required fields and fields of the wrong JSON type (for ``string``,
    ``boolean``, ``object`` and ``array`` properties) are refused too.
    """
    if not isinstance(arguments, Mapping):
        raise BadToolArguments(
            f"arguments must be a JSON object, not {_json_type(arguments)}"
        )
    checked = dict(arguments)
    if schema is None:
        return checked
    unknown = sorted(str(name)[:40] for name in checked if name not in schema.properties)
    if unknown:
        raise BadToolArguments(
            f"unknown argument(s) {', '.join(unknown[:SHOWN_NAMES])}; "
            f"{schema.name} takes only: {', '.join(schema.properties) or 'no arguments'}"
        )
    missing = [name for name in schema.required if name not in checked]
    if missing:
        raise BadToolArguments(f"missing required argument(s) {', '.join(missing)}")
    for name, value in checked.items():
        expected = schema.properties[name].get("type")
        kinds = JSON_TYPES.get(expected) if isinstance(expected, str) else None
        if kinds is not None and not isinstance(value, kinds):
            raise BadToolArguments(f"{name} must be a JSON {expected}, not {_json_type(value)}")
    return checked


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__
