"""Units: per-call media tokens, webhook signatures, and log scrubbing."""

from __future__ import annotations

import logging

import pytest
from twilio.request_validator import RequestValidator

from patter._log import CallSidFilter, call_sid_var, redact, register_secret
from patter._security import InvalidMediaToken, MediaTokens, WebhookVerifier

CALL = "CA" + "0" * 32
OTHER_CALL = "CA" + "1" * 32
NOW = 1_800_000_000.0
AUTH_TOKEN = "twilio-auth-token-for-units"
PUBLIC = "https://agent.example.com"


def refusal(tokens: MediaTokens, token: str | None, call_sid: str = CALL, now: float = NOW) -> str:
    """Why ``tokens`` refuses ``token``; fails the test if it is accepted."""
    with pytest.raises(InvalidMediaToken) as raised:
        tokens.redeem(token, call_sid, now=now)
    return str(raised.value)


# ----- media tokens ---------------------------------------------------------------------------


def test_a_token_is_accepted_once_for_its_call() -> None:
    tokens = MediaTokens("secret-one")
    token = tokens.issue(CALL, now=NOW)

    tokens.redeem(token, CALL, now=NOW + 1)

    assert refusal(tokens, token, now=NOW + 2) == "token already used"


def test_a_token_is_refused_for_another_call() -> None:
    tokens = MediaTokens("secret-one")
    token = tokens.issue(CALL, now=NOW)

    assert refusal(tokens, token, OTHER_CALL) == "bad signature or another call's token"
    tokens.redeem(token, CALL, now=NOW)  # the refusal did not spend it


@pytest.mark.parametrize("part", [1, 2, 3])
def test_changing_any_part_of_a_token_breaks_it(part: int) -> None:
    tokens = MediaTokens("secret-one")
    pieces = tokens.issue(CALL, now=NOW).split(".")
    original = pieces[part]
    pieces[part] = original[:-1] + ("1" if original[-1] != "1" else "2")

    assert refusal(tokens, ".".join(pieces)) == "bad signature or another call's token"


def test_a_token_expires_after_its_ttl() -> None:
    tokens = MediaTokens("secret-one", ttl_s=30)
    token = tokens.issue(CALL, now=NOW)

    assert refusal(tokens, token, now=NOW + 31) == "expired token"


@pytest.mark.parametrize(
    "token",
    [None, "", "v1", "v2.1.abc.def", "v1.99.nonce.mac.extra",
     "v1.１２３.AAAAAAAAAAAAAAAA." + "A" * 43,
     "v1." + "9" * 5000 + ".AAAAAAAAAAAAAAAA." + "A" * 43, "x" * 100_000],
    ids=["none", "empty", "short", "version", "parts", "unicode-digits", "huge-expiry", "huge"],
)
def test_malformed_tokens_are_refused_without_errors(token: str | None) -> None:
    assert refusal(MediaTokens("secret-one"), token) in {"no token", "malformed token"}


def test_instances_sharing_the_secret_accept_each_others_tokens() -> None:
    issuer, other_instance = MediaTokens("shared-secret"), MediaTokens("shared-secret")

    other_instance.redeem(issuer.issue(CALL, now=NOW), CALL, now=NOW)


def test_replay_protection_is_per_instance() -> None:
    """Documented limit (SECURITY.md): a token can be redeemed once on each instance."""
    first, second = MediaTokens("shared-secret"), MediaTokens("shared-secret")
    token = first.issue(CALL, now=NOW)
    first.redeem(token, CALL, now=NOW)

    second.redeem(token, CALL, now=NOW)


def test_a_token_from_another_secret_is_refused() -> None:
    assert refusal(MediaTokens(), MediaTokens().issue(CALL, now=NOW)) == (
        "bad signature or another call's token"
    )


def test_tokens_are_hidden_from_logs_and_reprs_hold_no_key() -> None:
    tokens = MediaTokens("secret-for-repr")
    token = tokens.issue(CALL)

    assert token not in redact(f"start with token={token}!")
    assert "secret-for-repr" not in repr(tokens)
    assert AUTH_TOKEN not in repr(WebhookVerifier(AUTH_TOKEN, PUBLIC))


# ----- webhook signatures ---------------------------------------------------------------------


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio sends for ``url`` with ``params``."""
    return str(RequestValidator(token).compute_signature(url, params))


PARAMS = {"CallSid": CALL, "From": "+15557654321", "To": "+15550001234"}


def test_a_signature_on_the_public_url_is_verified_on_the_local_path() -> None:
    verifier = WebhookVerifier(AUTH_TOKEN, PUBLIC + "/")

    assert verifier.verify("/twilio/voice", "", PARAMS, sign(f"{PUBLIC}/twilio/voice", PARAMS))


def test_the_query_string_is_part_of_what_is_signed() -> None:
    verifier = WebhookVerifier(AUTH_TOKEN, PUBLIC)
    signature = sign(f"{PUBLIC}/twilio/status?call=1", PARAMS)

    assert verifier.verify("/twilio/status", "call=1", PARAMS, signature)
    assert not verifier.verify("/twilio/status", "call=2", PARAMS, signature)


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        sign("http://127.0.0.1:8000/twilio/voice", PARAMS),
        sign(f"{PUBLIC}/twilio/status", PARAMS),
        sign(f"{PUBLIC}/twilio/voice", {**PARAMS, "From": "+15550000000"}),
        sign(f"{PUBLIC}/twilio/voice", PARAMS, token="another-account-token"),
    ],
    ids=["missing", "empty", "local-url", "other-path", "other-params", "other-account"],
)
def test_signatures_for_anything_else_are_rejected(signature: str | None) -> None:
    assert not WebhookVerifier(AUTH_TOKEN, PUBLIC).verify("/twilio/voice", "", PARAMS, signature)


# ----- log scrubbing --------------------------------------------------------------------------


def test_records_of_any_logger_are_scrubbed_before_any_handler_sees_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    register_secret("unit-secret-0123456789")
    token = MediaTokens().issue(CALL)
    caplog.set_level(logging.DEBUG)
    library = logging.getLogger("some.third.party")

    library.debug("> Authorization: Bearer %s", "unit-secret-0123456789")
    library.debug("frame %r", {"customParameters": {"token": token}})
    try:
        raise RuntimeError("failed with key unit-secret-0123456789")
    except RuntimeError:
        library.exception("request failed")

    assert "unit-secret-0123456789" not in caplog.text
    assert token not in caplog.text
    assert [r.getMessage() for r in caplog.records][:2] == [
        "> Authorization: Bearer ***", "frame {'customParameters': {'token': '***'}}"
    ]
    assert "RuntimeError: failed with key ***" in caplog.text


def test_the_call_sid_filter_stamps_records_from_the_call_context() -> None:
    stamp = CallSidFilter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)

    stamp.filter(outside)
    reset = call_sid_var.set(CALL)
    try:
        stamp.filter(record)
    finally:
        call_sid_var.reset(reset)

    assert (record.call_sid, outside.call_sid) == (CALL, "-")  # type: ignore[attr-defined]


def test_a_broken_log_argument_never_raises_at_the_logging_call() -> None:
    register_secret("unit-secret-0123456789")

    class Broken:
        def __repr__(self) -> str:
            raise ReferenceError("weakly-referenced object no longer exists")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    records: list[logging.LogRecord] = []
    library = logging.getLogger("some.isolated.library")
    library.propagate = False
    library.addHandler(Keep())

    library.warning("state %s", Broken())

    assert len(records) == 1
