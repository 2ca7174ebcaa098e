"""Dictation transcript -> report sentences with the time window in which their gaze is counted.

Both transcript kinds become one character stream with a time per character:
- REFLACX: one token per word, "." and "," as tokens of their own; a "." ends a sentence;
- EGD-CXR: one token per phrase; a phrase may hold several sentences or part of one, so phrases
  are split at sentence ends ("." "!" "?" followed by a space or the end; "1.5" is not an end) and
  times inside a phrase are interpolated linearly by character position.
A sentence is spoken from its first word's start to its last word's end (punctuation does not
count). Its gaze window opens `eye_voice_lead_s` earlier: radiologists look before they speak.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from egma.datasets.errors import DataFormatError
from egma.datasets.study import Transcript

_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_WORD_CHAR = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class SpokenSentence:
    text: str
    t_start: float   # first word starts
    t_end: float     # last word ends

    def window(self, lead_s: float) -> tuple[float, float]:
        return self.t_start - lead_s, self.t_end


def _character_times(transcript: Transcript, reading_id: str) -> tuple[str, np.ndarray, np.ndarray]:
    """The transcript's text (Transcript.text joining rule) and each character's time span."""
    starts, ends = np.asarray(transcript.t_start, float), np.asarray(transcript.t_end, float)
    for name, values in (("t_start", starts), ("t_end", ends)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataFormatError(reading_id, "transcript time is not a finite number", row=int(bad[0]) + 1, column=name)
    bad = np.flatnonzero(ends < starts)
    if len(bad):
        raise DataFormatError(reading_id, "token ends before it starts", row=int(bad[0]) + 1, column="t_end")
    pieces, char_start, char_end = [], [], []
    for token, t0, t1 in zip(transcript.tokens, starts, ends):
        token = str(token)
        if pieces and token not in {".", ","}:
            pieces.append(" ")
            char_start.append([np.nan])
            char_end.append([np.nan])
        fraction = np.arange(len(token) + 1) / max(len(token), 1)
        pieces.append(token)
        char_start.append(t0 + (t1 - t0) * fraction[:-1])
        char_end.append(t0 + (t1 - t0) * fraction[1:])
    if not pieces:
        return "", np.empty(0), np.empty(0)
    return "".join(pieces), np.concatenate(char_start), np.concatenate(char_end)


def spoken_sentences(transcript: Transcript, reading_id: str = "<transcript>") -> list[SpokenSentence]:
    """The report sentences of a dictation, in spoken order. An empty transcript is a DataFormatError."""
    text, char_start, char_end = _character_times(transcript, reading_id)
    bounds = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    is_word = np.array([bool(_WORD_CHAR.match(c)) for c in text], dtype=bool)
    sentences = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        words = np.flatnonzero(is_word[lo:hi]) + lo
        if len(words):
            sentences.append(SpokenSentence(text[lo:hi].strip(), float(char_start[words].min()),
                                            float(char_end[words].max())))
    if not sentences:
        raise DataFormatError(reading_id, "transcript is empty: no words to make sentences from", column="transcript")
    return sentences


def sentence_windows(sentences: list[SpokenSentence], lead_s: float) -> np.ndarray:
    """(m, 2) gaze windows [first word start - lead, last word end]."""
    return np.array([s.window(lead_s) for s in sentences], dtype=float).reshape(-1, 2)


def sentence_key(text: str) -> str:
    """Text for matching a report sentence with a dictated one: lower case, words only."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
