"""Patter: an AI voice agent on a real phone line, on the Pipecat engine.

Quick start::

    from patter import Patter
    phone = Patter(twilio_sid=..., twilio_token=..., openai_key=...,
                   phone_number="+15550001234", webhook_url="https://abc.ngrok.app")
    agent = phone.agent(system_prompt="You are a friendly receptionist.")
    await phone.serve(agent)
"""

import os as _os

# In a source checkout, processors/ and transports/ sit beside patter/ (pyproject maps them
# to patter.processors and patter.transports for wheels and editable installs). When the
# checkout itself is on sys.path (python -m pytest, scripts run from the root), let the
# import system find them there too.
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "processors")):
    __path__.append(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))

# Pipecat logs a version banner to stderr when it is first imported: noise before the first
# line of the `patter` command or of an app (Pipecat hides it for its own CLI the same way).
from loguru import logger as _loguru  # noqa: E402

_loguru.disable("pipecat")
import pipecat  # noqa: E402,F401,I001

_loguru.enable("pipecat")

from patter._agent import Agent, Tool  # noqa: E402
from patter._client import Patter  # noqa: E402
from patter._events import Event  # noqa: E402
from patter._outbound import OutboundCall  # noqa: E402
from patter._pipeline import CallPipeline  # noqa: E402
from patter._rule_agent import Rule, RuleAgent  # noqa: E402
from patter.errors import PatterConfigError, PatterError, TwilioError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "CallPipeline",
    "Event",
    "OutboundCall",
    "Patter",
    "PatterConfigError",
    "PatterError",
    "Rule",
    "RuleAgent",
    "Tool",
    "TwilioError",
]
