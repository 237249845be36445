"""Agent configuration: prompt, voice, first message, variables, tools, vendors."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from patter import _validate
from patter._recovery import Recovery
from patter.errors import PatterConfigError
from patter.processors._phone_numbers import E164_IN_TEXT

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_DISCLOSURE = "This call is with an AI assistant, and it may be recorded."
SYSTEM_TOOL_NAMES = ("transfer_call", "end_call")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

ToolHandler = Callable[..., Any | Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    """A function the agent may call.

    Attributes:
        name: Function name the LLM sees.
        description: When to call it, for the LLM.
        parameters: JSON Schema of the arguments (an ``object`` schema).
        handler: ``handler(**arguments)`` (sync or async); its return value, turned into
            a string or JSON, goes back to the LLM.
    """

    name: str
    description: str
    handler: ToolHandler
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True)
class Agent:
    """What the AI says and does on a call. Build it with ``Patter.agent(...)``."""

    system_prompt: str
    voice: str
    first_message: str
    model: str
    tools: tuple[Tool, ...]
    stt: Any
    tts: Any
    llm: Any
    disclosure: str
    transfer_allowlist: frozenset[str]
    hold_music_url: str | None
    customize_pipeline: Callable[[Any], None] | None = None
    min_barge_in_s: float = 0.25
    recovery: Recovery = Recovery()
    """What the agent does when a vendor fails (``patter._recovery``)."""
    speculative_replies: bool = False
    """Start the LLM while smart-turn waits on a pause (``patter._speculation``)."""

    def may_transfer_to(self, number: str) -> bool:
        """Whether ``number`` is written in the system prompt or the explicit allowlist."""
        return number in self.transfer_allowlist


def fill_placeholders(text: str, variables: Mapping[str, Any], setting: str) -> str:
    """Replace each ``{name}`` in ``text`` with ``variables[name]``; a missing one is an error."""
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(variables))
    if missing:
        placeholders = ", ".join("{" + name + "}" for name in missing)
        raise PatterConfigError(
            f"{setting} uses {placeholders} but agent(variables=...) has no value for "
            f"{', '.join(missing)}: add it to variables, or remove the placeholder."
        )
    return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), text)


def _coerce_tool(tool: Tool | Mapping[str, Any]) -> Tool:
    if isinstance(tool, Tool):
        return tool
    if isinstance(tool, Mapping):
        try:
            return Tool(
                name=tool["name"],
                description=tool.get("description", ""),
                handler=tool["handler"],
                parameters=tool.get("parameters", {"type": "object", "properties": {}}),
            )
        except KeyError as exc:
            raise PatterConfigError(
                f"each tool needs 'name' and 'handler' (a function); tool {dict(tool)!r} "
                f"has no {exc.args[0]!r}."
            ) from None
    raise PatterConfigError(
        f"tools must be patter.Tool objects or dicts; got {type(tool).__name__}."
    )


def build_agent(
    system_prompt: str,
    *,
    voice: str,
    first_message: str,
    variables: Mapping[str, Any] | None,
    model: str,
    tools: Sequence[Tool | Mapping[str, Any]] | None,
    stt: Any,
    tts: Any,
    llm: Any,
    disclosure: str,
    transfer_allowlist: Sequence[str] | None,
    hold_music_url: str | None,
    customize_pipeline: Callable[[Any], None] | None = None,
    min_barge_in_s: float = 0.25,
    recovery: Recovery | None = None,
    speculative_replies: bool = False,
) -> Agent:
    """Validate the arguments of ``Patter.agent`` and return the frozen ``Agent``."""
    if not isinstance(system_prompt, str) or not system_prompt.strip():
        raise PatterConfigError("agent(system_prompt=...) is empty: say what the agent is for.")
    if not isinstance(disclosure, str) or not disclosure.strip():
        raise PatterConfigError(
            "agent(disclosure=...) cannot be empty: every call starts with an AI disclosure "
            "(a legal requirement in many places). Customise the wording instead."
        )
    values = dict(variables or {})
    prompt = fill_placeholders(system_prompt, values, "system_prompt")
    first = fill_placeholders(first_message or "", values, "first_message")
    coerced = tuple(_coerce_tool(t) for t in (tools or ()))
    names = [t.name for t in coerced]
    for tool in coerced:
        if tool.name in SYSTEM_TOOL_NAMES:
            raise PatterConfigError(
                f"tool name {tool.name!r} is reserved: Patter injects transfer_call and end_call "
                "into every agent. Rename your tool."
            )
        if not callable(tool.handler):
            raise PatterConfigError(f"tool {tool.name!r}: handler must be callable.")
        if inspect.isclass(tool.handler):
            raise PatterConfigError(f"tool {tool.name!r}: handler must be a function, not a class.")
    if len(set(names)) != len(names):
        raise PatterConfigError(f"tool names must be unique; got {names}.")
    allow = {n for n in E164_IN_TEXT.findall(prompt)}
    for number in transfer_allowlist or ():
        allow.add(_validate.e164(number, "agent(transfer_allowlist=[...])"))
    if hold_music_url is not None:
        _validate.http_url(hold_music_url, "agent(hold_music_url=...)")
    if not isinstance(min_barge_in_s, (int, float)) or not 0.05 <= min_barge_in_s <= 2.0:
        raise PatterConfigError(
            f"agent(min_barge_in_s={min_barge_in_s!r}) must be between 0.05 and 2 seconds: "
            "the caller's speech must last this long to interrupt the agent (default 0.25)."
        )
    if not isinstance(speculative_replies, bool):
        raise PatterConfigError(
            f"agent(speculative_replies={speculative_replies!r}) must be True or False."
        )
    return Agent(
        system_prompt=prompt,
        voice=voice,
        first_message=first,
        model=model,
        tools=coerced,
        stt=stt,
        tts=tts,
        llm=llm,
        disclosure=disclosure.strip(),
        transfer_allowlist=frozenset(allow),
        hold_music_url=hold_music_url,
        customize_pipeline=customize_pipeline,
        min_barge_in_s=float(min_barge_in_s),
        recovery=recovery or Recovery(),
        speculative_replies=speculative_replies,
    )
