"""Hypothesis strategies: Media Streams frames a live call must skip without harm.

Every frame drawn here is one Twilio would never send after ``start``, or a harmless
valid one (silent caller audio of an odd size, extra fields of any type). None is a
``stop``, a real key press or a mark Patter sent, so a call receiving them must carry on
exactly as before. ``examples(strategy, n)`` draws ``n`` of them reproducibly, for a test
that sends a whole batch over one real-time call.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from patter._pipecat import KeypadEntry
from patter.transports.media_stream import MAX_MESSAGE_BYTES

T = TypeVar("T")

KEYPAD = frozenset(entry.value for entry in KeypadEntry)
KNOWN_EVENTS = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})
SILENT = b"\xff"  # mu-law silence
ABSENT = object()  # a field left out of the message

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=6,
)
"""Any JSON value (NaN and infinities included: Python's ``json`` reads them)."""


def _decodes_to_audio(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return bool(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return False


def _is_patter_mark(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit()


bad_payloads = st.one_of(
    st.just(ABSENT), st.just(""), st.sampled_from(["AAAAA", "AA=A", "!!!!", "AAAA\n", "é==="]),
    json_values.filter(lambda v: not _decodes_to_audio(v)),
)
bad_tracks = json_values.filter(lambda v: v not in ("inbound", "inbound_track"))
bad_digits = st.one_of(
    st.just(ABSENT), st.sampled_from(["", "10", "a", "+", " 1", "１"]),
    json_values.filter(lambda v: not (isinstance(v, str) and v in KEYPAD)),
)
bad_mark_names = st.one_of(
    st.just(ABSENT), st.sampled_from(["nan", "inf", "-1", "1e9", "1.5", " 12", "12\n", "٣"]),
    json_values.filter(lambda v: not _is_patter_mark(v)),
)
ignored_fields = st.dictionaries(
    st.sampled_from(["sequenceNumber", "streamSid", "chunk", "timestamp", "extra"]),
    json_values, max_size=3,
)


def _message(event: Any, body_name: str, body: dict[str, Any] | Any, extra: dict[str, Any],
             ) -> dict[str, Any]:
    fields = body if not isinstance(body, dict) else {k: v for k, v in body.items()
                                                      if v is not ABSENT}
    return {**extra, "event": event, body_name: fields}


def _event(name: str, body: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``name`` events whose body is drawn from ``body``, among ignored fields of any type."""
    return st.builds(_message, st.just(name), st.just(name), body, ignored_fields)


bad_media = _event("media", st.one_of(
    json_values.filter(lambda v: not isinstance(v, dict)),
    st.fixed_dictionaries({"track": bad_tracks,
                           "payload": st.just(base64.b64encode(SILENT * 160).decode())}),
    st.fixed_dictionaries({"track": st.sampled_from(["inbound", ABSENT]), "payload": bad_payloads,
                           "chunk": json_values, "timestamp": json_values}),
))
silent_media = _event("media", st.fixed_dictionaries({
    "track": st.just("inbound"),
    "payload": st.integers(1, 400).map(lambda n: base64.b64encode(SILENT * n).decode()),
    "chunk": json_values, "timestamp": json_values,
}))
"""Valid caller audio of any size, all silence: heard by nobody, harmless."""
bad_dtmf = _event("dtmf", st.one_of(
    json_values.filter(lambda v: not isinstance(v, dict)),
    st.fixed_dictionaries({"digit": bad_digits, "track": json_values}),
))
bad_mark = _event("mark", st.one_of(
    json_values.filter(lambda v: not isinstance(v, dict)),
    st.fixed_dictionaries({"name": bad_mark_names}),
))
out_of_order = st.one_of(
    _event("connected", st.just({"protocol": "Call", "version": "1.0.0"})),
    _event("start", st.fixed_dictionaries({
        "streamSid": st.just("MZ" + "0" * 32), "callSid": st.just("CA" + "1" * 32),
        "customParameters": st.dictionaries(st.text(max_size=8), st.text(max_size=8),
                                            max_size=3),
    })),
)
"""A second ``start`` (another call's SIDs) or a late ``connected``."""
odd_events = st.one_of(
    json_values.filter(lambda v: not isinstance(v, dict)),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "event"), json_values, max_size=3),
    st.builds(lambda event, extra: {**extra, "event": event},
              json_values.filter(lambda v: not isinstance(v, str)), ignored_fields),
    st.builds(lambda event, body: {"event": event, event: body},
              st.text(max_size=12).filter(lambda e: e not in KNOWN_EVENTS), json_values),
)
"""Not an object, no ``event``, an ``event`` that is not a string, or an unknown event."""

hostile_messages = st.one_of(bad_media, silent_media, bad_dtmf, bad_mark, out_of_order,
                             odd_events)
"""Decoded JSON messages a live stream must skip (or, for silent audio, play as silence)."""

raw_frames = st.one_of(
    st.text(max_size=40).filter(lambda t: not t.lstrip().startswith("{")),
    st.binary(min_size=1, max_size=40),
    st.integers(1000, MAX_MESSAGE_BYTES // 4).map(lambda n: "[" * n + "]" * n),
    st.integers(4400, MAX_MESSAGE_BYTES // 4).map(
        lambda n: '{"event": "media", "media": {"payload": ' + "7" * n + "}}"),
)
"""Frames that are not one JSON object: text, binary, nesting too deep, a number too long."""

hostile_frames = st.one_of(hostile_messages.map(json.dumps), raw_frames)
"""What an abusive peer can put on the wire after ``start``, each under the size cap."""


def examples(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` values of ``strategy``, the same ones on every run (for one real-time call)."""
    drawn: list[T] = []

    @settings(max_examples=count, derandomize=True, database=None, phases=[Phase.generate],
              deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn
