"""Comparing two models on the same test items, and the tables the evaluation chapters show.

Two models scored on the same items are compared by a **paired** bootstrap: each resample draws the
items once and scores both models on them, so the interval is that of the difference itself (two
separate intervals that overlap can still hide a clear difference, and the pairing removes the
shared item-to-item variation). A difference is called "better" or "worse" when its 95 % interval
excludes 0, else "no clear difference".

Tables are tidy (one row per estimate: keys, value, ci_low, ci_high, as egma.evaluation.bootstrap
writes them); `estimate_pivot` turns one into the "value [low, high]" grid a reader scans.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from egma.evaluation.bootstrap import (Estimate, bootstrap_ci, bootstrap_samples, estimate_record,
                                       percentile_interval, resample_indices)
from egma.evaluation.linear_probe import fit_predict, label_subset, macro_label_auroc
from egma.evaluation.metrics import SCORE_METRICS, precision_at_k, relevance
from egma.evaluation.retrieval import DIRECTIONS

BASELINES = ("majority", "random")
TOLERANCE = 1e-12   # two equal scores computed along different paths may differ in the last bits


def verdict(estimate: Estimate) -> str:
    """"better" / "worse" when the interval of a difference (first minus second) excludes 0."""
    if estimate.low > TOLERANCE:
        return "better"
    if estimate.high < -TOLERANCE:
        return "worse"
    return "no clear difference"


def paired_difference(metric: Callable[..., np.ndarray], y_true, scores_a, scores_b, rng: np.random.Generator,
                      n_resamples: int = 1000, level: float = 0.95) -> Estimate:
    """metric(y, a) - metric(y, b) with a paired percentile bootstrap interval over the items.

    `metric(y, scores)` must accept an extra leading resample axis (egma.evaluation.metrics functions do);
    every array has the items on its first axis.
    """
    y_true, scores_a, scores_b = np.asarray(y_true), np.asarray(scores_a), np.asarray(scores_b)
    if not len(y_true) == len(scores_a) == len(scores_b):
        raise ValueError(f"items disagree: {len(y_true)} labels, {len(scores_a)} and {len(scores_b)} score rows")

    def difference(y, a, b):
        return np.asarray(metric(y, a), dtype=float) - np.asarray(metric(y, b), dtype=float)

    samples = bootstrap_samples(difference, (y_true, scores_a, scores_b),
                                resample_indices(len(y_true), n_resamples, rng))
    return Estimate(float(difference(y_true, scores_a, scores_b)), *percentile_interval(samples, level))


def _difference_record(estimate: Estimate, **keys) -> dict:
    return {**estimate_record(estimate, **keys), "verdict": verdict(estimate)}


def zero_shot_differences(y_true, scores_a, scores_b, rng: np.random.Generator,
                          n_resamples: int = 1000) -> pd.DataFrame:
    """Paired differences (a - b) of every SCORE_METRICS metric of two (N, C) class-score arrays.

    Columns: metric, value, ci_low, ci_high, verdict.
    """
    return pd.DataFrame([_difference_record(paired_difference(metric, y_true, scores_a, scores_b, rng, n_resamples),
                                            metric=name) for name, metric in SCORE_METRICS.items()])


def retrieval_differences(similarity_a, similarity_b, image_class, query_class, ks: Sequence[int] = (1, 5, 10),
                          rng: np.random.Generator | None = None, n_resamples: int = 1000,
                          ties: str = "expected") -> pd.DataFrame:
    """Paired differences (a - b) of Precision@K, both directions, of two (images x queries) similarities.

    The items are those the precision is averaged over: images (image->text) or queries (text->image).
    Columns: direction, k, value, ci_low, ci_high, verdict.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    similarity_a, similarity_b = np.asarray(similarity_a, dtype=float), np.asarray(similarity_b, dtype=float)
    if similarity_a.shape != similarity_b.shape:
        raise ValueError(f"similarities differ in shape: {similarity_a.shape} and {similarity_b.shape}")
    rows = []
    for direction in DIRECTIONS:
        transpose = direction == "text_to_image"
        a, b = (similarity_a.T, similarity_b.T) if transpose else (similarity_a, similarity_b)
        relevant = relevance(query_class, image_class) if transpose else relevance(image_class, query_class)
        for k in ks:
            per_item = precision_at_k(a, relevant, k, ties) - precision_at_k(b, relevant, k, ties)
            estimate = bootstrap_ci(lambda d: np.mean(d, axis=-1), per_item, rng=rng, n_resamples=n_resamples)
            rows.append(_difference_record(estimate, direction=direction, k=k))
    return pd.DataFrame(rows)


