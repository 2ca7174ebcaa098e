"""Percentile bootstrap confidence intervals and the trivial baselines every headline number sits beside.

A bootstrap resample draws the n test items with replacement; the metric is recomputed on each of
`n_resamples` resamples and the interval is the (1-level)/2 and (1+level)/2 percentiles of those
values (resamples where the metric is undefined, e.g. an AUROC without positives, are dropped).
The metric functions of `egma.evaluation.metrics` take any leading axes, so all resamples go
through one call (in chunks, to bound memory).

Baselines:
- majority class: every item gets the most frequent class of the evaluated set (ties: the lowest
  index) as a constant score vector; its CI is the bootstrap over items, like the model's.
- uniform random: `n_draws` seeded draws of i.i.d. uniform scores; the value is the mean over draws
  (the expected score of a random guesser on this very test set) and the interval the percentiles
  of the draws. With constant scores Precision@K (ties="expected") and AUROC give exactly chance.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CHUNK_ELEMENTS = 4_000_000    # resampled array elements per metric call (bounds memory, rankdata copies)


@dataclass(frozen=True)
class Estimate:
    """A point value with its 95 % (or `level`) interval."""
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central `level` interval of the finite samples (NaN, NaN when none is finite)."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def resample_indices(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n) item indices drawn with replacement."""
    if n < 1:
        raise ValueError("cannot bootstrap an empty set of items")
    return rng.integers(0, n, size=(n_resamples, n))


def bootstrap_samples(metric: Callable[..., np.ndarray], arrays: tuple, indices: np.ndarray) -> np.ndarray:
    """metric(*resampled arrays) for every row of `indices`; arrays are indexed on their first axis (the items)."""
    per_row = max(1, sum(int(np.prod(np.shape(a)[1:], dtype=np.int64)) for a in arrays) * indices.shape[1])
    chunk = max(1, CHUNK_ELEMENTS // per_row)
    arrays = tuple(np.asarray(a) for a in arrays)
    return np.concatenate([np.asarray(metric(*(a[indices[i:i + chunk]] for a in arrays)), dtype=float)
                           for i in range(0, len(indices), chunk)])


def bootstrap_ci(metric: Callable[..., np.ndarray], *arrays, rng: np.random.Generator, n_resamples: int = 1000,
                 level: float = 0.95) -> Estimate:
    """Point value of metric(*arrays) and its percentile bootstrap interval over the items.

    `metric` must accept the arrays with an extra leading resample axis (the functions of
    egma.evaluation.metrics do); every array has the items on its first axis.
    """
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays disagree on the number of items: {[len(a) for a in arrays]}")
    samples = bootstrap_samples(metric, arrays, resample_indices(n, n_resamples, rng))
    return Estimate(float(metric(*arrays)), *percentile_interval(samples, level))


def majority_class(y_true, n_classes: int) -> int:
    return int(np.argmax(np.bincount(np.asarray(y_true), minlength=n_classes)))


def majority_scores(y_true, n_classes: int) -> np.ndarray:
    """(n, C) one-hot scores of the majority class for every item."""
    scores = np.zeros((len(y_true), n_classes))
    scores[:, majority_class(y_true, n_classes)] = 1.0
    return scores


def random_baseline(metric: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...], rng: np.random.Generator,
                    n_draws: int = 1000, level: float = 0.95) -> Estimate:
    """Expected value and spread of metric(uniform random scores of `shape`), vectorised over draws."""
    per_draw = max(1, int(np.prod(shape, dtype=np.int64)))
    chunk = max(1, CHUNK_ELEMENTS // per_draw)
    values = np.concatenate([np.asarray(metric(rng.random((min(chunk, n_draws - i),) + tuple(shape))), dtype=float)
                             for i in range(0, n_draws, chunk)])
    return Estimate(float(np.nanmean(values)), *percentile_interval(values, level))


def estimate_record(estimate: Estimate, **keys) -> dict:
    """One tidy-table row: the identifying keys, then value, ci_low, ci_high."""
    return {**keys, "value": estimate.value, "ci_low": estimate.low, "ci_high": estimate.high}
