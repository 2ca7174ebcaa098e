"""Fixations -> duration-weighted Gaussian heatmaps in the model's frame, per sentence and per reading.

Each fixation adds a 2-D Gaussian of standard deviation `sigma_deg` degrees of visual angle
(sigma_deg x px_per_deg original pixels), cut at `gaussian_truncate` sigmas, weighted by the time
the fixation spends inside the sentence's gaze window (the whole duration for the reading map).
Maps are rendered straight into the model frame (centred pad-to-square + resize, see
geometry.py) as exact separable outer products evaluated at model-pixel centres; the padding
carries no gaze. Every map is normalised to sum 1 (a distribution of attention).

Fallbacks, flagged in the results and announced by one GazeFallbackWarning per reading/study:
- a sentence with no fixation time in its window gets its reading's whole map;
- a report sentence that no reading dictated gets the mean of the readings' whole maps.
Several readers of one image: each reader's map is normalised on its own and the study map is
their mean over the readers who dictated that sentence, so each radiologist counts equally
however long they looked.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from egma.config import GazeConfig
from egma.datasets.study import FixationTable, Reading, Study
from egma.gaze.fixations import reading_fixations
from egma.gaze.geometry import image_extent_in_model, square_frame
from egma.gaze.sentences import SpokenSentence, sentence_key, sentence_windows, spoken_sentences


class GazeFallbackWarning(UserWarning):
    """A sentence had no gaze of its own and got a whole-reading map instead."""


def window_weights(fixations: FixationTable, windows: np.ndarray) -> np.ndarray:
    """(m, F) seconds of fixation f inside window s."""
    lo = np.maximum(windows[:, :1], fixations.t_start[None, :])
    hi = np.minimum(windows[:, 1:], fixations.t_end[None, :])
    return np.clip(hi - lo, 0.0, None)


def _gaussian_profiles(centres_model: np.ndarray, sigma_model: float, truncate: float,
                       extent: np.ndarray) -> np.ndarray:
    """(F, size) 1-D Gaussians at model-pixel centres, zero beyond `truncate` sigmas and on padding."""
    grid = np.arange(len(extent)) + 0.5
    d = (grid[None, :] - centres_model[:, None]) / sigma_model
    return np.where(np.abs(d) <= truncate, np.exp(-0.5 * d * d), 0.0) * extent[None, :]


def render_heatmaps(fixations: FixationTable, weights: np.ndarray, image_size: tuple[int, int], size: int,
                    sigma_px: tuple[float, float], truncate: float) -> np.ndarray:
    """(m, size, size) maps for m weight rows over the F fixations; rows with no mass are all zero."""
    side, top, left = square_frame(image_size)
    scale = size / side
    rows, cols = image_extent_in_model(image_size, size)
    gx = _gaussian_profiles((fixations.x + left) * scale, sigma_px[0] * scale, truncate, cols)
    gy = _gaussian_profiles((fixations.y + top) * scale, sigma_px[1] * scale, truncate, rows)
    weights = np.atleast_2d(weights)
    # One GEMM: (m * size, F) @ (F, size), i.e. sum_f w[s, f] gy[f, i] gx[f, j].
    stacked = (weights[:, None, :] * gy.T[None, :, :]).reshape(-1, len(gx))
    maps = (stacked @ gx).reshape(len(weights), size, size)
    total = maps.sum(axis=(1, 2), keepdims=True)
    return np.divide(maps, total, out=np.zeros_like(maps), where=total > 0)


@dataclass
class ReadingHeatmaps:
    sentences: list[SpokenSentence]
    windows: np.ndarray        # (m, 2) seconds
    maps: np.ndarray           # (m, size, size), each sums to 1 (0 if the reading has no gaze at all)
    whole: np.ndarray          # (size, size) every fixation, duration-weighted
    fallback: np.ndarray       # (m,) bool: sentence had no fixation in its window
    fixations: FixationTable


def reading_heatmaps(reading: Reading, image_size: tuple[int, int], cfg: GazeConfig, size: int,
                     fixations: FixationTable | None = None) -> ReadingHeatmaps:
    """Sentence and whole-reading maps of one reading (fixations detected per cfg unless given)."""
    sentences = spoken_sentences(reading.transcript, reading.reading_id)
    windows = sentence_windows(sentences, cfg.eye_voice_lead_s)
    if fixations is None:
        fixations = reading_fixations(reading, cfg, image_size)
    ppd = reading.samples.px_per_deg if reading.samples is not None else None
    ppd = ppd if ppd is not None else (cfg.default_px_per_deg,) * 2
    sigma = (cfg.sigma_deg * ppd[0], cfg.sigma_deg * ppd[1])
    weights = np.vstack([window_weights(fixations, windows), fixations.duration[None, :]])
    maps = render_heatmaps(fixations, weights, image_size, size, sigma, cfg.gaussian_truncate)
    fallback = weights[:-1].sum(axis=1) <= 0
    maps[:-1][fallback] = maps[-1]
    if fallback.any():
        warnings.warn(f"{reading.reading_id}: sentences {np.flatnonzero(fallback).tolist()} have no fixation "
                      "in their gaze window; using the whole reading's map", GazeFallbackWarning, stacklevel=2)
    return ReadingHeatmaps(sentences, windows, maps[:-1], maps[-1], fallback, fixations)


@dataclass
class StudyHeatmaps:
    study_id: str
    sentences: list[str]       # the study's report sentences, in order
    maps: np.ndarray           # (m, size, size), each sums to 1
    fallback: np.ndarray       # (m,) bool: no reader had gaze in this sentence's window
    n_readers: np.ndarray      # (m,) readers whose dictation contained the sentence


def combine_readings(report_sentences: list[str], readings: list[ReadingHeatmaps],
                     study_id: str = "<study>") -> StudyHeatmaps:
    """Study maps for the report's sentences from one or more readings (rule in the module docstring).

    Report and dictated sentences are matched by `sentence_key`; a text repeated in one report is
    matched occurrence by occurrence.
    """
    size = readings[0].whole.shape[-1]
    total = np.zeros((len(report_sentences), size, size))
    count = np.zeros(len(report_sentences), int)
    with_gaze = np.zeros(len(report_sentences), bool)
    for rh in readings:
        spoken = defaultdict(list)
        for i, s in enumerate(rh.sentences):
            spoken[sentence_key(s.text)].append(i)
        for j, text in enumerate(report_sentences):
            matches = spoken.get(sentence_key(text))
            if matches:
                i = matches.pop(0)
                total[j] += rh.maps[i]
                count[j] += 1
                with_gaze[j] |= not rh.fallback[i]
    whole = np.mean([rh.whole for rh in readings], axis=0)
    unmatched = count == 0
    total[unmatched] = whole
    maps = total / np.maximum(count, 1)[:, None, None]
    fallback = ~with_gaze
    if unmatched.any():
        warnings.warn(f"{study_id}: report sentences {np.flatnonzero(unmatched).tolist()} were not found in any "
                      "dictation; using the readings' whole maps", GazeFallbackWarning, stacklevel=2)
    return StudyHeatmaps(study_id, list(report_sentences), maps, fallback, count)


def study_reading_heatmaps(study: Study, cfg: GazeConfig, size: int
                           ) -> tuple[list[str], list[ReadingHeatmaps]] | None:
    """The study's sentences and each reading's heatmaps (None without gaze). A study without report
    sentences uses its first reading's dictated sentences."""
    readings = [r for r in study.readings if r.samples is not None or r.fixations is not None]
    if not readings:
        return None
    per_reading = [reading_heatmaps(r, study.image_size, cfg, size) for r in readings]
    return list(study.report_sentences) or [s.text for s in per_reading[0].sentences], per_reading


def study_heatmaps(study: Study, cfg: GazeConfig, size: int) -> StudyHeatmaps | None:
    """Per-sentence maps of a study with gaze (None without): every reading, combined over readers."""
    found = study_reading_heatmaps(study, cfg, size)
    return None if found is None else combine_readings(*found, study.study_id)