def probe_seed_scores(train_x, train_y, test_x, multiclass: bool, fraction: float, seeds: Sequence[int],
                      C: float = 1.0) -> np.ndarray:
    """(n_test, seeds, C) test scores of the linear probes of egma.evaluation.linear_probe, one per seed
    (the same seeded label subsets, hence the same fits, as `linear_probe`)."""
    train_x, test_x, train_y = (np.asarray(a, dtype=float) for a in (train_x, test_x, train_y))
    return np.stack([fit_predict(train_x[subset], train_y[subset], test_x, multiclass, C)
                     for subset in (label_subset(train_y, fraction, np.random.default_rng(s)) for s in seeds)], axis=1)


def seed_mean_auroc(test_y, seed_scores) -> np.ndarray:
    """Macro AUROC averaged over seeds: test_y (..., n, C), seed_scores (..., n, seeds, C) -> (...)."""
    test_y, seed_scores = np.asarray(test_y), np.asarray(seed_scores)
    return macro_label_auroc(test_y[..., None, :, :], np.moveaxis(seed_scores, -2, -3)).mean(axis=-1)


def probe_differences(features_a: tuple[np.ndarray, np.ndarray], features_b: tuple[np.ndarray, np.ndarray],
                      train_y, test_y, multiclass: bool, fractions: Sequence[float] = (0.01, 0.1, 1.0),
                      seeds: Sequence[int] = (0, 1, 2), C: float = 1.0, n_resamples: int = 1000,
                      bootstrap_seed: int = 0) -> pd.DataFrame:
    """Paired difference (a - b) of the seed-averaged probe AUROC of two feature sets (train_x, test_x).

    Both models are probed on the same label subsets and scored on the same resampled test items.
    Columns: fraction, value, ci_low, ci_high, verdict.
    """
    rng = np.random.default_rng(bootstrap_seed)
    rows = []
    for fraction in fractions:
        scores_a, scores_b = (probe_seed_scores(train_x, train_y, test_x, multiclass, fraction, seeds, C)
                              for train_x, test_x in (features_a, features_b))
        estimate = paired_difference(seed_mean_auroc, test_y, scores_a, scores_b, rng, n_resamples)
        rows.append(_difference_record(estimate, fraction=fraction))
    return pd.DataFrame(rows)


def with_baselines(tables: Mapping[str, pd.DataFrame], predictor: str = "predictor", model: str = "model",
                   baselines: Sequence[str] = BASELINES) -> pd.DataFrame:
    """One tidy table of several models' evaluations of the same items.

    Each table's `model` rows are renamed to its key; the baseline rows (which depend only on the
    items) are kept once, from the first table.
    """
    if not tables:
        raise ValueError("no tables to combine")
    parts = [table[table[predictor] == model].assign(**{predictor: name}) for name, table in tables.items()]
    first = next(iter(tables.values()))
    parts.append(first[first[predictor].isin(baselines)])
    return pd.concat(parts, ignore_index=True)


def estimate_text(value: float, low: float, high: float, scale: float = 100.0, digits: int = 1) -> str:
    """"61.3 [55.0, 67.2]" (scale 100: fractions shown as percentages); "n/a" for an undefined value."""
    if not np.isfinite(value):
        return "n/a"
    interval = f" [{low * scale:.{digits}f}, {high * scale:.{digits}f}]" if np.isfinite(low) else ""
    return f"{value * scale:.{digits}f}{interval}"


def estimate_pivot(table: pd.DataFrame, index: str | list[str], columns: str | list[str], scale: float = 100.0,
                   digits: int = 1, note: str | None = None) -> pd.DataFrame:
    """A grid of "value [low, high]" strings from a tidy table, rows and columns in first-seen order;
    `note` names a column whose text is appended to each cell (e.g. "verdict")."""
    texts = [estimate_text(v, lo, hi, scale, digits) for v, lo, hi in
             zip(table["value"], table["ci_low"], table["ci_high"])]
    if note is not None:
        texts = [f"{text} {extra}" for text, extra in zip(texts, table[note])]
    cells = table.assign(cell=texts)
    grid = cells.pivot(index=index, columns=columns, values="cell")
    row_keys = cells[index].drop_duplicates()
    column_keys = cells[columns].drop_duplicates()
    as_keys = (lambda frame: pd.MultiIndex.from_frame(frame) if isinstance(frame, pd.DataFrame) else pd.Index(frame))
    return grid.reindex(index=as_keys(row_keys), columns=as_keys(column_keys))
