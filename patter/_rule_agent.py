"""A rule agent where the LLM goes: keywords and keypresses → templated replies and tools."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from string import Formatter
from typing import Any

from patter import _validate
from patter._log import get_logger
from patter._pipecat import (
    Frame,
    FrameDirection,
    FunctionCallFromLLM,
    LLMContext,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMService,
    LLMSettings,
    LLMTextFrame,
)
from patter.errors import PatterConfigError
from patter.processors._phone_numbers import E164_IN_TEXT

logger = get_logger(__name__)

TEMPLATE_FIELDS = ("digits", "text")
DIDNT_CATCH = "Sorry, I didn't catch that. Could you say it again?"
CANNOT_DO = "Sorry, I can't do that."
_DTMF = re.compile(r"^\[DTMF: (.)\]$")
DIGIT_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
"""Spoken digit words and their digits ("oh" is left out: it is more often just "oh")."""
_WORD = re.compile(r"[a-z]+|\d")


@dataclass(frozen=True)
class Rule:
    """When the caller says one of ``keywords`` or presses one of ``keys``, say ``reply``.

    Args:
        reply: What the agent says; may use ``{text}`` (the caller's words) and
            ``{digits}`` (the digits they said or pressed, spaced: "4 2 7").
        keywords: Words or phrases, matched as whole words (or with a plural "s"),
            case-insensitively.
        keys: Keypad keys that trigger the rule, e.g. ``"0"`` or ``"0*"``.
        transfer_to: After the reply, transfer the call there (``transfer_call``; the
            number must be allowed, e.g. written in the agent's system prompt).
        end_call: After the reply, hang up (``end_call``).
    """

    reply: str
    keywords: Sequence[str] = ()
    keys: str = ""
    transfer_to: str | None = None
    end_call: bool = False

    def __post_init__(self) -> None:
        if not self.reply.strip():
            raise PatterConfigError("Rule(reply=...) is empty: say what the agent answers.")
        if isinstance(self.keywords, str):
            raise PatterConfigError(
                f"Rule(keywords={self.keywords!r}) must be a list of words, e.g. "
                f"keywords=[{self.keywords!r}]."
            )
        object.__setattr__(self, "keywords", tuple(self.keywords))
        if not self.keywords and not self.keys:
            raise PatterConfigError(
                f"Rule({self.reply!r}) has no trigger: give keywords=[...] or keys='0'."
            )
        bad_keys = set(self.keys) - set("0123456789*#")
        if bad_keys:
            raise PatterConfigError(
                f"Rule(keys={self.keys!r}): {''.join(sorted(bad_keys))} is not a keypad key "
                "(0-9, * or #)."
            )
        unknown = {field for _, field, _, _ in Formatter().parse(self.reply) if field} - set(
            TEMPLATE_FIELDS
        )
        if unknown:
            raise PatterConfigError(
                f"Rule reply {self.reply!r} uses {{{sorted(unknown)[0]}}}: only {{text}} and "
                "{digits} can be filled in."
            )
        if self.transfer_to is not None:
            _validate.e164(self.transfer_to, "Rule(transfer_to=...)")
            if self.end_call:
                raise PatterConfigError(
                    "a Rule either transfers (transfer_to=...) or hangs up (end_call=True), "
                    "not both."
                )

    def matches_words(self, words: str) -> bool:
        """Whether ``words`` (lower case, single-spaced) contain one of the keywords, as
        whole words; a plural "s" is allowed ("humans" matches "human")."""
        return any(re.search(rf"\b{re.escape(' '.join(k.lower().split()))}s?\b", words)
                   for k in self.keywords)


class RuleAgent(LLMService[Any]):
    """Stands where the LLM goes, with no model: keyword and keypress rules, in order.

    For a demo or a test without any AI service (``Patter(llm="rules")`` or
    ``llm=lambda: RuleAgent([...])``). It reads the last message of the LLM context
    and answers as an LLM service would.

    Consumes: ``LLMContextFrame``.
    Emits: ``LLMFullResponseStartFrame``, one ``LLMTextFrame`` (the first matching rule's
    reply, filled in; or ``fallback``, which says what this agent is), then — if the rule
    says so — a ``transfer_call`` or ``end_call`` function call through the registered
    handlers, like a tool call from a model; then ``LLMFullResponseEndFrame``.
    A keypress arrives as the user message ``[DTMF: 5]``; a tool error is answered with an
    apology, a wordless-turn note with a request to repeat.
    Passes through: every other frame.
    """

    def __init__(self, rules: Sequence[Rule], *, fallback: str | None = None,
                 **kwargs: Any) -> None:
        # No model: every model setting is unsupported (None), as Pipecat asks of a service.
        settings = LLMSettings(
            model=None, system_instruction=None, temperature=None, max_tokens=None, top_p=None,
            top_k=None, frequency_penalty=None, presence_penalty=None, seed=None,
            filter_incomplete_user_turns=False, user_turn_completion_config=None,
        )
        super().__init__(settings=settings, **kwargs)
        self._rules = tuple(rules)
        if not all(isinstance(rule, Rule) for rule in self._rules):
            raise PatterConfigError("RuleAgent(rules=[...]) takes patter.Rule objects.")
        self._fallback = fallback or self._describe()

    @classmethod
    def demo(cls, system_prompt: str = "") -> RuleAgent:
        """The rules of ``Patter(llm="rules")``: a human (or 0) — transferred to the first
        E.164 number written in ``system_prompt``, if there is one —, goodbye (or #), a
        number read back, hours, hello."""
        numbers = E164_IN_TEXT.findall(system_prompt)
        human = (
            Rule("Transferring you to a person now.", ["human", "person", "operator"],
                 keys="0", transfer_to=numbers[0])
            if numbers
            else Rule("There is no one to transfer you to in this demo.",
                      ["human", "person", "operator"], keys="0")
        )
        # The most specific first: "Hello, I'd like a human" is a transfer, not a greeting.
        return cls([
            human,
            Rule("Goodbye!", ["goodbye", "bye"], keys="#", end_call=True),
            Rule("I heard the number {digits}.", ["number", "account"]),
            Rule("We are open nine to five, Monday to Friday.", ["hours", "open"]),
            Rule("Hello! I'm an offline demo agent. Ask about our hours, read me a number, "
                 "or say goodbye.", ["hello", "hi"]),
        ])

    def _describe(self) -> str:
        words = [rule.keywords[0] for rule in self._rules if rule.keywords][:5]
        known = f" I understand a few words, like {', '.join(words)}." if words else ""
        return f"I'm an offline demo agent, not an AI model.{known}"

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Answer each context; pass every other frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self.push_frame(LLMFullResponseStartFrame())
            try:
                await self._answer(frame.context)
            finally:
                await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)

    async def _answer(self, context: LLMContext) -> None:
        messages = context.get_messages()
        last: Any = messages[-1] if messages else {}
        role = last.get("role") if isinstance(last, dict) else None
        content = _text_of(last.get("content")) if isinstance(last, dict) else ""
        if role == "tool":
            if "error" in content:
                await self.push_frame(LLMTextFrame(CANNOT_DO))
            return
        if role != "user":
            await self.push_frame(LLMTextFrame(DIDNT_CATCH))
            return
        rule, digits = self._match(content)
        text = (rule.reply.format(text=content, digits=" ".join(digits) or "none")
                if rule else self._fallback)
        logger.debug("rule agent answers", extra={"rule": rule.reply[:40] if rule else None})
        await self.push_frame(LLMTextFrame(text))
        if rule is not None and (rule.transfer_to or rule.end_call):
            name, arguments = (
                ("transfer_call", {"phone_number": rule.transfer_to, "reason": "caller asked"})
                if rule.transfer_to else ("end_call", {"reason": "caller said goodbye"})
            )
            await self.run_function_calls([FunctionCallFromLLM(
                function_name=name, tool_call_id=f"rule_{uuid.uuid4().hex[:16]}",
                arguments=arguments, context=context,
            )])

    def _match(self, content: str) -> tuple[Rule | None, list[str]]:
        key = _DTMF.match(content.strip())
        if key:
            pressed = key.group(1)
            return next((r for r in self._rules if pressed in r.keys), None), [pressed]
        tokens = _WORD.findall(content.lower())
        words = " ".join(tokens)
        digits = [t if t.isdigit() else DIGIT_WORDS[t] for t in tokens
                  if t.isdigit() or t in DIGIT_WORDS]
        return next((r for r in self._rules if r.matches_words(words)), None), digits


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
