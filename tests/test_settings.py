"""Bad settings fail at construction with one clear error naming the setting; secrets stay out."""

from __future__ import annotations

import pytest

from patter import Patter, PatterConfigError

GOOD = {
    "twilio_sid": "AC" + "a" * 32,
    "twilio_token": "twilio-token-secret-value",
    "openai_key": "sk-openai-secret-value",
    "phone_number": "+15550001234",
    "webhook_url": "https://abc123.ngrok.app",
}


def make(**changes: object) -> Patter:
    return Patter(**{**GOOD, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"twilio_sid": None}, "twilio_sid"),
        ({"twilio_sid": "12345"}, "twilio_sid"),
        ({"twilio_token": ""}, "twilio_token"),
        ({"openai_key": None}, "openai_key"),
        ({"phone_number": "555-0001"}, "phone_number"),
        ({"phone_number": "+1 555 000 1234"}, "phone_number"),
        ({"webhook_url": "ftp://example.com"}, "webhook_url"),
        ({"webhook_url": "https://example.com/voice.xml"}, "webhook_url"),
        ({"webhook_url": "example.com"}, "webhook_url"),
        ({"stt": "deepgram"}, "deepgram_key"),
        ({"tts": "elevenlabs"}, "elevenlabs_key"),
        ({"stt": "whisper-local"}, "stt"),
        ({"openai_base_url": "not a url"}, "openai_base_url"),
    ],
)
def test_a_bad_setting_is_a_clear_error_naming_it(changes: dict[str, object], names: str) -> None:
    with pytest.raises(PatterConfigError, match=names) as info:
        make(**changes)
    message = str(info.value)
    assert GOOD["twilio_token"] not in message and GOOD["openai_key"] not in message


def ready_service(setting: str) -> object:
    """A ready Pipecat service object of the kind ``setting`` takes."""
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.services.openai.stt import OpenAISTTService
    from pipecat.services.openai.tts import OpenAITTSService

    kind = {"stt": OpenAISTTService, "tts": OpenAITTSService, "llm": OpenAILLMService}[setting]
    return kind(api_key="sk-test-service")


@pytest.mark.parametrize("setting", ["stt", "tts", "llm"])
def test_a_ready_service_object_is_refused_with_the_factory_as_the_fix(setting: str) -> None:
    service = ready_service(setting)
    name = type(service).__name__
    with pytest.raises(PatterConfigError) as info:
        make(**{setting: service})
    assert str(info.value) == (
        f"{setting}={name}(...) is one object, but every call needs its own: pass a factory "
        f"instead, Patter({setting}=lambda: {name}(...))."
    )


@pytest.mark.parametrize("setting", ["stt", "tts"])
def test_a_ready_service_object_given_to_agent_is_refused_too(setting: str) -> None:
    with pytest.raises(PatterConfigError, match=rf"agent\({setting}=lambda: OpenAI"):
        make().agent("You are a bot.", **{setting: ready_service(setting)})


@pytest.mark.parametrize("setting", ["stt", "tts", "llm"])
def test_a_service_setting_that_is_neither_a_name_nor_a_factory_is_an_error(
        setting: str) -> None:
    with pytest.raises(PatterConfigError, match=rf"{setting} must be one of .* or a factory"):
        make(**{setting: 42})


def test_factories_are_accepted_at_construction() -> None:
    phone = make(stt=lambda: ready_service("stt"), tts=lambda: ready_service("tts"),
                 llm=lambda: ready_service("llm"))
    agent = phone.agent("You are a bot.", tts=lambda: ready_service("tts"))
    assert callable(agent.stt) and callable(agent.tts) and callable(agent.llm)


