"""Tool-call arguments from the LLM: any JSON value is either accepted as fitting or refused."""

from __future__ import annotations

from typing import Any

import pytest
from _hostile_streams import json_values
from hypothesis import given, settings
from hypothesis import strategies as st

from patter.processors._tool_arguments import BadToolArguments, tool_arguments
from patter.processors.call_control import END_CALL_SCHEMA, TRANSFER_SCHEMA

ARGUMENT_EXAMPLES = 1000
"""Counted in docs/reliability.md ("Bad input"); keep the two in step."""

schemas = st.sampled_from([None, TRANSFER_SCHEMA, END_CALL_SCHEMA])
arguments = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["phone_number", "reason", "extra"]), json_values,
                    max_size=3),
)


def fits(value: Any, schema: Any) -> bool:
    """The contract, stated independently of the implementation."""
    if not isinstance(value, dict):
        return False
    if schema is None:
        return True
    return (set(value) <= set(schema.properties) and set(schema.required) <= set(value)
            and all(isinstance(v, str) for v in value.values()))


@settings(max_examples=ARGUMENT_EXAMPLES, deadline=None, derandomize=True, database=None)
@given(arguments, schemas)
def test_any_json_value_is_accepted_exactly_when_it_fits_the_schema(value: Any,
                                                                    schema: Any) -> None:
    if fits(value, schema):
        assert tool_arguments(value, schema) == value
    else:
        with pytest.raises(BadToolArguments) as refused:
            tool_arguments(value, schema)
        assert len(str(refused.value)) < 400


def test_the_error_names_what_to_send_instead() -> None:
    with pytest.raises(BadToolArguments, match="must be a JSON object, not an array"):
        tool_arguments([1, 2])
    with pytest.raises(BadToolArguments, match="takes only: phone_number, reason"):
        tool_arguments({"phone_number": "+15550001111", "priority": "high"}, TRANSFER_SCHEMA)
    with pytest.raises(BadToolArguments, match="phone_number must be a JSON string, not a number"):
        tool_arguments({"phone_number": 15550001111}, TRANSFER_SCHEMA)
