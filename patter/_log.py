"""Logging: every record carries the call SID; Pipecat's loguru output joins stdlib logging.

The session sets ``call_sid_var`` for the tasks of its call, and ``CallSidFilter`` copies
it onto each record as ``record.call_sid`` (it is on every Patter logger and on the handler
of ``configure_logging``). ``redact`` removes registered secrets (and matches of registered
patterns, e.g. media tokens) from any text. Once a secret is registered, a log-record
factory scrubs every record at creation, from any logger (Pipecat, httpx, uvicorn,
websockets…), so no handler — the user's, pytest's ``caplog`` — ever sees a secret.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
from typing import Any

call_sid_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_sid", default="-")

_secrets: set[str] = set()
_patterns: list[re.Pattern[str]] = []
_secrets_lock = threading.Lock()
_E164_TAIL = re.compile(r"\+(\d{2,11})(\d{4})\b")
_scrubber_installed = False


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` (and every log record) hides it."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)
        _install_record_scrubber()


def register_secret_pattern(pattern: re.Pattern[str]) -> None:
    """Hide every match of ``pattern`` (e.g. the shape of a per-call token) like a secret."""
    with _secrets_lock:
        if pattern not in _patterns:
            _patterns.append(pattern)
    _install_record_scrubber()


def redact(text: str) -> str:
    """Replace every registered secret and secret-pattern match in ``text`` with ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
        patterns = list(_patterns)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    for pattern in patterns:
        text = pattern.sub("***", text)
    return text


def _scrub_record(record: logging.LogRecord) -> None:
    """Redact the message, its arguments and the exception text of ``record`` in place."""
    try:
        message = record.getMessage()
        arguments = repr(record.args) if record.args else ""
        exception = ""
        if record.exc_info and record.exc_info[1] is not None:
            exception = logging.Formatter().formatException(record.exc_info)
    except Exception:  # a broken format or argument: never raise at the logging call;
        return  # the handler reports it, as logging does without Patter
    if redact(message) != message or redact(arguments) != arguments:
        record.msg, record.args = redact(message), None
    if redact(exception) != exception:
        record.exc_text = redact(exception)


def _install_record_scrubber() -> None:
    """Wrap the log-record factory (once per process) so every record is scrubbed."""
    global _scrubber_installed
    with _secrets_lock:
        if _scrubber_installed:
            return
        _scrubber_installed = True
    previous = logging.getLogRecordFactory()

    def scrubbing_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub_record(record)
        return record

    logging.setLogRecordFactory(scrubbing_factory)


def mask_number(number: str) -> str:
    """Mask an E.164 number for logs, keeping the last four digits: ``+1******1234``."""
    return _E164_TAIL.sub(lambda m: "+" + "*" * len(m.group(1)) + m.group(2), number)


class CallSidFilter(logging.Filter):
    """Add ``call_sid`` (the call whose task is logging, else ``-``) to each record.

    On a handler it stamps records from every logger, third-party ones included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_sid"):
            record.call_sid = call_sid_var.get()
        return True


def get_logger(name: str) -> logging.Logger:
    """The logger for a Patter module, with the call-SID filter attached."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, CallSidFilter) for f in logger.filters):
        logger.addFilter(CallSidFilter())
    return logger


_LOGURU_BRIDGED = False


def bridge_pipecat_logs(level: str = "WARNING") -> None:
    """Route Pipecat's loguru output into the ``pipecat`` stdlib logger (once per process).

    Pipecat logs through loguru to stderr by default; sending it through ``logging``
    gives one handler, the call SID on every line, and secret scrubbing.
    """
    global _LOGURU_BRIDGED
    if _LOGURU_BRIDGED:
        return
    from loguru import logger as loguru_logger

    target = get_logger("pipecat")

    def sink(message: object) -> None:
        record = message.record  # type: ignore[attr-defined]
        target.log(record["level"].no, "%s", record["message"])

    loguru_logger.remove()
    loguru_logger.add(sink, level=level, format="{message}")
    _LOGURU_BRIDGED = True


def configure_logging(level: int = logging.INFO) -> None:
    """Set up a console handler printing the call SID on each line (for apps and the CLI)."""
    handler = logging.StreamHandler()
    handler.addFilter(CallSidFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(call_sid)s] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    bridge_pipecat_logs()
