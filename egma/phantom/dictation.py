"""Phantom dictation: when each word of a report is spoken.

Produces REFLACX-style tokens (`timestamps_transcription.csv`: one row per word, with "." and ","
as rows of their own) and EGD-CXR-style phrases (`transcript.json` "time_stamped_text"). Speech is
disfluency-free: a per-reading tempo, word durations from an estimate of the word's syllables,
short gaps between words, longer ones at commas, and 0.5-2 s pauses between sentences. Every
token carries the index of the sentence it belongs to, so the gaze simulator knows when each
sentence is spoken.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from egma.datasets.study import Transcript

PUNCTUATION = (".", ",")

# Spoken-English timing for dictation (~150 words/min including pauses).
_WORD_BASE_S = 0.10             # onset/offset overhead of a word
_SYLLABLE_S = 0.14              # per syllable
_WORD_JITTER_SIGMA = 0.15       # lognormal spread of a word's duration
_TEMPO_RANGE = (0.85, 1.15)     # per-reading speaker tempo (multiplies durations)
_WORD_GAP_S = (0.02, 0.12)      # silence between words of one clause
_COMMA_PAUSE_S = (0.15, 0.40)   # extra silence at a comma
_SENTENCE_PAUSE_MEDIAN_S = 0.9  # silence between sentences, lognormal, clipped below
_SENTENCE_PAUSE_SIGMA = 0.4
SENTENCE_PAUSE_RANGE_S = (0.5, 2.0)

# Numbers with thousands separators stay one word; ";" and ":" are spoken like commas.
_TOKEN_RE = re.compile(r"\d+(?:,\d{3})+|[,;:]|[^\s,;:]+")
_VOWEL_GROUP_RE = re.compile(r"[aeiouy]+", re.IGNORECASE)


@dataclass(frozen=True)
class DictationTimeline:
    """Tokens in spoken order. Words have their time span; "." and "," rows have zero duration
    and sit at the end of the word before them. `sentence_spans[i]` is (first word start,
    last word end) of sentence i."""
    tokens: tuple[str, ...]
    t_start: np.ndarray        # (T,) seconds
    t_end: np.ndarray          # (T,) seconds
    sentence: np.ndarray       # (T,) int, sentence index of every token
    sentence_spans: np.ndarray  # (S, 2) seconds

    @property
    def is_word(self) -> np.ndarray:
        return np.array([tok not in PUNCTUATION for tok in self.tokens], dtype=bool)

    @property
    def n_sentences(self) -> int:
        return len(self.sentence_spans)

    def to_transcript(self) -> Transcript:
        return Transcript(tokens=list(self.tokens), t_start=self.t_start.copy(), t_end=self.t_end.copy())


def tokenize_sentence(sentence: str) -> list[str]:
    """Words and "," / "." tokens of one sentence, ending with exactly one ".".

    Mid-sentence periods (abbreviations) are dropped from words so that "." only ever marks a
    sentence end, the convention readers of REFLACX and EGD-CXR rely on; decimals like "1.5" stay.
    """
    tokens: list[str] = []
    for raw in _TOKEN_RE.findall(sentence):
        if raw in ",;:":
            if tokens and tokens[-1] != ",":
                tokens.append(",")
            continue
        word = raw.strip('.!?()[]{}"')
        if word:
            tokens.append(word)
    if tokens and tokens[-1] == ",":
        tokens.pop()
    if not tokens:
        raise ValueError(f"sentence has no words to dictate: {sentence!r}")
    return tokens + ["."]


def _syllables(word: str) -> int:
    return max(1, len(_VOWEL_GROUP_RE.findall(word)))


def dictate(sentences: Sequence[str], rng: np.random.Generator, start_s: float) -> DictationTimeline:
    """Time-stamp the dictation of `sentences`, the first word starting at `start_s` seconds."""
    if len(sentences) == 0:
        raise ValueError("nothing to dictate: no sentences")
    tempo = rng.uniform(*_TEMPO_RANGE)
    tokens: list[str] = []
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    sentence_of: list[np.ndarray] = []
    spans = np.empty((len(sentences), 2))
    cursor = float(start_s)
    for i, text in enumerate(sentences):
        try:
            sent_tokens = tokenize_sentence(text)
        except ValueError as err:
            raise ValueError(f"sentence {i}: {err}") from None
        is_word = np.array([tok not in PUNCTUATION for tok in sent_tokens])
        words = [tok for tok in sent_tokens if tok not in PUNCTUATION]
        n = len(words)
        syllables = np.array([_syllables(w) for w in words])
        durations = tempo * (_WORD_BASE_S + _SYLLABLE_S * syllables) * rng.lognormal(0.0, _WORD_JITTER_SIGMA, n)
        gaps = tempo * rng.uniform(*_WORD_GAP_S, n)
        # Comma after word j: the comma row is the token following word j.
        word_pos = np.flatnonzero(is_word)
        comma_after = np.array([sent_tokens[p + 1] == "," for p in word_pos])
        gaps = gaps + comma_after * rng.uniform(*_COMMA_PAUSE_S, n)
        word_start = cursor + np.concatenate([[0.0], np.cumsum(durations + gaps)[:-1]])
        word_end = word_start + durations
        # Each punctuation row takes the end time of the word before it (zero duration).
        owner = np.cumsum(is_word) - 1
        tok_start = np.where(is_word, word_start[owner], word_end[owner])
        tok_end = word_end[owner]
        tokens.extend(sent_tokens)
        starts.append(tok_start)
        ends.append(tok_end)
        sentence_of.append(np.full(len(sent_tokens), i))
        spans[i] = word_start[0], word_end[-1]
        pause = rng.lognormal(np.log(_SENTENCE_PAUSE_MEDIAN_S), _SENTENCE_PAUSE_SIGMA)
        cursor = word_end[-1] + float(np.clip(pause, *SENTENCE_PAUSE_RANGE_S))
    return DictationTimeline(
        tokens=tuple(tokens),
        t_start=np.concatenate(starts),
        t_end=np.concatenate(ends),
        sentence=np.concatenate(sentence_of),
        sentence_spans=spans,
    )


def phrases(timeline: DictationTimeline, max_words: int = 6) -> list[tuple[str, float, float]]:
    """EGD-CXR-style phrases (text, begin, end): each sentence split at its commas, and clauses
    longer than `max_words` split into near-equal chunks. Punctuation stays attached to the
    word before it, so a sentence's last phrase ends with "." as in EGD-CXR transcripts."""
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    # Clauses: runs of words closed by a "," or "." token.
    out: list[tuple[str, float, float]] = []
    clause: list[int] = []
    for k, tok in enumerate(timeline.tokens):
        if tok not in PUNCTUATION:
            clause.append(k)
            continue
        if not clause:
            continue
        n_chunks = -(-len(clause) // max_words)
        for chunk in np.array_split(np.array(clause), n_chunks):
            words = [timeline.tokens[j] for j in chunk]
            closes_clause = chunk[-1] == clause[-1]
            text = " ".join(words) + (tok if closes_clause else "")
            out.append((text, float(timeline.t_start[chunk[0]]), float(timeline.t_end[chunk[-1]])))
        clause = []
    return out
