"""The turns of a call: history and LLM context true to what was said and heard.

``TurnRecorder`` is fed by the call's chain (the user and assistant aggregators, the
keypad injector, the Twilio output's cuts) and keeps two records in step: the history
handed to callbacks and the LLM context. It also sees that no caller turn is left
unanswered: a turn that ends with no words (a laugh, a cough, speech the STT could not
read) after it cut the agent off gets the agent to pick up again, instead of silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from patter._callbacks import CallbackQueue, Callbacks
from patter._events import Event, History
from patter._log import get_logger
from patter._pipecat import (
    DEFAULT_EMPTY_USER_TURN_INTERRUPTED_PROMPT,
    LLMContext,
    LLMContextMessage,
    LLMMessagesAppendFrame,
)
from patter.processors.dtmf import dtmf_text

logger = get_logger(__name__)

KEY_CUT_WAIT_S = 0.5
"""How long a keypress waits for the cut it caused to be recorded before its own entry."""
MAX_RECOVERIES_IN_A_ROW = 1
"""Wordless turns answered in a row; more (steady noise) wait for the caller's words."""

EventFactory = Callable[..., Event]
FrameQueue = Callable[..., Awaitable[None]]


class TurnRecorder:
    """History and LLM context of one call, fed by the chain's events.

    Args:
        context: The call's LLM context (shared with the aggregators).
        history: The call's history.
        speaking: Whether the agent is speaking (to the caller's ears) when a key is pressed.
        callbacks: ``on_transcript`` / ``on_message`` receive each entry.
        deliveries: The call's callback queue (the chain never waits on a callback).
        event: Builds a call event from fields (adds the call's identity and history).
        queue: Queues frames at the head of the running pipeline.
        ending: Whether the call is ending (then no turn is answered any more).
    """

    def __init__(
        self,
        *,
        context: LLMContext,
        history: History,
        speaking: Callable[[], bool],
        callbacks: Callbacks,
        deliveries: CallbackQueue,
        event: EventFactory,
        queue: FrameQueue,
        ending: Callable[[], bool],
    ) -> None:
        self._context = context
        self._history = history
        self._speaking = speaking
        self._callbacks = callbacks
        self._deliveries = deliveries
        self._event = event
        self._queue = queue
        self._turn_cut = False
        self._cuts = 0
        self._cut_recorded = asyncio.Condition()
        # Caller messages (words or keys) are counted in the LLM context, where the user
        # aggregator writes each one before the LLM runs on it: an answer begun with N of
        # them there answers those N, whatever order the aggregators' events arrive in.
        self._answered_messages = 0  # caller messages an answer was heard to its end for
        self._answering_messages = 0  # caller messages the agent's turn in progress answers
        self._recoveries_in_a_row = 0
        self._ending = ending

    # ----- caller turns ------------------------------------------------------------------

    async def on_user_turn_stopped(self, _aggregator: Any, _strategy: Any, message: Any) -> None:
        """The user aggregator closed a caller turn (``message.content``: its words)."""
        text = (getattr(message, "content", "") or "").strip()
        if text:
            await self._add_user_entry(text)
        else:
            await self._answer_wordless_turn()

    async def on_digit(self, digit: str) -> None:
        """A valid keypress, after the keypad injector queued it for the LLM."""
        await self._cut_by_key_recorded()
        await self._add_user_entry(dtmf_text(digit))

    @property
    def reply_owed(self) -> bool:
        """Whether the caller's last words (or key) have not been answered audibly in full."""
        return self._answered_messages < self._caller_messages()

    def _caller_messages(self) -> int:
        return sum(1 for m in self._context.get_messages()
                   if isinstance(m, dict) and m.get("role") == "user")

    async def _add_user_entry(self, text: str) -> None:
        self._recoveries_in_a_row = 0
        self._history.add("user", text)
        self._deliveries.post(self._callbacks.on_transcript, self._event(text=text, role="user"))

    async def _answer_wordless_turn(self) -> None:
        """A caller turn with no words. If it cut off (or cancelled) the agent's answer to
        the caller's last words, the caller is still owed that answer: the LLM runs with
        Pipecat's note for this case (ask to repeat; repeat what was missed). A wordless
        turn while the agent had answered in full is noise and gets no answer."""
        if not self.reply_owed or self._ending():
            return
        if self._recoveries_in_a_row >= MAX_RECOVERIES_IN_A_ROW:
            logger.debug("wordless caller turn left unanswered (too many in a row)")
            return
        self._recoveries_in_a_row += 1
        logger.info("a wordless caller turn cut the agent's answer: it picks up again")
        note: LLMContextMessage = {
            "role": "developer", "content": DEFAULT_EMPTY_USER_TURN_INTERRUPTED_PROMPT
        }
        await self._queue(LLMMessagesAppendFrame(messages=[note], run_llm=True))

    # ----- agent turns -------------------------------------------------------------------

    async def on_interrupted(self, heard_text: str) -> None:
        """The caller cut the agent off: the turn is what they heard of it, in history and
        in the LLM context (so the LLM knows where it was cut off)."""
        self._turn_cut = True
        if heard_text:
            self._context.add_message({"role": "assistant", "content": heard_text})
            self._history.add("assistant", heard_text)
        async with self._cut_recorded:
            self._cuts += 1
            self._cut_recorded.notify_all()
        if heard_text:
            self._deliveries.post(self._callbacks.on_message,
                                  self._event(text=heard_text, role="assistant"))

    async def on_agent_line(self, text: str) -> None:
        """The agent said ``text`` outside any LLM turn (an apology for a vendor failure):
        an assistant entry in history and in the LLM context."""
        self._context.add_message({"role": "assistant", "content": text})
        self._history.add("assistant", text)
        self._deliveries.post(self._callbacks.on_message, self._event(text=text, role="assistant"))

    async def on_assistant_turn_started(self, _aggregator: Any) -> None:
        """A turn of the assistant aggregator began (its start was heard)."""
        self._turn_cut = False  # a cut that ended no turn of the aggregator's is over
        self._answering_messages = self._caller_messages()

    async def on_assistant_turn_stopped(self, _aggregator: Any, message: Any) -> None:
        """A turn of the assistant aggregator ended: heard to its end, or interrupted."""
        if message.interrupted and self._turn_cut:
            # Already recorded as heard by on_interrupted; the aggregator's copy holds only
            # the text released before the cut (maybe less), so it goes.
            self._turn_cut = False
            self._drop_last_assistant_message(message.content or "")
            return
        if not message.interrupted:
            self._answered_messages = max(self._answered_messages, self._answering_messages)
        text = (message.content or "").strip()
        if text:
            self._history.add("assistant", text)
            self._deliveries.post(self._callbacks.on_message,
                                  self._event(text=text, role="assistant"))

    async def _cut_by_key_recorded(self) -> None:
        """A key pressed while the agent speaks cuts it (the DTMF injector interrupts first):
        the cut turn goes into history and the LLM context before the key does."""
        if not self._speaking():
            return
        cuts = self._cuts
        try:
            async with asyncio.timeout(KEY_CUT_WAIT_S), self._cut_recorded:
                await self._cut_recorded.wait_for(lambda: self._cuts > cuts)
        except TimeoutError:
            pass  # no interruption came (the agent's last words were already playing out)

    def _drop_last_assistant_message(self, content: str) -> None:
        messages = self._context.get_messages()
        last = messages[-1] if messages else None
        if content and isinstance(last, dict) and last.get("role") == "assistant" \
                and last.get("content") == content:
            self._context.set_messages(messages[:-1])
