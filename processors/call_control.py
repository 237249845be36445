"""The tools Patter injects into every agent: ``transfer_call`` and ``end_call``.

Both act only after the caller has heard what the agent said before calling them
(a ``PlayoutCheckpointFrame`` marks that point), so "Transferring you now" and
"Goodbye" are never cut mid-word.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from patter import _validate
from patter._log import get_logger, mask_number
from patter._pipecat import (
    FunctionCallParams,
    FunctionCallResultProperties,
    FunctionSchema,
    LLMService,
)
from patter.errors import PatterConfigError
from patter.processors.checkpoint import PlayoutCheckpointFrame

logger = get_logger(__name__)

ALREADY_ACTING = "the call is already being transferred or ended"

TransferAction = Callable[[str, str], Awaitable[None]]
EndAction = Callable[[], Awaitable[None]]

TRANSFER_SCHEMA = FunctionSchema(
    name="transfer_call",
    description=(
        "Transfer the caller to another phone number. Before calling it, tell the caller "
        "briefly that you are transferring them."
    ),
    properties={
        "phone_number": {
            "type": "string",
            "description": "Destination in E.164 format, e.g. +15550001111.",
        },
        "reason": {"type": "string", "description": "Why the caller is being transferred."},
    },
    required=["phone_number"],
)

END_CALL_SCHEMA = FunctionSchema(
    name="end_call",
    description="Hang up the call. Say goodbye first; the call ends once it has been heard.",
    properties={"reason": {"type": "string", "description": "Why the call is ending."}},
    required=[],
)


class CallControl:
    """Handlers for ``transfer_call`` and ``end_call`` (register them on the LLM service).

    Args:
        allowlist: The only numbers ``transfer_call`` may dial (E.164). Others are refused
            with a tool error the LLM can recover from — a caller cannot talk the agent
            into dialling a premium number.
        on_transfer: ``await on_transfer(number, reason)`` performs the transfer.
        on_end_call: ``await on_end_call()`` hangs up.
    """

    def __init__(
        self,
        *,
        allowlist: Collection[str],
        on_transfer: TransferAction,
        on_end_call: EndAction,
    ) -> None:
        self._allowlist = frozenset(allowlist)
        self._on_transfer = on_transfer
        self._on_end_call = on_end_call
        self.acting = False

    @staticmethod
    def schemas() -> list[FunctionSchema]:
        """The tool schemas to add to the LLM context."""
        return [TRANSFER_SCHEMA, END_CALL_SCHEMA]

    def register(self, llm: LLMService) -> None:
        """Register both handlers on ``llm``.

        They are ordinary (synchronous) tools: if the caller barges in before the agent's
        last sentence has been heard, Pipecat cancels the call and nothing happens — the
        agent answers the caller instead, and may call the tool again.
        """
        llm.register_function("transfer_call", self._transfer)
        llm.register_function("end_call", self._end_call)

    async def _transfer(self, params: FunctionCallParams) -> None:
        number = str(params.arguments.get("phone_number", "")).strip()
        reason = str(params.arguments.get("reason", ""))
        try:
            _validate.e164(number, "phone_number")
        except PatterConfigError as exc:
            await params.result_callback({"error": str(exc)})
            return
        if number not in self._allowlist:
            logger.warning("transfer refused: number not allowed",
                           extra={"to": mask_number(number)})
            await params.result_callback(
                {
                    "error": "transfer refused: that number is not one this assistant may "
                    "transfer to. Tell the caller you cannot transfer them there."
                }
            )
            return
        if await self._start_acting(params, "transferring"):
            logger.info("transferring call", extra={"to": mask_number(number)})
            await self._on_transfer(number, reason)

    async def _end_call(self, params: FunctionCallParams) -> None:
        if await self._start_acting(params, "ending"):
            logger.info("agent ends the call")
            await self._on_end_call()

    async def _start_acting(self, params: FunctionCallParams, status: str) -> bool:
        """Answer the tool call, then wait until the caller heard the agent's last words.

        False if another transfer/hang-up is under way, or the caller barged in first.
        """
        if self.acting:
            await params.result_callback({"error": ALREADY_ACTING})
            return False
        self.acting = True
        await params.result_callback(
            {"status": status}, properties=FunctionCallResultProperties(run_llm=False)
        )
        checkpoint = PlayoutCheckpointFrame(label=params.function_name)
        try:
            await params.llm.push_frame(checkpoint)
            await checkpoint.reached.wait()
        except asyncio.CancelledError:
            self.acting = False
            logger.info("caller barged in; call action cancelled",
                        extra={"tool": params.function_name})
            raise
        return True

