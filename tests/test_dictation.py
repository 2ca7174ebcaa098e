"""The phantom dictation: REFLACX-style word timing with punctuation rows, and EGD-CXR-style phrases."""
import numpy as np
import pytest

from egma.phantom.dictation import PUNCTUATION, SENTENCE_PAUSE_RANGE_S, dictate, phrases, tokenize_sentence

REPORT = [
    "The heart size is normal.",
    "There is a small left pleural effusion, with adjacent basilar atelectasis.",
    "No pneumothorax.",
    "A 1.5 cm nodule projects over the right upper lobe; it is unchanged.",
    "The mediastinal and hilar contours are within normal limits.",
    "Osseous structures are intact.",
]


def test_tokens_in_time_order_with_punctuation_rows():
    tl = dictate(REPORT, np.random.default_rng(0), start_s=4.0)
    assert tl.t_start[0] == pytest.approx(4.0)
    assert np.all(np.diff(tl.t_start) >= 0) and np.all(tl.t_end >= tl.t_start)
    words = tl.is_word
    assert np.all(tl.t_start[words][1:] > tl.t_end[words][:-1])          # words never overlap
    toks = np.array(tl.tokens)
    assert (toks == ".").sum() == len(REPORT)
    assert (toks == ",").sum() == 2                                      # "," and ";" in REPORT
    ends = np.flatnonzero(toks == ".")
    assert np.array_equal(tl.sentence[ends], np.arange(len(REPORT)))     # "." closes each sentence
    punct = ~words
    # A punctuation row has zero duration, at the end of the word before it.
    assert np.array_equal(tl.t_start[punct], tl.t_end[punct])
    assert np.array_equal(tl.t_start[punct], tl.t_end[np.flatnonzero(punct) - 1])
    assert "1.5" in tl.tokens                                            # decimals stay words
    assert np.all(np.diff(tl.sentence) >= 0)
    for i, (a, b) in enumerate(tl.sentence_spans):
        sel = (tl.sentence == i) & words
        assert a == tl.t_start[sel].min() and b == tl.t_end[sel].max()


def test_speaking_rate_and_pauses_are_realistic():
    rates, pauses = [], []
    for seed in range(30):
        tl = dictate(REPORT, np.random.default_rng(seed), start_s=0.0)
        spans = tl.sentence_spans
        rates.append(tl.is_word.sum() / (spans[:, 1] - spans[:, 0]).sum())
        pauses.append(spans[1:, 0] - spans[:-1, 1])
    rates, pauses = np.array(rates), np.concatenate(pauses)
    assert 2.0 <= np.median(rates) <= 3.0 and rates.min() > 1.6 and rates.max() < 3.5
    assert pauses.min() >= SENTENCE_PAUSE_RANGE_S[0] - 1e-9 and pauses.max() <= SENTENCE_PAUSE_RANGE_S[1] + 1e-9
    # Longer words take longer to say.
    words = [t for t in tl.tokens if t not in PUNCTUATION]
    long_words = np.array([len(w) > 8 for w in words])
    for seed in range(5):
        tl = dictate(REPORT, np.random.default_rng(seed), 0.0)
        durations = (tl.t_end - tl.t_start)[tl.is_word]
        assert durations[long_words].mean() > 1.5 * durations[~long_words].mean()


def test_phrases_cover_all_words_once_and_close_sentences():
    tl = dictate(REPORT, np.random.default_rng(1), start_s=2.0)
    out = phrases(tl, max_words=4)
    words = [t for t in tl.tokens if t not in PUNCTUATION]
    phrase_words = [w.rstrip(".,") for text, _, _ in out for w in text.split()]
    assert phrase_words == words
    assert sum(text.endswith(".") for text, _, _ in out) == len(REPORT)
    assert all(len(text.split()) <= 4 for text, _, _ in out)
    begins = np.array([b for _, b, _ in out])
    ends = np.array([e for _, _, e in out])
    assert np.all(ends > begins) and np.all(begins[1:] >= ends[:-1])
    # No phrase straddles a sentence boundary.
    for b, e in zip(begins, ends):
        assert np.any((tl.sentence_spans[:, 0] <= b) & (e <= tl.sentence_spans[:, 1]))
    # Short sentences come out whole.
    assert ("No pneumothorax.", tl.sentence_spans[2, 0], tl.sentence_spans[2, 1]) in out


def test_dictation_is_deterministic_and_rejects_empty_sentences():
    a = dictate(REPORT, np.random.default_rng(7), 1.0)
    b = dictate(REPORT, np.random.default_rng(7), 1.0)
    assert a.tokens == b.tokens and np.array_equal(a.t_start, b.t_start)
    assert tokenize_sentence("Lungs: clear, no effusion") == ["Lungs", ",", "clear", ",", "no", "effusion", "."]
    with pytest.raises(ValueError, match="sentence 1"):
        dictate(["Heart normal.", " . "], np.random.default_rng(0), 0.0)


# ---------------------------------------------------------------- gaze: statistics
