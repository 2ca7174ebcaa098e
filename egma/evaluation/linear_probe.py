"""Linear probe on frozen image features with a fraction of the training labels (1 %, 10 %, 100 %).

For each fraction and seed a training subset is drawn that holds at least one positive and one
negative of every class the full training set has both of (then filled uniformly at random up to
ceil(fraction * N)); features are standardised on that subset and a logistic regression is fitted
(scikit-learn, lbfgs): one binary model per label for a multi-label set (CheXpert), one
multinomial model for a multi-class set. The score is the macro AUROC on the test split over the
labels that have positives and negatives there.

The summary gives, per fraction, the mean over seeds, their standard deviation and a 95 %
percentile bootstrap interval over test items of the seed-averaged AUROC (the same resampled
test items for every seed), i.e. the uncertainty of the test set, with the seed spread beside it.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from egma.datasets.downstream import DownstreamSet
from egma.evaluation.bootstrap import bootstrap_samples, percentile_interval, resample_indices
from egma.evaluation.encoding import encode_image_files
from egma.evaluation.metrics import binary_auroc, nan_mean
from egma.model import EGMAModel


def probe_labels(dataset: DownstreamSet, uncertain: float = 0.0) -> np.ndarray:
    """(N, C) 0/1 labels: one-hot for a multi-class set; else blank -> 0 and CheXpert's uncertain -1 ->
    `uncertain` (0: the "U-Zeros" policy, 1: "U-Ones")."""
    if dataset.multiclass:
        return np.eye(len(dataset.class_names))[dataset.y]
    labels = np.nan_to_num(dataset.labels, nan=0.0)
    return np.where(labels == -1, uncertain, labels)


def label_subset(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of a training subset of ceil(fraction * N) rows (more if the guarantee needs them)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels, dtype=bool)
    n = len(labels)
    chosen = set()
    for column in labels.T:
        for side in (column, ~column):
            candidates = np.flatnonzero(side)
            if len(candidates) and not side[list(chosen)].any():
                chosen.add(int(rng.choice(candidates)))
    rest = rng.permutation(np.setdiff1d(np.arange(n), list(chosen)))
    fill = max(0, math.ceil(fraction * n) - len(chosen))
    return np.sort(np.concatenate([np.array(sorted(chosen), dtype=np.int64), rest[:fill]]))


def fit_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, multiclass: bool,
                C: float = 1.0, max_iter: int = 2000) -> np.ndarray:
    """(n_test, n_labels) scores: class probabilities (multi-class) or per-label positive probabilities.

    A label constant in the training rows gets NaN scores (no classifier can be fitted for it).
    """
    def model():
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))

    if multiclass:
        classes = np.argmax(train_y, axis=1)
        fitted = model().fit(train_x, classes)
        scores = np.zeros((len(test_x), train_y.shape[1]))
        scores[:, fitted.classes_] = fitted.predict_proba(test_x)
        return scores
    scores = np.full((len(test_x), train_y.shape[1]), np.nan)
    for c, column in enumerate(train_y.T):
        if 0 < column.sum() < len(column):
            scores[:, c] = model().fit(train_x, column).predict_proba(test_x)[:, 1]
    return scores


def macro_label_auroc(test_y, scores) -> np.ndarray:
    """Macro AUROC over labels: test_y (..., n, C) 0/1, scores (..., n, C) (NaN scores: label left out)."""
    test_y, scores = np.asarray(test_y, dtype=bool), np.asarray(scores, dtype=float)
    per_label = binary_auroc(np.swapaxes(test_y, -1, -2), np.swapaxes(scores, -1, -2))
    per_label = np.where(np.isnan(scores).any(axis=-2), np.nan, per_label)
    return nan_mean(per_label)


@dataclass
class ProbeResult:
    runs: pd.DataFrame      # fraction, seed, n_train, auroc
    summary: pd.DataFrame   # fraction, mean, std, ci_low, ci_high, n_seeds


def linear_probe(train_x, train_y, test_x, test_y, multiclass: bool, fractions: Sequence[float] = (0.01, 0.1, 1.0),
                 seeds: Sequence[int] = (0, 1, 2), C: float = 1.0, n_resamples: int = 1000,
                 bootstrap_seed: int = 0) -> ProbeResult:
    """Probe frozen features (train_x (N, F), train_y (N, C) 0/1) and score AUROC on (test_x, test_y)."""
    train_x, test_x = np.asarray(train_x, dtype=float), np.asarray(test_x, dtype=float)
    train_y, test_y = np.asarray(train_y, dtype=float), np.asarray(test_y, dtype=float)
    missing = [c for c, col in enumerate(train_y.T) if col.min() == col.max()]
    if missing and not multiclass:
        warnings.warn(f"labels {missing} are constant in the training set and are left out of the AUROC", stacklevel=2)
    indices = resample_indices(len(test_x), n_resamples, np.random.default_rng(bootstrap_seed))
    runs, summary = [], []
    for fraction in fractions:
        seed_scores = []
        for seed in seeds:
            subset = label_subset(train_y, fraction, np.random.default_rng(seed))
            scores = fit_predict(train_x[subset], train_y[subset], test_x, multiclass, C)
            seed_scores.append(scores)
            runs.append({"fraction": fraction, "seed": seed, "n_train": len(subset),
                         "auroc": float(macro_label_auroc(test_y, scores))})
        per_seed = np.array([r["auroc"] for r in runs[-len(seeds):]])
        stacked = np.stack(seed_scores, axis=1)   # (n_test, seeds, C): items first for the bootstrap
        samples = bootstrap_samples(lambda y, s: macro_label_auroc(y[..., None, :, :], np.moveaxis(s, -2, -3))
                                    .mean(axis=-1), (test_y, stacked), indices)
        low, high = percentile_interval(samples)
        summary.append({"fraction": fraction, "mean": per_seed.mean(), "std": per_seed.std(ddof=1) if len(seeds) > 1
                        else 0.0, "ci_low": low, "ci_high": high, "n_seeds": len(seeds)})
    return ProbeResult(pd.DataFrame(runs), pd.DataFrame(summary))


def evaluate_linear_probe(model: EGMAModel, train_set: DownstreamSet, test_set: DownstreamSet,
                          device: torch.device | str, batch_size: int = 64, feature: str = "backbone",
                          fractions: Sequence[float] = (0.01, 0.1, 1.0), seeds: Sequence[int] = (0, 1, 2),
                          C: float = 1.0, uncertain: float = 0.0, n_resamples: int = 1000,
                          progress: bool = False) -> ProbeResult:
    """Encode both splits with the frozen model and probe. feature: "backbone" (pooled image encoder
    output, before the projection) or "global" (the projected, normalised image embedding)."""
    if feature not in ("backbone", "global"):
        raise ValueError(f"feature must be 'backbone' or 'global', got {feature!r}")
    if train_set.class_names != test_set.class_names:
        raise ValueError(f"train classes {train_set.class_names} differ from test classes {test_set.class_names}")

    def features(dataset):
        encoded = encode_image_files(model, dataset.paths, device, batch_size, backbone=feature == "backbone",
                                     progress=progress)
        return (encoded.backbone if feature == "backbone" else encoded.global_emb).numpy()

    return linear_probe(features(train_set), probe_labels(train_set, uncertain), features(test_set),
                        probe_labels(test_set, uncertain), train_set.multiclass, fractions, seeds, C, n_resamples)
