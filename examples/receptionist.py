"""A front desk that listens to what the caller wants and transfers by topic.

Shows: transfers decided by the LLM from the conversation (billing, technical support,
a manager), each to a number written in the prompt, and the live transcript through the
``on_transcript`` / ``on_message`` callbacks. Settings come from the environment.

Try it without a number::

    patter simulate examples/receptionist.py:agent --say "I have a question about my bill."

(``--real`` lets your OpenAI key decide the transfer). With a real number:
``patter serve examples/receptionist.py:agent`` (or ``python examples/receptionist.py``).
"""

import asyncio

from patter import Patter

BILLING = "+15550001111"
SUPPORT = "+15550002222"
MANAGER = "+15550003333"

phone = Patter()

agent = phone.agent(
    system_prompt=f"""You are the front desk receptionist of Acme Corp.
If the caller asks about billing, transfer them to {BILLING}.
If the caller asks about technical support, transfer them to {SUPPORT}.
If the caller asks to speak to a manager, transfer them to {MANAGER}.
Otherwise, answer briefly and politely.""",
    first_message="Acme Corp, front desk. How can I help you today?",
)


def on_transcript(event) -> None:
    print(f"caller: {event['text']}")


def on_message(event) -> None:
    print(f"agent: {event['text']}")


async def main() -> None:
    await phone.serve(agent, port=8000, on_transcript=on_transcript, on_message=on_message)


if __name__ == "__main__":
    asyncio.run(main())
