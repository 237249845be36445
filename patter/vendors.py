"""Vendor registry: a config name ("openai", "deepgram", "elevenlabs") → a Pipecat service.

Keys and base URLs come from ``Settings``; a ready Pipecat service object is used as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from patter._pipecat import (
    AsyncHTTPClient,
    LLMService,
    STTService,
    TTSService,
    connection_limits,
)
from patter.errors import PatterConfigError

PHONE_RATE_HZ = 8000
STT_VENDORS = ("openai", "deepgram")
TTS_VENDORS = ("openai", "elevenlabs")
ELEVENLABS_DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", ElevenLabs' default voice


@dataclass(frozen=True)
class VendorKeys:
    """API keys and endpoint overrides for every vendor (None = not configured)."""

    openai_key: str | None = field(repr=False)
    deepgram_key: str | None = field(repr=False)
    elevenlabs_key: str | None = field(repr=False)
    openai_base_url: str | None
    deepgram_base_url: str | None
    elevenlabs_base_url: str | None


def check_choice(choice: Any, kind: str, vendors: tuple[str, ...], keys: VendorKeys) -> None:
    """Raise at construction if ``choice`` names an unknown vendor or one without a key."""
    if choice is None or not isinstance(choice, str):
        if choice is not None and not isinstance(choice, (STTService, TTSService, LLMService)):
            raise PatterConfigError(
                f"{kind} must be one of {', '.join(vendors)} or a Pipecat service object; "
                f"got {type(choice).__name__}."
            )
        return
    if choice not in vendors:
        raise PatterConfigError(
            f"{kind}={choice!r} is not supported; choose one of {', '.join(vendors)}."
        )
    key_setting = {
        "openai": "openai_key",
        "deepgram": "deepgram_key",
        "elevenlabs": "elevenlabs_key",
    }[choice]
    if not getattr(keys, key_setting):
        env = key_setting.upper().replace("_KEY", "_API_KEY")
        raise PatterConfigError(
            f"{kind}={choice!r} needs an API key: pass Patter({key_setting}=...) or set {env}."
        )


def openai_connection_pool() -> AsyncHTTPClient:
    """One HTTP client whose connections every call's OpenAI requests share.

    Each Pipecat OpenAI service otherwise opens its own client, so every call's first
    transcription, completion and speech request would each wait for a new TCP + TLS
    connection on the reply's critical path. Idle connections are kept (up to 90 s) for
    the next turn or the next call.
    """
    from openai import DefaultAsyncHttpxClient

    return DefaultAsyncHttpxClient(  # httpx or httpx2, whichever this openai is built on
        limits=connection_limits(
            max_connections=1000, max_keepalive_connections=100, keepalive_expiry=90.0
        )
    )


def make_stt(
    choice: Any, keys: VendorKeys, http_client: AsyncHTTPClient | None = None
) -> STTService:
    """Build the speech-to-text service for ``choice`` (default: OpenAI, over ``http_client``
    when given)."""
    if isinstance(choice, STTService):
        return choice
    if choice in (None, "openai"):
        from pipecat.services.openai.stt import OpenAISTTService

        return OpenAISTTService(
            api_key=keys.openai_key, base_url=keys.openai_base_url, http_client=http_client
        )
    from pipecat.services.deepgram.stt import DeepgramSTTService

    kwargs: dict[str, Any] = {"api_key": keys.deepgram_key, "sample_rate": PHONE_RATE_HZ}
    if keys.deepgram_base_url:
        kwargs["base_url"] = keys.deepgram_base_url
    return DeepgramSTTService(**kwargs)


def make_tts(
    choice: Any, voice: str, keys: VendorKeys, http_client: AsyncHTTPClient | None = None
) -> TTSService:
    """Build the text-to-speech service for ``choice`` (default: OpenAI, 24 kHz resampled
    once, over ``http_client`` when given)."""
    if isinstance(choice, TTSService):
        return choice
    if choice in (None, "openai"):
        from pipecat.services.openai.tts import OpenAITTSService

        return OpenAITTSService(
            api_key=keys.openai_key,
            base_url=keys.openai_base_url,
            http_client=http_client,
            sample_rate=24000,
            settings=OpenAITTSService.Settings(voice=voice),
        )
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    voice_id = voice if voice and voice != "nova" else ELEVENLABS_DEFAULT_VOICE
    kwargs: dict[str, Any] = {
        "api_key": keys.elevenlabs_key,
        "sample_rate": PHONE_RATE_HZ,
        "settings": ElevenLabsTTSService.Settings(voice=voice_id),
    }
    if keys.elevenlabs_base_url:
        kwargs["url"] = keys.elevenlabs_base_url
    return ElevenLabsTTSService(**kwargs)


def make_llm(
    choice: Any,
    model: str,
    system_prompt: str,
    keys: VendorKeys,
    http_client: AsyncHTTPClient | None = None,
) -> LLMService:
    """Build the LLM service (OpenAI chat completions, over ``http_client`` when given,
    unless a service object is given).

    A service object given by the user is used as is; its system instruction is set to
    the agent's prompt.
    """
    if isinstance(choice, LLMService):
        choice._settings.system_instruction = system_prompt
        return choice
    from pipecat.services.openai.llm import OpenAILLMService

    llm = OpenAILLMService(
        api_key=keys.openai_key,
        base_url=keys.openai_base_url,
        settings=OpenAILLMService.Settings(model=model, system_instruction=system_prompt),
    )
    if http_client is not None:
        # Pipecat's LLM service takes no HTTP client (STT and TTS do): give it a client
        # over the shared pool the way its own create_client() builds one.
        from openai import AsyncOpenAI

        llm._client = AsyncOpenAI(
            api_key=keys.openai_key, base_url=keys.openai_base_url, http_client=http_client
        )
    return llm
