"""Transcripts -> sentences with gaze windows, for REFLACX words and EGD-CXR phrases."""
import numpy as np
import pytest

from egma.datasets.errors import DataFormatError
from egma.datasets.study import Transcript
from egma.gaze.sentences import sentence_key, sentence_windows, spoken_sentences


def _reflacx():
    tokens = ["heart", "size", "normal", ".", "effusion", "of", "1.5", "cm", ",", "left", "."]
    start = np.array([1.0, 1.3, 1.6, 2.0, 4.0, 4.5, 4.7, 5.0, 5.2, 5.6, 6.0])
    end = np.array([1.2, 1.5, 2.0, 2.0, 4.4, 4.6, 4.9, 5.2, 5.2, 6.0, 6.0])
    return Transcript(tokens, start, end)


def test_reflacx_words_make_sentences_from_first_word_start_to_last_word_end():
    sentences = spoken_sentences(_reflacx())
    assert [s.text for s in sentences] == ["heart size normal.", "effusion of 1.5 cm, left."]
    assert [(s.t_start, s.t_end) for s in sentences] == [(1.0, 2.0), (4.0, 6.0)]


def test_window_opens_lead_seconds_early():
    windows = sentence_windows(spoken_sentences(_reflacx()), lead_s=0.75)
    np.testing.assert_allclose(windows, [[0.25, 2.0], [3.25, 6.0]])


def test_egd_phrases_are_split_and_timed_by_character_position():
    # One phrase holds the end of a sentence and the next one: 20 characters over 2 s.
    phrase = "lungs clear. no pne."   # "no" starts at character 13 -> 1.3 s in
    transcript = Transcript(["the", phrase], np.array([0.0, 1.0]), np.array([0.5, 3.0]))
    first, second = spoken_sentences(transcript)
    assert (first.text, second.text) == ("the lungs clear.", "no pne.")
    assert first.t_start == 0.0
    assert first.t_end == pytest.approx(1.0 + 2.0 * 11 / 20)   # last letter of "clear" (the "." is not a word)
    assert second.t_start == pytest.approx(1.0 + 2.0 * 13 / 20)
    assert second.t_end == pytest.approx(1.0 + 2.0 * 19 / 20)


def test_trailing_words_without_a_period_are_a_sentence():
    transcript = Transcript(["no", "effusion"], np.array([0.0, 0.5]), np.array([0.4, 1.0]))
    assert [s.text for s in spoken_sentences(transcript)] == ["no effusion"]


@pytest.mark.parametrize("tokens", [[], [".", "."]])
def test_empty_transcript_is_a_data_format_error(tokens):
    transcript = Transcript(tokens, np.zeros(len(tokens)), np.zeros(len(tokens)))
    with pytest.raises(DataFormatError, match="reading-7.*empty"):
        spoken_sentences(transcript, "reading-7")


def test_bad_token_times_name_row_and_column():
    transcript = _reflacx()
    transcript.t_end[4] = 3.0   # ends before it starts
    with pytest.raises(DataFormatError) as err:
        spoken_sentences(transcript, "r")
    assert (err.value.row, err.value.column) == (5, "t_end")
    transcript.t_start[2] = np.nan
    with pytest.raises(DataFormatError) as err:
        spoken_sentences(transcript, "r")
    assert (err.value.row, err.value.column) == (3, "t_start")


def test_sentence_key_ignores_case_and_punctuation():
    assert sentence_key("Effusion of 1.5 cm, left.") == sentence_key("effusion of 1.5 cm left")
    assert sentence_key("No effusion.") != sentence_key("Effusion.")
