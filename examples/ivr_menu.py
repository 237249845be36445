"""A keypad menu (IVR): the caller presses a key and is transferred to that team.

Shows: keypad presses reaching the LLM as ``[DTMF: N]`` and the built-in ``transfer_call``
tool, which Twilio carries out as a redirect to the number (only numbers written in the
prompt may be dialled). Settings come from the environment (``Patter()`` with no
arguments reads TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, OPENAI_API_KEY, PHONE_NUMBER and
WEBHOOK_URL, or the spec's TWILIO_SID, TWILIO_TOKEN, OPENAI_KEY).

Try it without a number::

    patter simulate examples/ivr_menu.py:agent --dtmf 2

(with the local fakes the LLM only echoes; ``--real`` uses your OpenAI key and really
routes). With a real number: ``patter serve examples/ivr_menu.py:agent`` and call it.
"""

import asyncio

from patter import Patter

SALES = "+15550001111"
SUPPORT = "+15550002222"
OPERATOR = "+15550003333"

phone = Patter()

agent = phone.agent(
    system_prompt=f"""You are the automated phone menu of Acme Corp.
When the caller presses 1, transfer the call to sales at {SALES}.
When the caller presses 2, transfer the call to support at {SUPPORT}.
When the caller presses 0, transfer the call to a human operator at {OPERATOR}.
For any other key, repeat the menu. Keep every answer to one short sentence.""",
    first_message="Thank you for calling Acme. Press 1 for sales, 2 for support, "
    "or 0 for an operator.",
)


async def main() -> None:
    await phone.serve(agent, port=8000)


if __name__ == "__main__":
    asyncio.run(main())
