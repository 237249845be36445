"""Outbound calls with answering machine detection: a person gets the agent, a machine
gets a voicemail after its beep.

Shows: ``phone.call(...)`` with ``machine_detection=True`` and ``voicemail_message``,
and the outcome on the handle (``answered_by``, ``voicemail_left``). Settings come from
the environment.

Try it without a number (the simulated phone is answered by a machine)::

    patter simulate examples/outbound_voicemail.py:agent --outbound --machine-detection \\
        --answered-by machine_end_beep \\
        --voicemail "Hi, this is Acme Corp calling about your appointment."

With a real number: ``python examples/outbound_voicemail.py +15550009876`` (or
``patter call +15550009876 examples/outbound_voicemail.py:agent --machine-detection
--voicemail "…"``).
"""

import asyncio
import sys

from patter import Patter

VOICEMAIL = (
    "Hi, this is Acme Corp calling about your appointment. "
    "Please call us back at 555-000-1234."
)

phone = Patter()

agent = phone.agent(
    system_prompt="You are calling from Acme Corp to confirm tomorrow's appointment. "
    "Ask the person to confirm or to reschedule. Be brief.",
    first_message="Hi! This is Acme Corp calling about your appointment tomorrow.",
)


async def main(to: str) -> None:
    call = await phone.call(
        to=to, agent=agent, machine_detection=True, voicemail_message=VOICEMAIL
    )
    ended = await call.wait()
    print(f"answered by {call.answered_by}; voicemail left: {ended['voicemail_left']}")
    await phone.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
