"""Bad input on a live call never makes it deaf, and never answers a webhook with a 500.

Hypothesis draws the input (reproducibly: ``derandomize``). A real-time call costs seconds,
so each call receives a whole generated batch rather than one call per example; the
exhaustive examples run against the parser alone (``tests/transports``).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import urlencode

from _hostile_streams import examples, hostile_frames, json_values
from _wire import Wire
from hypothesis import strategies as st

from patter._events import Event
from patter._webhook import MAX_BODY_BYTES
from patter.testing.fake_openai import Reply, ToolCall
from patter.testing.harness import LoopbackWorld, wait_for
from patter.testing.phone import SimulatedPhone

FRAMES_PER_CALL = 400
FORMS = 150
RAW_BODIES = 50
TOOL_CALLS_PER_LINE = 40
LINES = ("I would like a table for two.", "Can you check my order please?")
"""Counted in docs/reliability.md ("Bad input"); keep the two in step."""

THE_REPORTED_MESSAGE = json.dumps(
    {"event": "media", "sequenceNumber": "7",
     "media": {"track": "inbound", "chunk": "6", "timestamp": "120", "payload": 12345}}
)


async def say_and_hear_the_answer(phone: SimulatedPhone, line: str) -> None:
    """The caller says ``line`` once the line is quiet, and hears an answer to it."""
    await phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    heard = phone.heard_voiced_s
    phone.say_text(line)
    await phone.wait_for_heard(heard + 0.5, timeout=20)


async def test_a_call_fed_generated_malformed_messages_still_answers_and_ends_once(
    world: LoopbackWorld,
) -> None:
    world.openai.transcripts.append(LINES[0])
    world.openai.reply_with("A table for two, certainly.")
    patter = world.patter()
    ended: list[Event] = []
    await world.serve(patter, patter.agent("You are a restaurant host.", first_message="Hello."),
                      on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(1.0, timeout=20)

    for frame in [THE_REPORTED_MESSAGE, *examples(hostile_frames, FRAMES_PER_CALL)]:
        await call.phone.send_raw(frame)
    await say_and_hear_the_answer(call.phone, LINES[0])
    assert world.openai.chat_requests[-1]["messages"][-1]["content"] == LINES[0]
    assert world.openai.spoken[-1] == "A table for two, certainly."

    await call.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here
    assert len(ended) == 1 and ended[0]["ended_by"] == "caller"


# ----- webhooks ---------------------------------------------------------------------------

ROUTES = ("/twilio/voice", "/twilio/status", "/twilio/amd", "/twilio/recording")
TWILIO_FIELDS = ("AccountSid", "CallSid", "From", "To", "Direction", "CallStatus", "AnsweredBy",
                 "RecordingSid", "RecordingStatus", "RecordingDuration", "RecordingUrl")
odd_text = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["", "\x00", "\r\n", "%ZZ", "&=&", "+", "CA" + "0" * 32 + "\n", "٣" * 9]),
    st.integers(0, MAX_BODY_BYTES + 4096).map(lambda n: "9" * n),
)
form_values = st.one_of(
    odd_text,
    st.builds(lambda h: "CA" + h, st.text("0123456789abcdef", min_size=32, max_size=32)),
    st.sampled_from(["+15550001234", "+4420", "client:alice", "sip:a@b.c", "anonymous",
                     "inbound", "outbound-api", "completed", "machine_end_beep", "12"]),
)
forms = st.dictionaries(st.one_of(st.sampled_from(TWILIO_FIELDS), st.text(max_size=12)),
                        form_values, max_size=8)
webhook_cases = st.tuples(st.sampled_from(ROUTES), forms, st.booleans())


SHAPED_CALL_SID = re.compile(r"CA[0-9a-f]{32}")
SHAPED_NUMBER = re.compile(r"\+[1-9][0-9]{6,14}|client:[A-Za-z0-9_.-]{1,64}|sip:\S{1,200}"
                           r"|anonymous|", re.IGNORECASE | re.ASCII)


def well_formed(route: str, form: dict[str, str]) -> bool:
    """Whether Twilio could have sent ``form`` to ``route`` (it is then answered)."""
    if not SHAPED_CALL_SID.fullmatch(form.get("CallSid", "")):
        return False
    return route != "/twilio/voice" or all(
        SHAPED_NUMBER.fullmatch(form.get(name, "")) for name in ("From", "To"))


async def test_generated_webhook_forms_get_a_clean_4xx_or_an_answer(wire: Wire) -> None:
    await wire.serve_bot()
    answered = 0
    for route, form, signed in examples(webhook_cases, FORMS):
        response = await wire.post(route, form, signed=signed)
        size = len(urlencode(form))  # the body httpx sends
        case = f"{route} signed={signed} fields={sorted(form)[:8]} {size} bytes"
        assert response.status_code < 500, case
        if size > MAX_BODY_BYTES:
            assert response.status_code == 413, case
        elif not signed:
            assert response.status_code == 403, case
        elif not well_formed(route, form):
            assert response.status_code == 400, case
        else:
            assert response.status_code in (200, 204), case
            answered += 1
    assert answered  # the generated forms reach the handlers, not only the checks


async def test_a_call_sid_or_number_with_a_trailing_newline_is_refused(wire: Wire) -> None:
    await wire.serve_bot()
    call_sid = wire.new_call_sid()
    for overrides in ({"CallSid": call_sid + "\n"}, {"From": "+15550001234\n"},
                      {"To": "+1555٣٣٣٣٣٣٣"}):
        response = await wire.post("/twilio/voice", wire.call_params(call_sid, **overrides))
        assert response.status_code == 400, overrides
    assert (await wire.post("/twilio/voice", wire.call_params(call_sid))).status_code == 200


async def test_generated_raw_bodies_get_a_clean_4xx(wire: Wire) -> None:
    await wire.serve_bot()
    for route, body in examples(st.tuples(st.sampled_from(ROUTES), st.binary(max_size=300)),
                                RAW_BODIES):
        response = await wire.post(route, content=body)  # signed for no params: a mismatch
        assert response.status_code in (400, 403), (route, body[:40])


# ----- tool-call arguments ------------------------------------------------------------------

def _as_pipecat_reads(text: str) -> str:
    """Pipecat 1.14 reads empty argument text as ``{}``."""
    return text or "{}"


def _parses(text: str) -> bool:
    """Whether Pipecat can parse ``text`` (if not, it drops the call: no handler runs)."""
    try:
        json.loads(_as_pipecat_reads(text))
    except ValueError:
        return False
    return True


def _ends_the_call(name: str, text: str) -> bool:
    """Would a well-behaved ``end_call`` act on these arguments (not what we are testing)."""
    if name != "end_call" or not _parses(text):
        return False
    arguments = json.loads(_as_pipecat_reads(text))
    return (isinstance(arguments, dict) and set(arguments) <= {"reason"}
            and isinstance(arguments.get("reason", ""), str))


argument_fields = st.one_of(st.sampled_from(["phone_number", "reason", "order_id"]),
                            st.text(max_size=8))
argument_texts = st.one_of(
    st.text(max_size=30).filter(lambda t: not _parses(t)),  # not JSON: Pipecat drops the call
    json_values.map(json.dumps),  # any JSON value: lists, strings, numbers, null…
    st.dictionaries(argument_fields, json_values, max_size=4).map(json.dumps),
    st.sampled_from(['{"phone_number": "+15550001111"', '{"phone_number": 15550001111}',
                     '{"phone_number": "+1555 000 1111"}', '{"order_id": null}', ""]),
)
tool_calls = st.tuples(st.sampled_from(["transfer_call", "end_call", "lookup_order"]),
                       argument_texts).filter(lambda c: not _ends_the_call(*c))


async def test_generated_tool_arguments_get_error_results_and_the_call_goes_on(
    world: LoopbackWorld,
) -> None:
    lookups: list[dict[str, Any]] = []

    def lookup_order(**arguments: Any) -> str:
        lookups.append(arguments)
        return "order 42 ships tomorrow"

    drawn = examples(tool_calls, TOOL_CALLS_PER_LINE * len(LINES))
    batches = {line: drawn[i * TOOL_CALLS_PER_LINE:(i + 1) * TOOL_CALLS_PER_LINE]
               for i, line in enumerate(LINES)}

    # Every call Pipecat can parse reaches its handler and gets a result the LLM reads.
    results_due, due = {}, 0
    for line in LINES:
        due += 1 + sum(_parses(text) for _, text in batches[line])
        results_due[line] = due

    def tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The settled ones (Pipecat writes ``IN_PROGRESS`` until a call's result is in)."""
        return [m for m in messages if m["role"] == "tool" and m["content"] != "IN_PROGRESS"]

    answered_with: dict[str, list[dict[str, Any]]] = {}  # line → the tool results then read

    def responder(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        """A caller's line gets its batch of calls (and one well-formed call, so that the LLM
        always runs again); once all their results are in, one spoken answer naming the line.
        (Pipecat may run the LLM several times for one batch of instant tools.)"""
        line = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        if messages[-1]["role"] == "user":
            calls = [ToolCall(name, text) for name, text in batches[line]]
            return Reply(tool_calls=[*calls, ToolCall("lookup_order", {"order_id": "42"})])
        results = tool_results(messages)
        if len(results) < results_due[line] or line in answered_with:
            return Reply()
        answered_with[line] = results
        return Reply(text=f"Still here after {line[:10]}")

    world.openai.responder = responder
    world.openai.transcripts.extend(LINES)
    patter = world.patter()
    agent = patter.agent("You are a shop assistant.", first_message="Hello.", tools=[{
        "name": "lookup_order", "description": "Look up an order.", "handler": lookup_order,
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]},
    }])
    ended: list[Event] = []
    await world.serve(patter, agent, on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(1.0, timeout=20)

    for line in LINES:
        await say_and_hear_the_answer(call.phone, line)
        assert world.openai.spoken[-1] == f"Still here after {line[:10]}"
        results = answered_with[line]
        assert len(results) == results_due[line]
        assert all("error" in r["content"] or "ships tomorrow" in r["content"] for r in results)

    assert ended == [] and call.phone.is_open and {"order_id": "42"} in lookups
    await call.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)
    assert len(ended) == 1 and ended[0]["ended_by"] == "caller"
