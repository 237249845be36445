"""Logging: every record carries the call SID; Pipecat's loguru output joins stdlib logging.

The session sets ``call_sid_var`` for the tasks of its call, and ``CallSidFilter`` copies
it onto each record as ``record.call_sid``. ``redact`` removes registered secrets from any
text before it is logged or raised.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading

call_sid_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_sid", default="-")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_E164_TAIL = re.compile(r"\+(\d{2,11})(\d{4})\b")


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` (and every log record) hides it."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def mask_number(number: str) -> str:
    """Mask an E.164 number for logs, keeping the last four digits: ``+1******1234``."""
    return _E164_TAIL.sub(lambda m: "+" + "*" * len(m.group(1)) + m.group(2), number)


class CallSidFilter(logging.Filter):
    """Add ``call_sid`` to each record and scrub registered secrets from its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_sid"):
            record.call_sid = call_sid_var.get()
        message = record.getMessage()
        scrubbed = redact(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
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
