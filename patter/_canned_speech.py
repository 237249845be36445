"""What an agent says from cache: the disclosure and the recovery lines, rendered in the
agent's voice once per (voice, text) and kept, so they play at once and even while the TTS
is down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from patter._agent import Agent
from patter._pipecat import TTSService
from patter._render import SpeechCache, voice_fingerprint
from patter._vendors import VendorKeys, first_choice, is_factory, make_tts
from patter.processors.response_guard import Line, RecoveryLines


class CannedSpeech:
    """Renders and caches an agent's fixed lines with the agent's (first) TTS."""

    def __init__(self, keys: VendorKeys) -> None:
        self.keys = keys
        self._speech_cache = SpeechCache()
        # id(factory) → (the factory, kept so its id stays its own; its voice fingerprint)
        self._custom_voices: dict[int, tuple[Callable[[], Any], str]] = {}

    async def recovery_lines(self, agent: Agent) -> RecoveryLines:
        """What the agent says when a vendor fails (apology, didn't catch, goodbye), rendered
        and cached like the disclosure, so it plays even while the TTS is down."""
        texts = agent.recovery.lines
        audio = await asyncio.gather(*(self.speech(agent, text) for text in texts))
        apology, didnt_catch, goodbye = (Line(t, a) for t, a in zip(texts, audio, strict=True))
        return RecoveryLines(apology=apology, didnt_catch=didnt_catch, goodbye=goodbye)

    async def speech(self, agent: Agent, text: str) -> bytes:
        """``text`` in the agent's voice as 8 kHz PCM, rendered once per (voice, text), cached.

        A factory's voice is told apart by its service's class and settings (voice, model,
        ...), so two agents with different custom voices get two renderings.
        """
        tts: TTSService | None = None
        first = first_choice(agent.tts)  # a fallback list's first vendor renders it
        if is_factory(first):
            known = self._custom_voices.get(id(first))
            if known is None:
                tts = make_tts(first, agent.voice, self.keys)
                known = self._custom_voices[id(first)] = (first, voice_fingerprint(tts))
            vendor, voice = "custom", known[1]
        else:
            vendor, voice = first or "openai", agent.voice
        key = SpeechCache.key(vendor, voice, text)
        cached = self._speech_cache.peek(key)
        if cached is not None:
            return cached
        return await self._speech_cache.get(
            key, tts or make_tts(first, agent.voice, self.keys), text
        )
