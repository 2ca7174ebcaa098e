"""A REFLACX-style transcript for tests: sentences spoken word by word at even pace, each closed by a "." row."""
import numpy as np

from egma.datasets.study import Transcript


def dictated(sentences_times) -> Transcript:
    """[(text, t_start, t_end), ...] -> Transcript; a text's own final "." is dropped (the row adds it)."""
    tokens, start, end = [], [], []
    for text, t0, t1 in sentences_times:
        words = text.rstrip(".").split()
        for k, word in enumerate(words):
            tokens.append(word)
            start.append(t0 + (t1 - t0) * k / len(words))
            end.append(t0 + (t1 - t0) * (k + 1) / len(words))
        tokens.append(".")
        start.append(t1)
        end.append(t1)
    return Transcript(tokens, np.array(start), np.array(end))
