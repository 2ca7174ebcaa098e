"""A model batch of studies: images in the model frame, tokenised report sentences and aligned gaze labels.

Images are read as greyscale, padded to a centred square and resized by `to_model_frame` (the same
geometry as the gaze heatmaps, so patch i of the image is patch i of GS), normalised with the
MIMIC-CXR pixel statistics and repeated to three channels. A study with gaze takes its sentences
from the gaze cache, so that row j of its GS belongs to sentence j; a study without gaze takes its
report sentences and an all-zero GS with has_gaze False.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from egma.augment import PhotometricAugment
from egma.config import ModelConfig
from egma.datasets.study import CHEXPERT_LABELS, Study
from egma.gaze.cache import GazeCache
from egma.gaze.geometry import to_model_frame
from egma.model import tokenize_reports

# Pixel mean and standard deviation (intensities in [0, 1]) of MIMIC-CXR images, as MedCLIP normalises them.
IMAGE_MEAN = 0.5862785803043838
IMAGE_STD = 0.27950088968644304


def load_model_image(path: str | Path, size: int, augment: PhotometricAugment | None = None,
                     rng: np.random.Generator | None = None) -> torch.Tensor:
    """An image file as the model sees it: (3, size, size) float32, normalised; padding is black (0) before.
    With `augment`, the image (not its padding) is augmented with draws from `rng` first."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if augment is not None:
        pixels = augment(pixels, rng)
    framed = torch.as_tensor(to_model_frame(pixels, size, value=0.0))
    return ((framed - IMAGE_MEAN) / IMAGE_STD).expand(3, size, size).contiguous()


@dataclass
class StudyBatch:
    """Everything one training step needs for b studies."""
    study_ids: list[str]
    sentences: list[list[str]]     # per study, in the order of its GS rows
    images: torch.Tensor           # (b, 3, size, size)
    input_ids: torch.Tensor        # (N, T), N = all sentences of the batch
    attention_mask: torch.Tensor   # (N, T)
    sentence_study: torch.Tensor   # (N,) study index of each sentence
    gaze: torch.Tensor             # GS (b, m_max, grid*grid), zero rows at padding and without gaze
    has_gaze: torch.Tensor         # (b,) bool
    labels: torch.Tensor           # (b, 14) 1.0 where the study is positive for a CHEXPERT_LABELS finding

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of EGMAModel.forward."""
        return {"images": self.images, "input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "sentence_study": self.sentence_study}


def study_sentences(study: Study, cache: GazeCache | None) -> list[str]:
    """The sentences a study is trained with: the cache's (aligned with GS) when it has gaze, else its report's."""
    if cache is not None and study.study_id in cache:
        return list(cache.study_sentences(study.study_id))
    return list(study.report_sentences)


def make_batch(studies: Sequence[Study], tokenizer: PreTrainedTokenizerBase, cfg: ModelConfig,
               cache: GazeCache | None = None, augment: PhotometricAugment | None = None,
               seed: int = 0, epoch: int = 0) -> StudyBatch:
    """The model batch of `studies`; gaze comes from `cache` (None: no study has gaze). With `augment`, each
    image gets its own draw, seeded by (seed, epoch, study id)."""
    sentences = [study_sentences(s, cache) for s in studies]
    empty = [s.study_id for s, sents in zip(studies, sentences) if not sents]
    if empty:
        raise ValueError(f"studies {empty} have no report sentences (and no gaze sentences); "
                         "every study in a batch needs at least one")
    ids = [s.study_id for s in studies]
    m_max = max(len(sents) for sents in sentences)
    if cache is not None:
        if cache.grid != cfg.grid:
            raise ValueError(f"gaze cache {cache.path} has a {cache.grid}x{cache.grid} grid, "
                             f"the model {cfg.grid}x{cfg.grid}")
        gaze, _, _, has_gaze = cache.batch(ids, max_sentences=m_max)
    else:
        gaze, has_gaze = torch.zeros(len(ids), m_max, cfg.grid * cfg.grid), torch.zeros(len(ids), dtype=torch.bool)
    tokens = tokenize_reports(tokenizer, sentences, cfg.max_tokens)
    images = torch.stack([load_model_image(s.image_path, cfg.image_size, augment,
                                           augment and augment.generator(seed, epoch, s.study_id))
                          for s in studies])
    labels = torch.tensor([[float(s.labels.get(name) == 1) for name in CHEXPERT_LABELS] for s in studies])
    return StudyBatch(ids, sentences, images, tokens["input_ids"], tokens["attention_mask"],
                      tokens["sentence_study"], gaze, has_gaze, labels)
