"""The pretraining data pipeline: which studies train, which keep their gaze, and how batches are made.

- `training_studies`: the "train" split (never validate or test), slimmed to what a batch needs so that
  data-loader workers do not carry the raw gaze samples.
- `gaze_subset`: the seeded share of the training studies with gaze that keep it (DESIGN: gaze fraction);
  `GazeSubset` is the cache seen through that subset, so every other study trains without gaze terms.
- `EpochBatches`: the global batch order of an epoch is a seeded permutation (seed, epoch), cut into global
  batches of `batch_size`; process r takes the r-th equal slice of each. The order does not depend on the
  number of processes, and an epoch can start at any batch: that is what makes resume exact.
- `BatchCollate` turns a list of studies into a `StudyBatch` (images read in the loader's workers).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import PreTrainedTokenizerBase

from egma.augment import PhotometricAugment
from egma.batch import StudyBatch, make_batch
from egma.config import ModelConfig
from egma.datasets.study import Study
from egma.gaze.cache import GazeCache


def training_studies(studies: Sequence[Study], cache: GazeCache | None = None) -> list[Study]:
    """The train-split studies that have something to train with (report or gaze sentences), without readings."""
    usable = [s for s in studies if s.split == "train"
              and (s.report_sentences or (cache is not None and s.study_id in cache))]
    return [replace(s, readings=[], masks={}, boxes={}) for s in usable]


def gaze_subset(studies: Sequence[Study], cache: GazeCache, fraction: float, seed: int) -> list[str]:
    """Sorted ids of round(fraction x n) studies drawn (seeded) from the n of `studies` that the cache has."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"gaze_fraction must be in [0, 1], got {fraction}")
    with_gaze = sorted(s.study_id for s in studies if s.study_id in cache)
    n_keep = int(round(fraction * len(with_gaze)))
    picked = np.random.default_rng(seed).choice(len(with_gaze), size=n_keep, replace=False)
    return sorted(with_gaze[i] for i in picked)


class GazeSubset:
    """A GazeCache restricted to some study ids: the others look as if they had no gaze."""

    def __init__(self, cache: GazeCache, study_ids: Sequence[str]):
        self.cache, self.keep = cache, frozenset(study_ids)
        self.path, self.grid = cache.path, cache.grid

    def __contains__(self, study_id: str) -> bool:
        return study_id in self.keep and study_id in self.cache

    def study_sentences(self, study_id: str) -> list[str]:
        return self.cache.study_sentences(study_id)

    def batch(self, study_ids: list[str], max_sentences: int | None = None):
        gs, gl, mask, has_gaze = self.cache.batch(study_ids, max_sentences)
        dropped = torch.tensor([sid not in self for sid in study_ids], dtype=torch.bool)
        gs[dropped], gl[dropped], mask[dropped] = 0, False, False
        return gs, gl, mask, has_gaze & ~dropped


class StudyDataset(Dataset):
    """Index -> Study; the collate does the work, so one batch's images are read together in one worker."""

    def __init__(self, studies: Sequence[Study]):
        self.studies = list(studies)

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> Study:
        return self.studies[index]


class BatchCollate:
    """list[Study] -> StudyBatch (picklable, for loader workers); `augment` draws are seeded by (seed, epoch)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, cfg: ModelConfig, cache: GazeSubset | GazeCache | None,
                 augment: PhotometricAugment | None = None, seed: int = 0, epoch: int = 0):
        self.tokenizer, self.cfg, self.cache = tokenizer, cfg, cache
        self.augment, self.seed, self.epoch = augment, seed, epoch

    def __call__(self, studies: list[Study]) -> StudyBatch:
        return make_batch(studies, self.tokenizer, self.cfg, self.cache, self.augment, self.seed, self.epoch)


class EpochBatches(Sampler[list[int]]):
    """This process's share of each global batch of one epoch, from global batch `start` on (see module doc)."""

    def __init__(self, n_items: int, batch_size: int, seed: int, epoch: int, n_batches: int, start: int = 0,
                 rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"the global batch_size {batch_size} must be a multiple of the {world} processes")
        if n_batches * batch_size > n_items:
            raise ValueError(f"{n_batches} batches of {batch_size} need {n_batches * batch_size} items, have {n_items}")
        self.order = np.random.default_rng([seed, epoch]).permutation(n_items)
        self.batch_size, self.n_batches, self.start, self.rank, self.world = batch_size, n_batches, start, rank, world

    def __len__(self) -> int:
        return self.n_batches - self.start

    def __iter__(self) -> Iterator[list[int]]:
        share = self.batch_size // self.world
        for b in range(self.start, self.n_batches):
            first = b * self.batch_size + self.rank * share
            yield self.order[first:first + share].tolist()


def batches_per_epoch(n_items: int, batch_size: int, grad_accum: int) -> int:
    """Full global batches per epoch, cut to a whole number of optimiser steps (the remainder is dropped)."""
    n = (n_items // batch_size) // grad_accum * grad_accum
    if n == 0:
        raise ValueError(f"{n_items} training studies are fewer than one optimiser step needs "
                         f"(batch_size {batch_size} x grad_accum {grad_accum})")
    return n


def make_loader(dataset: StudyDataset, sampler: EpochBatches, collate: BatchCollate, workers: int) -> DataLoader:
    # Its own generator: a loader draws its workers' base seed, which must not advance the global torch RNG
    # (dropout) -- a resumed run creates one more loader than an uninterrupted one.
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                      prefetch_factor=4 if workers > 0 else None, generator=torch.Generator())
