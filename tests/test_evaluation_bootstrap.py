"""egma.evaluation.bootstrap: intervals contain the estimate, shrink with n, are seeded; baselines hit chance."""
import numpy as np
import pytest

from egma.evaluation import bootstrap as b
from egma.evaluation.metrics import SCORE_METRICS, accuracy


def _mean(values):
    return np.asarray(values).mean(axis=-1)


def test_interval_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 500, 5000):
        values = rng.random(n) < 0.7
        est = b.bootstrap_ci(_mean, values, rng=np.random.default_rng(1))
        assert est.low <= est.value <= est.high
        assert est.value == pytest.approx(values.mean())
        widths.append(est.high - est.low)
    assert widths[0] > widths[1] > widths[2]
    # the binomial standard error sets the width: about 2 * 1.96 * sqrt(p (1 - p) / n)
    assert widths[2] == pytest.approx(2 * 1.96 * np.sqrt(0.21 / 5000), rel=0.15)


def test_bootstrap_is_seeded_and_vectorised_metrics_agree_with_a_loop():
    rng = np.random.default_rng(0)
    y, scores = rng.integers(0, 3, 80), rng.random((80, 3))
    metric = SCORE_METRICS["macro_f1"]
    first = b.bootstrap_ci(metric, y, scores, rng=np.random.default_rng(5), n_resamples=200)
    assert first == b.bootstrap_ci(metric, y, scores, rng=np.random.default_rng(5), n_resamples=200)
    idx = b.resample_indices(80, 200, np.random.default_rng(5))
    looped = np.array([metric(y[i], scores[i]) for i in idx])
    assert np.allclose(b.bootstrap_samples(metric, (y, scores), idx), looped)
    assert (first.low, first.high) == pytest.approx(tuple(np.percentile(looped, [2.5, 97.5])))


def test_chunking_does_not_change_the_samples(monkeypatch):
    rng = np.random.default_rng(0)
    y, scores = rng.integers(0, 3, 40), rng.random((40, 3))
    idx = b.resample_indices(40, 50, rng)
    whole = b.bootstrap_samples(SCORE_METRICS["auroc"], (y, scores), idx)
    monkeypatch.setattr(b, "CHUNK_ELEMENTS", 7 * 40 * 4)   # 7 resamples per call
    assert np.allclose(b.bootstrap_samples(SCORE_METRICS["auroc"], (y, scores), idx), whole)


def test_undefined_resamples_are_dropped_from_the_interval():
    samples = np.array([0.5, np.nan, 0.7, 0.6])
    assert b.percentile_interval(samples, 1.0) == (0.5, 0.7)
    assert all(np.isnan(b.percentile_interval(np.array([np.nan]))))


def test_majority_baseline_predicts_the_most_frequent_class():
    y = np.array([2, 2, 1, 0, 2, 1])
    assert b.majority_class(y, 3) == 2
    scores = b.majority_scores(y, 3)
    assert accuracy(y, scores.argmax(axis=1)) == pytest.approx(3 / 6)
    assert b.majority_class(np.array([1, 0]), 2) == 0    # ties: lowest index


def test_random_baseline_expectation_is_chance():
    y = np.repeat(np.arange(4), 50)
    est = b.random_baseline(lambda s: SCORE_METRICS["accuracy"](y, s), (200, 4), np.random.default_rng(0), 2000)
    assert est.value == pytest.approx(0.25, abs=0.005)
    assert est.low < 0.25 < est.high
    auroc = b.random_baseline(lambda s: SCORE_METRICS["auroc"](y, s), (200, 4), np.random.default_rng(0), 500)
    assert auroc.value == pytest.approx(0.5, abs=0.01)


def test_mismatched_items_are_rejected():
    with pytest.raises(ValueError, match="number of items"):
        b.bootstrap_ci(accuracy, np.zeros(3), np.zeros(4), rng=np.random.default_rng(0))
