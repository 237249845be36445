"""The Deepgram service keeps the caller's audio it cannot send yet, bounded, newest first."""

from __future__ import annotations

from patter._deepgram import ReconnectingDeepgramSTTService
from patter.testing.audio import silence, tone


async def test_audio_held_without_a_socket_is_bounded_keeping_the_newest() -> None:
    stt = ReconnectingDeepgramSTTService(api_key="dg-test", sample_rate=8000, replay_limit_s=1.0)
    old, new = silence(1.5), tone(440, 0.5)
    for audio in (old, new):
        async for _ in stt.run_stt(audio):
            pass
    assert stt.unconfirmed_s == 1.0
    assert stt.held_audio.endswith(new)
