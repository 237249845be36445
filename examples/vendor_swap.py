"""Deepgram speech-to-text and ElevenLabs text-to-speech, chosen by a setting.

Shows: vendors picked by name (``stt="deepgram"``, ``tts="elevenlabs"``) with no other
code change; the LLM stays OpenAI. Keys come from the environment: DEEPGRAM_API_KEY and
ELEVENLABS_API_KEY beside the Twilio and OpenAI settings. ``voice`` is an ElevenLabs
voice ID here.

Try it without a number (local fakes of Deepgram and ElevenLabs)::

    patter simulate examples/vendor_swap.py:agent --say "Hello, who am I talking to?"

With a real number: ``patter serve examples/vendor_swap.py:agent``.
"""

import asyncio

from patter import Patter

STT = "deepgram"
TTS = "elevenlabs"
VOICE = "21m00Tcm4TlvDq8ikWAM"  # ElevenLabs' "Rachel"

phone = Patter(stt=STT, tts=TTS)

agent = phone.agent(
    "You are a friendly assistant. Keep answers short.",
    voice=VOICE,
    first_message="Hi! You are talking to an assistant on Deepgram and ElevenLabs.",
)


async def main() -> None:
    await phone.serve(agent, port=8000)


if __name__ == "__main__":
    asyncio.run(main())
