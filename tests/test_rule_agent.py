"""RuleAgent: an LLM context in, a templated reply and tool calls out, as an LLM service."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pipecat.tests.utils import run_test

from patter import PatterConfigError, Rule, RuleAgent
from patter._pipecat import (
    FunctionCallParams,
    LLMContext,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from patter.processors.dtmf import dtmf_text

BILLING = "+15550001111"


async def answer(agent: RuleAgent, *messages: Any) -> list[str]:
    """Run one context through ``agent``; the texts of the LLM text frames it emitted."""
    down, _ = await run_test(agent, frames_to_send=[LLMContextFrame(LLMContext(list(messages)))])
    kinds = [type(f) for f in down if isinstance(
        f, (LLMFullResponseStartFrame, LLMTextFrame, LLMFullResponseEndFrame))]
    assert kinds[0] is LLMFullResponseStartFrame and kinds[-1] is LLMFullResponseEndFrame
    return [f.text for f in down if isinstance(f, LLMTextFrame)]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


async def test_a_keyword_gets_its_templated_reply_with_the_digits_heard() -> None:
    agent = RuleAgent([Rule("I heard {digits}.", ["account"]), Rule("Hello!", ["hello"])])

    assert await answer(agent, user("My Account is four 2 seven.")) == ["I heard 4 2 7."]


async def test_keywords_match_whole_words_in_rule_order() -> None:
    agent = RuleAgent([Rule("Hours.", ["hours"]), Rule("Hi.", ["hi", "hello"])])

    assert await answer(agent, user("Hello, what are your hours?")) == ["Hours."]
    assert await answer(RuleAgent([Rule("Hi.", ["hi"])]), user("This is it.")) != ["Hi."]


async def test_a_keypress_triggers_the_rule_for_its_key() -> None:
    agent = RuleAgent([Rule("Billing.", ["billing"], keys="1"), Rule("Sales.", keys="2")])

    assert await answer(agent, user(dtmf_text("2"))) == ["Sales."]


async def test_anything_else_gets_a_reply_that_says_what_the_agent_is() -> None:
    agent = RuleAgent([Rule("Open nine to five.", ["hours"])])

    [reply] = await answer(agent, user("Tell me a joke."))

    assert "offline demo agent" in reply and "hours" in reply


async def test_a_keyword_that_transfers_emits_the_transfer_call_function_call() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    async def record(params: FunctionCallParams) -> None:
        calls.append((params.function_name, dict(params.arguments)))
        await params.result_callback({"status": "transferring"})

    agent = RuleAgent([Rule("Transferring you now.", ["human"], transfer_to=BILLING)])
    agent.register_function("transfer_call", record)

    assert await answer(agent, user("A human, please.")) == ["Transferring you now."]
    assert calls == [("transfer_call", {"phone_number": BILLING, "reason": "caller asked"})]


async def test_goodbye_in_the_demo_rules_ends_the_call() -> None:
    calls: list[str] = []

    async def record(params: FunctionCallParams) -> None:
        calls.append(params.function_name)
        await params.result_callback({"status": "ending"})

    agent = RuleAgent.demo()
    agent.register_function("end_call", record)

    assert await answer(agent, user("OK, goodbye.")) == ["Goodbye!"]
    assert calls == ["end_call"]


async def test_a_tool_error_gets_an_apology_and_a_wordless_turn_a_request_to_repeat() -> None:
    agent = RuleAgent.demo()
    tool_error = {"role": "tool", "tool_call_id": "t1", "content": '{"error": "refused"}'}
    note = {"role": "developer", "content": "The user may have said something..."}

    assert await answer(agent, user("human"), tool_error) == ["Sorry, I can't do that."]
    assert await answer(agent, note) == ["Sorry, I didn't catch that. Could you say it again?"]


async def test_a_demo_greeting_that_asks_for_a_person_is_a_transfer_and_fallback_is_verbatim(
) -> None:
    rule, _ = RuleAgent.demo(f"A person is at {BILLING}.")._match("Hello, I'd like a human.")
    assert rule is not None and rule.transfer_to == BILLING

    agent = RuleAgent([Rule("Hi.", ["hi"])], fallback="Say {hi}, please.")
    assert await answer(agent, user("What?")) == ["Say {hi}, please."]


def test_the_demo_transfers_to_the_number_written_in_the_prompt() -> None:
    with_number = RuleAgent.demo(f"Send callers who ask for a person to {BILLING}.")

    rule, _ = with_number._match("operator")
    assert rule is not None and rule.transfer_to == BILLING
    rule, _ = RuleAgent.demo("No numbers here.")._match("operator")
    assert rule is not None and rule.transfer_to is None


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"reply": "Hi {name}", "keywords": ["hi"]}, "{text} and {digits}"),
        ({"reply": "Hi", "keywords": "hi"}, "keywords=['hi']"),
        ({"reply": "Hi"}, "keywords=[...] or keys="),
        ({"reply": "Hi", "keys": "A"}, "not a keypad key"),
        ({"reply": "Hi", "keys": "0", "transfer_to": "555"}, "E.164"),
    ],
)
def test_a_bad_rule_fails_at_construction_naming_the_fix(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(PatterConfigError, match=re.escape(fix)):
        Rule(**kwargs)
