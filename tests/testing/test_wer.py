"""Word error rate: edits per reference word, digits written either way count as the same."""

from __future__ import annotations

from patter.testing.wer import normalize_words, word_edits, word_error_rate


def test_digits_spoken_or_written_and_punctuation_do_not_count_as_errors() -> None:
    assert normalize_words("Four-two, 7!") == ["4", "2", "7"]
    assert word_error_rate("My number is four two seven.", "my number is 4, 2, 7") == 0.0


def test_substitutions_deletions_and_insertions_each_count_once() -> None:
    assert word_edits("call me at nine", "call be at") == (2, 4)
    assert word_edits("hello", "hello there you") == (2, 1)
    assert word_error_rate("", "anything") == 1.0
