"""egma.augment: photometric draws are seeded per (seed, epoch, study), keep geometry and padding."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from egma.augment import PhotometricAugment
from egma.batch import IMAGE_MEAN, IMAGE_STD, load_model_image, make_batch
from egma.config import get_preset
from egma.datasets.study import Study
from egma.model import build_tokenizer

CFG = get_preset("ci").model
AUG = PhotometricAugment()


def _gradient_image(tmp_path: Path, name: str, height=60, width=30) -> Study:
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = (40 + 150 * (yy / height) + 50 * (xx / width)).astype(np.uint8)
    path = tmp_path / f"{name}.png"
    Image.fromarray(pixels).save(path)
    return Study(name, "1", f"d{name}", path, (height, width), ["Lungs are clear."])


def test_same_key_same_draw_other_key_other_draw():
    pixels = np.random.default_rng(0).random((32, 32), dtype=np.float32)
    once = AUG(pixels, AUG.generator(3, 1, "s1"))
    assert np.array_equal(once, AUG(pixels, AUG.generator(3, 1, "s1")))
    for other in (AUG.generator(3, 2, "s1"), AUG.generator(4, 1, "s1"), AUG.generator(3, 1, "s2")):
        assert not np.allclose(once, AUG(pixels, other))


def test_output_stays_in_range_and_keeps_the_picture():
    yy, xx = np.mgrid[0:64, 0:64]
    pixels = ((np.sin(xx / 5) + np.cos(yy / 7)) / 4 + 0.5).astype(np.float32)
    for k in range(20):
        out = AUG(pixels, AUG.generator(0, k, "s"))
        assert out.shape == pixels.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert not np.allclose(out, pixels)
        # photometric only: every structure stays where it was
        assert np.corrcoef(out.ravel(), pixels.ravel())[0, 1] > 0.9


def test_padding_is_not_augmented(tmp_path):
    study = _gradient_image(tmp_path, "p", height=60, width=30)  # portrait: 15 padded columns each side
    image = load_model_image(study.image_path, 60, AUG, AUG.generator(0, 0, "p"))
    plain = load_model_image(study.image_path, 60)
    pad = torch.tensor(-IMAGE_MEAN / IMAGE_STD)
    assert torch.allclose(image[:, :, :15], pad) and torch.allclose(image[:, :, 45:], pad)
    assert not torch.allclose(image[:, :, 15:45], plain[:, :, 15:45])


def test_a_study_gets_the_same_image_whatever_batch_builds_it(tmp_path):
    """What keeps 1-process and n-process runs, and a resumed run, identical."""
    tokenizer = build_tokenizer(CFG)
    a, b, c = (_gradient_image(tmp_path, n) for n in "abc")
    together = make_batch([a, b, c], tokenizer, CFG, augment=AUG, seed=5, epoch=2)
    alone = make_batch([b], tokenizer, CFG, augment=AUG, seed=5, epoch=2)
    assert torch.equal(together.images[1], alone.images[0])
    next_epoch = make_batch([b], tokenizer, CFG, augment=AUG, seed=5, epoch=3)
    assert not torch.equal(alone.images[0], next_epoch.images[0])
