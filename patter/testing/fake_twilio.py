"""A fake Twilio on loopback: the REST API the ``twilio`` SDK calls, and calls placed like Twilio.

Point the SDK at it with ``client.api.base_url = fake.base_url``. Inbound calls are placed
with ``place_inbound_call``; outbound calls are dialled when the SDK creates them, scripted by
``fake.next_outbound``. Either way the TwiML answer is run like Twilio runs it, with a
``SimulatedPhone`` on the ``<Connect><Stream>``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from patter.testing._lifecycle import AsyncStartClose
from patter.testing._server import LoopbackServer
from patter.testing._twilio_callbacks import amd_form, progress_form, recording_form
from patter.testing._twilio_rest import FAULT_KINDS, TwilioApiError, build_rest_app
from patter.testing._twilio_state import (
    TERMINAL_STATUSES,
    Dial,
    FakeCall,
    FakeNumber,
    FakeRecording,
    FakeRequest,
    OutboundScript,
    WebhookResult,
    new_sid,
    utcnow,
)
from patter.testing._twilio_webhooks import WebhookSender
from patter.testing._twiml import TwimlRunner
from patter.testing.faults import Faults

__all__ = [
    "Dial",
    "FakeCall",
    "FakeNumber",
    "FakeRecording",
    "FakeRequest",
    "FakeTwilio",
    "OutboundScript",
    "TwilioApiError",
    "WebhookResult",
]

logger = logging.getLogger(__name__)


class FakeTwilio(AsyncStartClose):
    """Twilio's REST API and call handling, served on ``127.0.0.1``.

    Usage::

        async with FakeTwilio(numbers=["+15550001234"]) as fake:
            client = Client(fake.account_sid, fake.auth_token)
            client.api.base_url = fake.base_url
            ...
            call = await fake.place_inbound_call(from_="+15557654321", to="+15550001234")
            call.phone.say_text("hello")
    """

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        numbers: Iterable[str] = (),
    ) -> None:
        """Create the account (random SID and token unless given) owning ``numbers``."""
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.numbers: dict[str, FakeNumber] = {n: FakeNumber(n) for n in numbers}
        self.calls: dict[str, FakeCall] = {}
        self.requests: list[FakeRequest] = []
        self.next_outbound: OutboundScript | None = None
        """Script for the next ``Calls.json`` create; consumed by it (default: a human answers)."""
        self.fail_recordings = False
        """When true, creating a recording answers HTTP 400 with a Twilio error."""
        self.faults = Faults(FAULT_KINDS)
        """Faults per REST request kind (:mod:`patter.testing.faults`): ``numbers``,
        ``calls.create``, ``calls.fetch``, ``calls.redirect`` (an update with TwiML or a
        URL), ``calls.hang_up`` (an update with ``Status``), ``recordings.create``; each takes
        ``http`` (Twilio's error body; 429 → 20429, 500 → 20500; ``Fault.http(404,
        code=20404)``) and ``hang``."""
        self._webhooks = WebhookSender(self.auth_token, on_result=self._notify)
        self._twiml = TwimlRunner(self._webhooks)
        self._server: LoopbackServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._change = asyncio.Event()
        self.app = build_rest_app(self)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``client.api.base_url``."""
        if self._server is None:
            raise RuntimeError("FakeTwilio is not running; use 'async with FakeTwilio()'")
        return self._server.url

    @property
    def webhook_responses(self) -> list[WebhookResult]:
        """Every request made to the application (voice, TwiML, status, AMD, recording)."""
        return self._webhooks.results

    def route(self, public_base: str, local_base: str) -> None:
        """Deliver requests for ``public_base`` (https/wss) to ``local_base``, like a tunnel.

        Signatures stay computed on the public URL; ``X-Forwarded-Proto``/``-Host`` are added.
        """
        self._webhooks.routes[public_base] = local_base

    async def start(self) -> None:
        """Start serving on a free loopback port."""
        self._server = LoopbackServer(self.app)
        await self._server.start()

    async def close(self) -> None:
        """End every call's tasks and streams, then stop serving."""
        self.faults.release()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._webhooks.aclose()
        if self._server is not None:
            await self._server.close()
            self._server = None


    # -- driving calls -------------------------------------------------------------------------

    async def place_inbound_call(
        self,
        *,
        from_: str = "+15557654321",
        to: str | None = None,
        params: Mapping[str, str | None] | None = None,
        signature: str | None = None,
        sign_url: str | None = None,
        unsigned: bool = False,
        phone_options: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> FakeCall:
        """Ring ``to`` (default: the only number) from ``from_`` as Twilio does.

        POSTs the signed voice webhook configured on the number and runs the TwiML answer.
        Returns once the media stream is connected, the call is over, or ``timeout`` passed.
        ``params`` adds or (with None) removes webhook parameters; ``signature``, ``sign_url``
        and ``unsigned`` forge the signature; ``phone_options`` go to ``SimulatedPhone``.
        """
        if to is None and len(self.numbers) == 1:
            to = next(iter(self.numbers))
        number = self.numbers.get(to or "")
        if number is None or not number.voice_url:
            raise ValueError(
                f"FakeTwilio: {to!r} is not an owned number with a VoiceUrl; pass numbers=[...] "
                "and configure it via IncomingPhoneNumbers (or set fake.numbers[n].voice_url)"
            )
        call = FakeCall(
            self.account_sid, from_, number.phone_number, "inbound", status="ringing",
            status_callback=number.status_callback,
            status_callback_method=number.status_callback_method,
            status_callback_events=["completed"],
            phone_options=dict(phone_options or {}),
        )
        self._add_call(call)
        sent = {**call.call_params(), **(params or {})}
        result = await self._webhooks.send(
            "voice", call.sid, number.voice_url,
            {k: v for k, v in sent.items() if v is not None},
            method=number.voice_method, signature=signature, sign_url=sign_url, unsigned=unsigned,
        )
        call.webhook_status = result.status
        if result.status != 200:
            call.errors.append(f"11200 HTTP retrieval failure: {result.status or result.error}")
            await self._end(call, "completed")
            return call
        self._runners[call.sid] = self._spawn(self._drive(call, result.body))
        try:
            await call.wait_stream(timeout=timeout)
        except RuntimeError:
            pass
        return call

    async def wait_for_call(
        self, predicate: Callable[[FakeCall], bool] | None = None, *, timeout: float = 10.0
    ) -> FakeCall:
        """The first call matching ``predicate`` (default: outbound), once it exists."""
        match = predicate or (lambda call: call.direction == "outbound-api")
        await self.wait_until(lambda: any(map(match, self.calls.values())), timeout=timeout)
        return next(call for call in self.calls.values() if match(call))

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true; re-checked whenever the fake records something."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._change.wait()
        except TimeoutError:
            raise TimeoutError(f"FakeTwilio: condition not met within {timeout} s") from None

    # -- call lifecycle ------------------------------------------------------------------------

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("fake twilio task failed", exc_info=task.exception())

    def _add_call(self, call: FakeCall) -> None:
        self.calls[call.sid] = call

        async def hang_up() -> None:
            if self._terminate(call, "completed"):
                await self._wind_down(call)

        call._hang_up = hang_up
        self._notify()

    def _record(self, request: FakeRequest) -> None:
        self.requests.append(request)
        self._notify()

    def _dial_out(self, call: FakeCall, recording_events: list[str]) -> None:
        """Start an outbound call created over REST, scripted by ``next_outbound``."""
        script = self.next_outbound or OutboundScript()
        self.next_outbound = None
        call.phone_options = dict(script.phone_options)
        call.completed_callback_delay_s = script.completed_callback_delay_s
        self._add_call(call)
        self._runners[call.sid] = self._spawn(self._dial(call, script, recording_events))

    def _update(self, call: FakeCall, params: dict[str, str]) -> None:
        """Apply a REST update: hang up (``Status``) or run new TwiML (``Twiml``/``Url``)."""
        call.updates.append(params)
        status = params.get("Status")
        if status in ("completed", "canceled"):
            self._terminate(call, status)
            self._spawn(self._wind_down(call))
        elif params.get("Twiml") or params.get("Url"):
            previous = self._runners.get(call.sid)
            self._runners[call.sid] = self._spawn(
                self._redirect(call, previous, params.get("Twiml"), params.get("Url"),
                               params.get("Method", "POST"))
            )
        self._notify()

    async def _dial(
        self, call: FakeCall, script: OutboundScript, recording_events: list[str]
    ) -> None:
        await self._progress(call, "initiated")
        call.status = "ringing"
        await self._progress(call, "ringing")
        if script.ring_s:
            await asyncio.sleep(script.ring_s)
        if script.answer != "answered":
            await self._end(call, script.answer)
            return
        call.status, call.start_time = "in-progress", utcnow()
        await self._progress(call, "answered")
        params = call.params
        if params.get("Record", "").lower() == "true":
            self._start_recording(call, params, recording_events)
        if params.get("MachineDetection"):
            if params.get("AsyncAmd", "").lower() == "true":
                self._spawn(self._async_amd(call, script))
            else:
                await asyncio.sleep(script.amd_delay_s)
                call.answered_by = script.answered_by
        if script.twiml_delay_s:
            await asyncio.sleep(script.twiml_delay_s)
        twiml = params.get("Twiml") or await self._twiml.fetch(
            call, "twiml", params["Url"], params.get("Method", "POST")
        )
        await self._drive(call, twiml)

    async def _drive(self, call: FakeCall, twiml: str | None) -> None:
        status = "completed" if twiml is None else await self._twiml.run(call, twiml)
        await self._end(call, status)

    async def _redirect(
        self, call: FakeCall, previous: asyncio.Task[None] | None, twiml: str | None,
        url: str | None, method: str,
    ) -> None:
        if previous is not None:
            previous.cancel()
            await asyncio.gather(previous, return_exceptions=True)
        if url:
            twiml = await self._twiml.fetch(call, "twiml", url, method)
        await self._drive(call, twiml)

    async def _async_amd(self, call: FakeCall, script: OutboundScript) -> None:
        await asyncio.sleep(script.amd_delay_s)
        url = call.params.get("AsyncAmdStatusCallback")
        if call.status != "in-progress":
            return
        call.answered_by = script.answered_by
        if url:
            method = call.params.get("AsyncAmdStatusCallbackMethod", "POST")
            form = amd_form(call, script.answered_by, script.amd_delay_s)
            await self._webhooks.send("amd", call.sid, url, form, method=method)

    async def _progress(self, call: FakeCall, event: str) -> None:
        if not call.status_callback or event not in call.status_callback_events:
            return
        result = await self._webhooks.send(
            "status", call.sid, call.status_callback, progress_form(call, event),
            method=call.status_callback_method,
        )
        call.status_callbacks.append(result)

    def _terminate(self, call: FakeCall, status: str) -> bool:
        """Give the call its final status at once; False if it had already ended."""
        if call.status in TERMINAL_STATUSES:
            return False
        call.status, call.end_time = status, utcnow()
        self._notify()
        return True

    async def _end(self, call: FakeCall, status: str) -> None:
        if self._terminate(call, status):
            await asyncio.shield(self._spawn(self._finish(call)))

    async def _wind_down(self, call: FakeCall) -> None:
        runner = self._runners.get(call.sid)
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await self._finish(call)

    async def _finish(self, call: FakeCall) -> None:
        for recording in call.recordings:
            if recording.status == "in-progress":
                recording.status = "completed"
                recording.duration_s = int((utcnow() - recording.started).total_seconds())
                if "completed" in recording.callback_events:
                    await self._recording_callback(call, recording)
        if call.completed_callback_delay_s:
            await asyncio.sleep(call.completed_callback_delay_s)
        await self._progress(call, "completed")
        call.ended.set()
        self._notify()

    def _start_recording(
        self, call: FakeCall, params: Mapping[str, str], events: list[str]
    ) -> FakeRecording:
        recording = FakeRecording(
            call.sid,
            channels=2 if params.get("RecordingChannels") == "dual" else 1,
            status_callback=params.get("RecordingStatusCallback"),
            status_callback_method=params.get("RecordingStatusCallbackMethod", "POST"),
            callback_events=events or ["completed"],
        )
        call.recordings.append(recording)
        if "in-progress" in recording.callback_events:
            self._spawn(self._recording_callback(call, recording))
        self._notify()
        return recording

    async def _recording_callback(self, call: FakeCall, recording: FakeRecording) -> None:
        if not recording.status_callback:
            return
        result = await self._webhooks.send(
            "recording", call.sid, recording.status_callback, recording_form(call, recording),
            method=recording.status_callback_method,
        )
        recording.callbacks.append(result)
