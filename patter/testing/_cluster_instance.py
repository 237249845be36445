"""One Patter instance of a ``LocalCluster`` in tests and benchmarks, wired to a
``LoopbackWorld`` through the environment (``world.environment()``).

It greets each caller with :data:`GREETING`, answers with the fakes, and prints each call's
start and end as one JSON line on stdout (logs go to stderr)::

    {"event": "start", "call_sid": "CA…", "instance": "p1"}
    {"event": "end", "call_sid": "CA…", "instance": "p1", "ended_by": "caller"}

Run: ``python -P -m patter.testing._cluster_instance PORT [DRAIN_TIMEOUT_S [MAX_CALLS]]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable

from patter._client import Patter
from patter._events import Event
from patter._log import configure_logging

GREETING = "Hello from the cluster."


def _report(kind: str, instance_id: str) -> Callable[[Event], None]:
    def report(event: Event) -> None:
        line = {"event": kind, "call_sid": event["call_sid"], "instance": instance_id}
        if kind == "end":
            line["ended_by"] = event["ended_by"]
        print(json.dumps(line), flush=True)

    return report


async def main(port: int, drain_timeout_s: float, max_calls: int) -> None:
    """Serve on ``127.0.0.1:port`` until SIGTERM (drained) or SIGINT."""
    phone = Patter()
    agent = phone.agent("You are a test bot.", first_message=GREETING)
    await phone.serve(
        agent, port=port, host="127.0.0.1", drain_timeout_s=drain_timeout_s, max_calls=max_calls,
        on_call_start=_report("start", phone.instance_id),
        on_call_end=_report("end", phone.instance_id),
    )
    print(json.dumps({"event": "stopped", "instance": phone.instance_id}), flush=True)


if __name__ == "__main__":
    configure_logging(logging.WARNING)
    args = sys.argv[1:]
    asyncio.run(main(
        int(args[0]),
        float(args[1]) if len(args) > 1 else 60.0,
        int(args[2]) if len(args) > 2 else 20,
    ))
