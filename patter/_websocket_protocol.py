"""uvicorn's WebSocket protocol, pausing the socket's reads only when messages pile up.

uvicorn's sans-I/O WebSocket protocol stops reading the socket after every message it
queues for the app and starts again once the app has taken it: two ``epoll_ctl`` system
calls and the event loop's selector bookkeeping per message. A Media Stream brings 50
messages a second per call even while nobody speaks, and that pause and resume was ~13 %
of the event loop's time on a silent call. This protocol keeps reading until
``MAX_QUEUED_MESSAGES`` wait for the app, then pauses as uvicorn does (and resumes, as
uvicorn does, once the app has taken them all): the same bound on what a peer can make
the server hold, without a system call per message. uvicorn has no option for it, so the
protocol is subclassed (``uvicorn.Config(ws=...)`` takes a protocol class).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

MAX_QUEUED_MESSAGES = 16
"""Messages a socket may hold for the app before reading pauses (each at most the
server's ``max_message_bytes``; websockets' own connections keep 16 as well)."""


class BatchedReadsWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` that pauses reading at ``MAX_QUEUED_MESSAGES`` queued
    messages instead of at every message."""

    def send_receive_event_to_app(self) -> None:
        """Queue the message just read for the app; pause reading only if the app is
        ``MAX_QUEUED_MESSAGES`` behind."""
        paused, self.read_paused = self.read_paused, True  # uvicorn pauses unless paused
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not paused and self.queue.qsize() >= MAX_QUEUED_MESSAGES:
            self.read_paused = True
            self.transport.pause_reading()