def test_a_fallback_list_of_names_and_factories_is_accepted() -> None:
    factory = lambda: ready_service("tts")  # noqa: E731
    phone = make(elevenlabs_key="xi-secret-value", tts=["elevenlabs", factory, "openai"],
                 llm=["openai", "rules"])
    agent = phone.agent("You are a bot.", stt=("openai",))
    assert agent.tts == ["elevenlabs", factory, "openai"] and agent.llm == ["openai", "rules"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tts": ["openai", "elevenlabs"]},
         r"^tts\[1\]='elevenlabs' needs an API key: pass Patter\(elevenlabs_key=...\) or set "
         r"ELEVENLABS_API_KEY\.$"),
        ({"stt": ["deepgram", "openai"]}, r"^stt\[0\]='deepgram' needs an API key"),
        ({"tts": []}, r"^tts is an empty list: name at least one vendor, in the order to try "
                      r"them, e.g. Patter\(tts=\['openai', 'elevenlabs'\]\)\.$"),
        ({"llm": ["openai", "openai"]}, r"^llm lists 'openai' twice: a fallback is tried only "
                                        r"when the vendors before it failed"),
        ({"stt": ["openai", None]}, r"^stt\[1\] is None: each entry of a fallback list is a "
                                    r"vendor name or a factory"),
        ({"tts": ["openai", ["elevenlabs"]]}, r"^tts\[1\] is \['elevenlabs'\]: each entry"),
        ({"tts": ["openai", "whisper"]}, r"^tts\[1\]='whisper' is not supported; choose one of"),
        ({"llm": ["openai", 42]}, r"^llm\[1\] must be one of .* or a factory"),
    ],
)
def test_a_bad_fallback_list_is_a_clear_error(changes: dict[str, object], message: str) -> None:
    with pytest.raises(PatterConfigError, match=message) as info:
        make(**changes)
    assert GOOD["openai_key"] not in str(info.value)


def test_the_same_factory_twice_in_a_fallback_list_is_an_error() -> None:
    def my_tts() -> object:
        return ready_service("tts")

    with pytest.raises(PatterConfigError, match=r"^agent\(tts=...\) lists 'my_tts' twice"):
        make().agent("You are a bot.", tts=[my_tts, my_tts])


def test_a_ready_service_object_in_a_fallback_list_is_refused() -> None:
    with pytest.raises(PatterConfigError, match=r"every call needs its own: pass a factory"):
        make(stt=["openai", ready_service("stt")])


def test_endpoint_overrides_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TWILIO_BASE_URL", "http://127.0.0.1:8")
    phone = make()
    assert phone.keys.openai_base_url == "http://127.0.0.1:9/v1"
    assert phone.twilio_base_url == "http://127.0.0.1:8"


def test_repr_shows_no_secret() -> None:
    text = repr(make())
    assert GOOD["twilio_token"] not in text and GOOD["openai_key"] not in text
    assert "+15550001234" not in text


def test_variables_fill_placeholders_in_prompt_and_first_message() -> None:
    agent = make().agent(
        "Remind {patient_name} of {appointment_date}.",
        first_message="Hello {patient_name}!",
        variables={"patient_name": "Jane Doe", "appointment_date": "March 20th"},
    )
    assert agent.system_prompt == "Remind Jane Doe of March 20th."
    assert agent.first_message == "Hello Jane Doe!"


def test_a_placeholder_without_a_value_is_an_error_at_agent_time() -> None:
    with pytest.raises(PatterConfigError, match=r"\{patient_name\}"):
        make().agent("Remind {patient_name}.", variables={})


def test_the_disclosure_cannot_be_emptied() -> None:
    with pytest.raises(PatterConfigError, match="disclosure"):
        make().agent("You are a bot.", disclosure="  ")


def test_speculative_replies_are_off_unless_asked_for_and_must_be_a_bool() -> None:
    assert make().agent("x").speculative_replies is False
    assert make().agent("x", speculative_replies=True).speculative_replies is True
    with pytest.raises(PatterConfigError, match="speculative_replies"):
        make().agent("x", speculative_replies="yes")  # type: ignore[arg-type]


def test_a_user_tool_named_transfer_call_is_an_error() -> None:
    with pytest.raises(PatterConfigError, match="reserved"):
        make().agent("x", tools=[{"name": "transfer_call", "handler": lambda: None}])


