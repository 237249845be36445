"""Twilio's status, AMD and recording callbacks about a call: handled for a call this
instance holds, forwarded with a cluster to the instance that holds it (``patter._cluster``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from patter._calls import CallEntry, CallRegistry
from patter._cluster import Cluster
from patter._log import get_logger
from patter._recording import Recorder
from patter._security import WebhookVerifier
from patter._webhook import WebhookRejected, read_signed_form, rejected, require_call_fields

logger = get_logger(__name__)

CallbackHandler = Callable[[CallEntry, dict[str, str]], Awaitable[None]]


class CallbackRoutes:
    """The routes of the ``status``, ``amd`` and ``recording`` callbacks (``route(kind)``),
    and the handler of those another instance forwards here (``on_forwarded``)."""

    def __init__(self, *, registry: CallRegistry, verifier: WebhookVerifier,
                 recorder: Recorder, cluster: Cluster | None) -> None:
        self._registry = registry
        self._verifier = verifier
        self._recorder = recorder
        self._cluster = cluster
        self._handlers: dict[str, CallbackHandler] = {
            "status": self._status, "amd": self._amd, "recording": self._recording,
        }

    def route(self, kind: str) -> Callable[[Request], Awaitable[Response]]:
        """A signed callback route: handled here for a call held here, else forwarded to
        the instance holding it (with a cluster)."""

        async def route(request: Request) -> Response:
            try:
                form = await read_signed_form(request, self._verifier)
                require_call_fields(form, numbers=False)
            except WebhookRejected as exc:
                return rejected(exc, request)
            entry = await self._registry.get(form["CallSid"])
            if entry is not None:
                await self._handlers[kind](entry, form)
            elif self._cluster is not None:
                await self._cluster.forward(kind, form)
            elif kind == "recording":
                logger.info("recording callback for an unknown call")
            return Response(status_code=204)

        return route

    async def on_forwarded(self, kind: str, form: dict[str, str]) -> None:
        """A callback another instance forwarded: handled if the call is held here."""
        entry = await self._registry.get(form["CallSid"])
        if entry is not None and kind in self._handlers:
            await self._handlers[kind](entry, form)

    async def _status(self, entry: CallEntry, form: dict[str, str]) -> None:
        """A status callback: a placed call that ends without a stream is ended here."""
        if not entry.placed or entry.ended:
            return
        final = entry.status_reported(form.get("CallStatus", "")[:20])
        if final and not entry.streaming:  # no session will end this call
            await self._registry.remove(entry.call_sid)
            await entry.end_unconnected(entry.status)

    async def _amd(self, entry: CallEntry, form: dict[str, str]) -> None:
        """An asynchronous AMD verdict for a placed call."""
        if entry.placed:
            entry.verdict_reported(form.get("AnsweredBy", "unknown")[:40])

    async def _recording(self, entry: CallEntry, form: dict[str, str]) -> None:
        """A recording status callback; an ended call is forgotten after its final one."""
        await self._recorder.on_status(entry, form)
        if entry.ended and not entry.awaiting_recording:
            await self._registry.remove(entry.call_sid)
