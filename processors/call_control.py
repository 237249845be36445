"""The tools Patter injects into every agent: ``transfer_call`` and ``end_call``.

Both act only after the caller has heard what the agent said before calling them
(a ``PlayoutCheckpointFrame`` marks that point), so "Transferring you now" and
"Goodbye" are never cut mid-word. A transfer Twilio refuses becomes the tool's error
result, and the LLM answers the caller on the call that goes on.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection

from patter._log import get_logger, mask_number
from patter._pipecat import (
    FunctionCallParams,
    FunctionCallResultProperties,
    FunctionSchema,
    LLMMessagesAppendFrame,
    LLMService,
)
from patter.errors import PatterConfigError, TwilioError
from patter.processors._phone_numbers import e164
from patter.processors._tool_arguments import BadToolArguments, tool_arguments
from patter.processors.checkpoint import PlayoutCheckpointFrame

logger = get_logger(__name__)

ALREADY_ACTING = "the call is already being transferred or ended"
TRANSFER_FAILED = (
    "transfer failed: the phone network refused it (HTTP {status}). The caller is still on "
    "the line: tell them the transfer did not work and offer another way to help."
)

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

        They are ordinary (synchronous) tools that answer at once. The action itself runs
        in a task of ``llm`` once the caller has heard the agent's last sentence; a barge-in
        does not cancel it (the LLM was already told it is under way), it only makes it
        happen sooner, since the caller will not hear the rest.
        """
        llm.register_function("transfer_call", self._transfer)
        llm.register_function("end_call", self._end_call)

    async def _transfer(self, params: FunctionCallParams) -> None:
        try:
            arguments = tool_arguments(params.arguments, TRANSFER_SCHEMA)
            number = e164(arguments["phone_number"].strip(), "phone_number")
        except (BadToolArguments, PatterConfigError) as exc:
            await _refuse(params, str(exc))
            return
        reason = arguments.get("reason", "")
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

        async def transfer() -> None:
            logger.info("transferring call", extra={"to": mask_number(number)})
            try:
                await self._on_transfer(number, reason)
            except TwilioError as exc:
                logger.warning("transfer refused by twilio; the call goes on",
                               extra={"to": mask_number(number), "status": exc.status,
                                      "code": exc.code})
                await self._transfer_failed(params, TRANSFER_FAILED.format(status=exc.status))

        await self._act_once_heard(params, "transferring", transfer)

    async def _end_call(self, params: FunctionCallParams) -> None:
        try:
            tool_arguments(params.arguments, END_CALL_SCHEMA)
        except BadToolArguments as exc:
            await _refuse(params, str(exc))
            return

        async def end_call() -> None:
            logger.info("agent ends the call")
            await self._on_end_call()

        await self._act_once_heard(params, "ending", end_call)

    async def _act_once_heard(
        self, params: FunctionCallParams, status: str, action: Callable[[], Awaitable[None]]
    ) -> None:
        """Answer the tool call; run ``action`` once the agent's words before it were heard."""
        if self.acting:
            await params.result_callback({"error": ALREADY_ACTING})
            return
        self.acting = True
        await params.result_callback(
            {"status": status}, properties=FunctionCallResultProperties(run_llm=False)
        )
        checkpoint = PlayoutCheckpointFrame(label=params.function_name)
        await params.llm.push_frame(checkpoint)
        params.llm.create_task(_run_when_reached(checkpoint, action), params.function_name)

    async def _transfer_failed(self, params: FunctionCallParams, error: str) -> None:
        """Make ``error`` the transfer tool's result (it said "transferring") and run the
        LLM on it; the agent may act again."""
        self.acting = False
        messages = list(params.context.get_messages())
        for index, message in enumerate(messages):
            if isinstance(message, dict) and message.get("role") == "tool" \
                    and message.get("tool_call_id") == params.tool_call_id:
                messages[index] = {"role": "tool", "tool_call_id": params.tool_call_id,
                                   "content": json.dumps({"error": error})}
        params.context.set_messages(messages)
        # Run by the assistant aggregator downstream: held while the agent is speaking.
        await params.llm.push_frame(LLMMessagesAppendFrame(messages=[], run_llm=True))


async def _refuse(params: FunctionCallParams, error: str) -> None:
    """Answer the LLM with ``error`` (it can retry); the call goes on."""
    logger.warning("tool call refused: bad arguments", extra={"tool": params.function_name})
    await params.result_callback({"error": error[:300]})


async def _run_when_reached(
    checkpoint: PlayoutCheckpointFrame, action: Callable[[], Awaitable[None]]
) -> None:
    await checkpoint.reached.wait()
    try:
        await action()
    except Exception:
        logger.exception("call action failed", extra={"action": checkpoint.label})