def test_numbers_in_the_prompt_and_the_allowlist_may_be_transfer_targets() -> None:
    agent = make().agent(
        "Billing is +15550001111.", transfer_allowlist=["+15550002222"]
    )
    assert agent.may_transfer_to("+15550001111") and agent.may_transfer_to("+15550002222")
    assert not agent.may_transfer_to("+19005550000")


async def test_a_wrong_twilio_token_fails_serve_with_an_error_naming_the_fix() -> None:
    from patter import TwilioError
    from patter.testing.harness import LoopbackWorld

    async with LoopbackWorld() as world:
        phone = world.patter(twilio_token="wrong-token-value-123")
        with pytest.raises(TwilioError, match=r"twilio_token") as info:
            await world.serve(phone, phone.agent("You are a test bot."))
        assert "wrong-token-value-123" not in str(info.value)
        assert info.value.status == 401


SPEC_ENV = {
    "TWILIO_SID": GOOD["twilio_sid"],
    "TWILIO_TOKEN": GOOD["twilio_token"],
    "OPENAI_KEY": GOOD["openai_key"],
    "PHONE_NUMBER": GOOD["phone_number"],
    "WEBHOOK_URL": GOOD["webhook_url"],
}
VENDOR_ENV = {
    "TWILIO_ACCOUNT_SID": "AC" + "b" * 32,
    "TWILIO_AUTH_TOKEN": "vendor-twilio-token",
    "OPENAI_API_KEY": "sk-vendor-openai",
    "DEEPGRAM_API_KEY": "dg-vendor-key",
    "ELEVENLABS_API_KEY": "xi-vendor-key",
}


def test_settings_not_passed_come_from_the_spec_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SPEC_ENV.items():
        monkeypatch.setenv(name, value)
    phone = Patter()
    assert phone.twilio_sid == GOOD["twilio_sid"]
    assert phone.keys.openai_key == GOOD["openai_key"]
    assert (phone.phone_number, phone.webhook_url) == (GOOD["phone_number"], GOOD["webhook_url"])


def test_the_vendors_conventional_variables_come_before_the_spec_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {**SPEC_ENV, **VENDOR_ENV}.items():
        monkeypatch.setenv(name, value)
    phone = Patter(stt="deepgram", tts="elevenlabs")
    assert phone.twilio_sid == VENDOR_ENV["TWILIO_ACCOUNT_SID"]
    assert phone.keys.openai_key == VENDOR_ENV["OPENAI_API_KEY"]
    assert phone.keys.deepgram_key == VENDOR_ENV["DEEPGRAM_API_KEY"]
    assert phone.keys.elevenlabs_key == VENDOR_ENV["ELEVENLABS_API_KEY"]


def test_an_argument_passed_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SPEC_ENV, **VENDOR_ENV}.items():
        monkeypatch.setenv(name, value)
    phone = make(phone_number="+15550009999")
    assert phone.twilio_sid == GOOD["twilio_sid"]
    assert phone.keys.openai_key == GOOD["openai_key"]
    assert phone.phone_number == "+15550009999"


@pytest.mark.parametrize(
    ("setting", "variables"),
    [
        ("twilio_sid", "TWILIO_ACCOUNT_SID (or TWILIO_SID)"),
        ("twilio_token", "TWILIO_AUTH_TOKEN (or TWILIO_TOKEN)"),
        ("openai_key", "OPENAI_API_KEY (or OPENAI_KEY)"),
        ("phone_number", "PHONE_NUMBER"),
        ("webhook_url", "WEBHOOK_URL"),
    ],
)
def test_a_missing_setting_names_the_argument_and_the_variables(
    setting: str, variables: str
) -> None:
    settings = {k: v for k, v in GOOD.items() if k != setting}
    with pytest.raises(PatterConfigError) as info:
        Patter(**settings)  # type: ignore[arg-type]
    assert f"Patter({setting}=...)" in str(info.value)
    assert variables in str(info.value)
