"""egma.batch: image frame and normalisation, sentence/gaze alignment, studies without gaze."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from egma.batch import IMAGE_MEAN, IMAGE_STD, load_model_image, make_batch
from egma.config import get_preset
from egma.datasets.study import CHEXPERT_LABELS, Study
from egma.gaze.cache import GazeCache
from egma.model import build_tokenizer

CFG = get_preset("ci").model
N = CFG.grid * CFG.grid


def _study(tmp_path: Path, study_id: str, sentences: list[str], height=80, width=40, value=200) -> Study:
    pixels = np.full((height, width), value, np.uint8)
    path = tmp_path / f"{study_id}.png"  # lossless, so the intensities are exact
    Image.fromarray(pixels).save(path)
    return Study(study_id, "1", f"d{study_id}", path, (height, width), sentences)


def _cache(rows: dict[str, np.ndarray], sentences: dict[str, list[str]]) -> GazeCache:
    ids = list(rows)
    offsets = np.cumsum([0] + [len(rows[i]) for i in ids])
    content = {"params": {"grid": CFG.grid}, "params_hash": "", "corpus": "",
               "soft": torch.from_numpy(np.concatenate([rows[i] for i in ids]).astype(np.float16)),
               "offsets": torch.from_numpy(offsets), "study_ids": ids,
               "sentences": [s for i in ids for s in sentences[i]],
               "fallback": torch.zeros(int(offsets[-1]), dtype=torch.bool)}
    return GazeCache(content, Path("memory"), threshold=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(CFG)


def test_image_is_padded_centred_and_normalised(tmp_path):
    study = _study(tmp_path, "a", ["x."], height=80, width=40, value=255)
    image = load_model_image(study.image_path, 80)  # 80 x 40 portrait: 20 black columns each side, no resize
    assert image.shape == (3, 80, 80) and torch.equal(image[0], image[2])
    assert torch.allclose(image[:, :, 20:60], torch.tensor((1.0 - IMAGE_MEAN) / IMAGE_STD))
    assert torch.allclose(image[:, :, :20], torch.tensor(-IMAGE_MEAN / IMAGE_STD))
    assert torch.allclose(image[:, :, 60:], torch.tensor(-IMAGE_MEAN / IMAGE_STD))


def test_gaze_rows_follow_the_cache_sentences(tmp_path, tokenizer):
    rng = np.random.default_rng(0)
    with_gaze = _study(tmp_path, "g", ["Report sentence one.", "Report sentence two."])
    gaze_rows = rng.random((3, N))
    gaze_sentences = ["Heart normal.", "Small left effusion.", "No pneumothorax."]
    without = _study(tmp_path, "n", ["Lungs are clear."])
    cache = _cache({"g": gaze_rows}, {"g": gaze_sentences})

    batch = make_batch([without, with_gaze], tokenizer, CFG, cache)

    assert batch.study_ids == ["n", "g"]
    assert batch.sentences == [["Lungs are clear."], gaze_sentences]
    assert batch.has_gaze.tolist() == [False, True]
    assert batch.gaze.shape == (2, 3, N)
    assert torch.allclose(batch.gaze[1], torch.from_numpy(gaze_rows.astype(np.float16)).float())
    assert not batch.gaze[0].any()
    assert batch.sentence_study.tolist() == [0, 1, 1, 1]
    decoded = tokenizer.batch_decode(batch.input_ids, skip_special_tokens=True)
    assert decoded[2] == "small left effusion."  # the MiniLM vocabulary is uncased
    assert batch.images.shape == (2, 3, CFG.image_size, CFG.image_size)
    assert set(batch.model_inputs()) == {"images", "input_ids", "attention_mask", "sentence_study"}


def test_without_cache_no_study_has_gaze(tmp_path, tokenizer):
    studies = [_study(tmp_path, "a", ["One.", "Two."]), _study(tmp_path, "b", ["Three."])]
    batch = make_batch(studies, tokenizer, CFG)
    assert batch.gaze.shape == (2, 2, N) and not batch.gaze.any() and not batch.has_gaze.any()


def test_study_without_sentences_is_an_error(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="'e'.*no report sentences"):
        make_batch([_study(tmp_path, "e", [])], tokenizer, CFG)


def test_labels_are_the_positive_chexpert_findings(tmp_path, tokenizer):
    # MedCLIP's targets use only stated findings: uncertain (-1), negative (0) and blank (nan) are not positive
    studies = [_study(tmp_path, "a", ["One."]), _study(tmp_path, "b", ["Two."])]
    studies[0].labels.update({"Cardiomegaly": 1.0, "Edema": -1.0, "Atelectasis": 0.0, "Pneumonia": float("nan")})
    studies[1].labels.update({"No Finding": 1.0})
    batch = make_batch(studies, tokenizer, CFG)
    positive = [[CHEXPERT_LABELS[i] for i in np.flatnonzero(row)] for row in batch.labels.numpy()]
    assert batch.labels.shape == (2, len(CHEXPERT_LABELS)) and positive == [["Cardiomegaly"], ["No Finding"]]
