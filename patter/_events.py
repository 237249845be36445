"""Call events and conversation history.

Each event is a mapping and an attribute object at once, so ``event["callee"]``,
``event.get("history")`` and ``event.history`` all work. Callbacks get copies: changing
an event cannot corrupt the call's own history.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

Role = Literal["user", "assistant"]


def utc_timestamp(moment: datetime | None = None) -> str:
    """UTC time at second precision with a Z: ``2025-03-15T10:00:01Z``."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Event(Mapping[str, Any]):
    """A read-only mapping whose keys are also attributes.

    ``Event(call_sid="CA…", history=[...])`` gives ``event["call_sid"]``,
    ``event.get("history", [])`` and ``event.call_sid``.
    """

    __slots__ = ("_data",)

    def __init__(self, **fields: Any) -> None:
        object.__setattr__(self, "_data", copy.deepcopy(fields))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"event has no field {name!r}; fields: {sorted(self._data)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("events are read-only")

    def __repr__(self) -> str:
        return f"Event({', '.join(f'{k}={v!r}' for k, v in self._data.items() if k != 'history')})"


class History:
    """The one conversation history of a call, in order.

    Entries are ``{"role": "user"|"assistant", "text": str, "timestamp": "…Z"}``.
    """

    def __init__(self) -> None:
        self._entries: list[dict[str, str]] = []

    def add(self, role: Role, text: str) -> dict[str, str]:
        """Append an entry stamped now, and return a copy of it."""
        entry = {"role": role, "text": text, "timestamp": utc_timestamp()}
        self._entries.append(entry)
        return dict(entry)

    def snapshot(self) -> list[dict[str, str]]:
        """A deep copy of all entries, safe to hand to user code."""
        return [dict(e) for e in self._entries]

    def __len__(self) -> int:
        return len(self._entries)
