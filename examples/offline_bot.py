"""An agent with no AI service and no key: Moonshine hears, a rule agent answers, Piper speaks.

Shows: the offline engines (``stt="moonshine"``, ``tts="piper"``, weights inside the
``patter[offline]`` wheels) and ``RuleAgent`` rules — keywords and keypresses to replies,
a transfer and a hang-up. Only Twilio needs settings (TWILIO_ACCOUNT_SID,
TWILIO_AUTH_TOKEN, PHONE_NUMBER, WEBHOOK_URL in the environment).

Try it without a number (``pip install 'patter[offline]'``; espeak-ng speaks the caller)::

    patter simulate examples/offline_bot.py:agent --offline --say "What time do you open?" --dtmf 0

With a real number: ``patter serve examples/offline_bot.py:agent`` and call it.
"""

import asyncio

from patter import Patter, Rule, RuleAgent

FRONT_DESK = "+15550001111"

RULES = [
    Rule("We are open from nine to five, Monday to Friday.", ["open", "opening", "hours", "time"]),
    Rule("Press 0 to reach the front desk, or pound to hang up.", ["help", "menu"]),
    Rule("Putting you through to the front desk.", ["person", "human"], keys="0",
         transfer_to=FRONT_DESK),
    Rule("Goodbye!", ["goodbye", "bye"], keys="#", end_call=True),
]

phone = Patter(stt="moonshine", tts="piper", llm=lambda: RuleAgent(RULES))

agent = phone.agent(
    system_prompt=f"The front desk of Acme; a person can be reached at {FRONT_DESK}.",
    first_message="Hello, Acme front desk. Ask about our hours, or press 0 for a person.",
)



async def main() -> None:
    """Serve the agent on port 8000 (WEBHOOK_URL must reach it)."""
    await phone.serve(agent, port=8000)


if __name__ == "__main__":
    asyncio.run(main())
