"""An appointment reminder for Dr. Smith's office: the spec's complete example, as written.

Shows: settings from the environment, an agent with a voice, a first message and
``{variables}``, keypad presses (1 confirms, 2 cancels), a transfer to the front desk,
recording, and the ``on_call_start`` / ``on_call_end`` callbacks.

Try it without a number (simulated phone, local fakes)::

    patter simulate examples/appointment_reminder.py:agent --say "Yes, this is Jane." --dtmf 1

With a real number: set TWILIO_SID, TWILIO_TOKEN, OPENAI_KEY, PHONE_NUMBER and WEBHOOK_URL
(e.g. in .env), expose port 8000 (``ngrok http 8000``), then
``python examples/appointment_reminder.py`` (or ``patter serve
examples/appointment_reminder.py:agent``) and call your number.
"""

import asyncio
import os

from dotenv import load_dotenv

from patter import Patter

load_dotenv()

phone = Patter(
    twilio_sid=os.environ["TWILIO_SID"],
    twilio_token=os.environ["TWILIO_TOKEN"],
    openai_key=os.environ["OPENAI_KEY"],
    phone_number=os.environ["PHONE_NUMBER"],
    webhook_url=os.environ["WEBHOOK_URL"],
)

agent = phone.agent(
    system_prompt="""You are an appointment reminder bot for Dr. Smith's office.
Behavior:
- Confirm the patient's identity by name and date of birth.
- Remind them of their upcoming appointment.
- If they want to reschedule, transfer to the front desk at +15550001111.
- If they press 1, confirm the appointment.
- If they press 2, cancel the appointment.
Be concise and professional.""",
    voice="nova",
    first_message="Hello! This is Dr. Smith's office calling with an appointment reminder.",
    variables={
        "patient_name": "Jane Doe",
        "appointment_date": "March 20th at 2:00 PM",
    },
)


async def on_call_start(event):
    print(f"Calling {event['callee']} for appointment reminder")


async def on_call_end(event):
    transcript = event["transcript"]
    # Save transcript to your database
    print(f"Call complete. {len(transcript)} messages exchanged.")


async def main():
    await phone.serve(
        agent,
        port=8000,
        recording=True,
        on_call_start=on_call_start,
        on_call_end=on_call_end,
    )


if __name__ == "__main__":
    asyncio.run(main())
