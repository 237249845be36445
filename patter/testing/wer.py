"""Word error rate of a transcript, for tests and benchmarks of speech-to-text engines."""

from __future__ import annotations

import re

from patter._rule_agent import DIGIT_WORDS

__all__ = ["normalize_words", "word_edits", "word_error_rate"]

_TOKEN = re.compile(r"[a-z']+|\d")


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation, each digit its own word, digit words as digits
    ("Four-two, 7" → ``["4", "2", "7"]``), so a transcript is not penalised for writing
    numbers one way or the other."""
    tokens = (t.strip("'") for t in _TOKEN.findall(text.lower()))
    return [DIGIT_WORDS.get(t, t) for t in tokens if t]


def word_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, number of reference words), after
    ``normalize_words``: a word-level Levenshtein distance."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        current = [i]
        for j, other in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (word != other)))
        previous = current
    return previous[-1], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Edits needed to turn the hypothesis into the reference, per reference word."""
    edits, words = word_edits(reference, hypothesis)
    return edits / max(words, 1)
