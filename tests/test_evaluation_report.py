"""egma.evaluation.report: paired bootstrap differences against a slow per-resample loop, verdicts,
retrieval and probe differences against the single-model functions, and the table helpers."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from egma.evaluation import report
from egma.evaluation.bootstrap import Estimate, resample_indices
from egma.evaluation.linear_probe import linear_probe
from egma.evaluation.metrics import SCORE_METRICS, accuracy
from egma.evaluation.retrieval import retrieval_table


def _scores(rng, y, n_classes, signal):
    """Class scores whose argmax is right more often the larger `signal` is."""
    scores = rng.random((len(y), n_classes))
    scores[np.arange(len(y)), y] += signal
    return scores


def test_paired_difference_matches_a_slow_loop_over_the_same_resamples():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    a, b = _scores(rng, y, 3, 0.6), _scores(rng, y, 3, 0.2)

    def acc(y_true, s):
        return accuracy(y_true, np.argmax(s, axis=-1))

    estimate = report.paired_difference(acc, y, a, b, np.random.default_rng(5), n_resamples=300)
    indices = resample_indices(60, 300, np.random.default_rng(5))
    slow = [accuracy_score(y[i], a[i].argmax(1)) - accuracy_score(y[i], b[i].argmax(1)) for i in indices]
    assert estimate.value == pytest.approx(accuracy_score(y, a.argmax(1)) - accuracy_score(y, b.argmax(1)))
    assert (estimate.low, estimate.high) == pytest.approx(tuple(np.percentile(slow, [2.5, 97.5])))


def test_verdicts_follow_the_sign_of_the_interval():
    assert report.verdict(Estimate(0.2, 0.05, 0.3)) == "better"
    assert report.verdict(Estimate(-0.2, -0.3, -0.01)) == "worse"
    assert report.verdict(Estimate(0.1, -0.02, 0.2)) == "no clear difference"
    assert report.verdict(Estimate(1e-16, 5e-17, 2e-16)) == "no clear difference"   # rounding, not a difference
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    good, poor = _scores(rng, y, 4, 1.0), _scores(rng, y, 4, 0.0)
    table = report.zero_shot_differences(y, good, poor, np.random.default_rng(0), n_resamples=200).set_index("metric")
    assert list(table.index) == list(SCORE_METRICS)
    assert (table["verdict"] == "better").all()
    assert table.loc["macro_f1", "value"] == pytest.approx(
        f1_score(y, good.argmax(1), average="macro") - f1_score(y, poor.argmax(1), average="macro"))
    swapped = report.zero_shot_differences(y, poor, good, np.random.default_rng(0), n_resamples=200)
    assert (swapped["verdict"] == "worse").all()
    same = report.zero_shot_differences(y, good, good, np.random.default_rng(0), n_resamples=50)
    assert (same[["value", "ci_low", "ci_high"]].to_numpy() == 0).all()
    assert (same["verdict"] == "no clear difference").all()


def test_paired_difference_rejects_mismatched_items():
    with pytest.raises(ValueError, match="items disagree"):
        report.paired_difference(SCORE_METRICS["accuracy"], np.zeros(5, int), np.zeros((5, 2)), np.zeros((4, 2)),
                                 np.random.default_rng(0))


def test_retrieval_differences_equal_the_difference_of_the_single_model_tables():
    rng = np.random.default_rng(2)
    image_class, query_class = np.repeat(np.arange(4), 10), np.repeat(np.arange(4), 3)
    relevant = image_class[:, None] == query_class[None, :]
    a = relevant + rng.normal(0, 0.8, relevant.shape)
    b = rng.normal(0, 1, relevant.shape)
    ks = (1, 3, 5)
    diff = report.retrieval_differences(a, b, image_class, query_class, ks, np.random.default_rng(0), n_resamples=200)
    single = {name: retrieval_table(s, image_class, query_class, ks, n_resamples=10, n_draws=5)
              .query("predictor == 'model'").set_index(["direction", "k"])["value"] for name, s in (("a", a), ("b", b))}
    diff = diff.set_index(["direction", "k"])
    assert np.allclose(diff["value"], (single["a"] - single["b"]).loc[diff.index])
    assert (diff["ci_low"] <= diff["value"]).all() and (diff["value"] <= diff["ci_high"]).all()
    assert (diff.loc["image_to_text", "verdict"] == "better").all()
    # a constructed case: with one ranking reversed the difference at k = 1 is exactly +1 in both directions
    perfect = relevant.astype(float)
    flat = report.retrieval_differences(perfect, -perfect, image_class, query_class, (1,), n_resamples=20)
    assert flat["value"].tolist() == [1.0, 1.0]


def test_probe_seed_scores_reproduce_linear_probe_and_identical_features_differ_by_zero():
    rng = np.random.default_rng(3)
    y = (rng.random((240, 2)) < 0.3).astype(float)
    x = rng.normal(size=(240, 5))
    x[:, :2] += 1.5 * y
    train, test = slice(0, 180), slice(180, 240)
    probed = linear_probe(x[train], y[train], x[test], y[test], multiclass=False, fractions=(0.1, 1.0), seeds=(0, 1),
                          n_resamples=20)
    for fraction, mean in probed.summary.set_index("fraction")["mean"].items():
        scores = report.probe_seed_scores(x[train], y[train], x[test], False, fraction, (0, 1))
        assert scores.shape == (60, 2, 2)
        assert report.seed_mean_auroc(y[test], scores) == pytest.approx(mean)
    noise = rng.normal(size=x.shape)
    diff = report.probe_differences((x[train], x[test]), (noise[train], noise[test]), y[train], y[test], False,
                                    fractions=(1.0,), seeds=(0, 1), n_resamples=200).iloc[0]
    assert diff["verdict"] == "better" and diff["value"] > 0.2
    same = report.probe_differences((x[train], x[test]), (x[train], x[test]), y[train], y[test], False,
                                    fractions=(0.1,), seeds=(0,), n_resamples=20).iloc[0]
    assert same["value"] == same["ci_low"] == same["ci_high"] == 0.0


def test_with_baselines_keeps_each_model_and_the_baselines_once():
    def table(value):
        return pd.DataFrame({"predictor": ["model", "majority", "random"], "metric": "accuracy",
                             "value": [value, 0.2, 0.21], "ci_low": 0.0, "ci_high": 1.0})
    combined = report.with_baselines({"trained": table(0.6), "untrained": table(0.3)})
    assert combined["predictor"].tolist() == ["trained", "untrained", "majority", "random"]
    assert combined["value"].tolist() == [0.6, 0.3, 0.2, 0.21]
    with pytest.raises(ValueError):
        report.with_baselines({})


def test_estimate_text_and_pivot_keep_first_seen_order():
    assert report.estimate_text(0.6134, 0.55, 0.672) == "61.3 [55.0, 67.2]"
    assert report.estimate_text(0.5, np.nan, np.nan) == "50.0"
    assert report.estimate_text(np.nan, np.nan, np.nan) == "n/a"
    assert report.estimate_text(0.12345, 0.1, 0.2, scale=1, digits=3) == "0.123 [0.100, 0.200]"
    table = pd.DataFrame({"predictor": ["trained", "trained", "random", "random"], "metric": ["f1", "acc", "f1", "acc"],
                          "value": [0.5, 0.6, 0.2, 0.25], "ci_low": [0.4, 0.5, 0.1, 0.2],
                          "ci_high": [0.6, 0.7, 0.3, 0.3]})
    grid = report.estimate_pivot(table, "predictor", "metric")
    assert list(grid.index) == ["trained", "random"] and list(grid.columns) == ["f1", "acc"]
    assert grid.loc["random", "acc"] == "25.0 [20.0, 30.0]"
    noted = report.estimate_pivot(table.assign(verdict="better"), "predictor", "metric", note="verdict")
    assert noted.loc["trained", "f1"] == "50.0 [40.0, 60.0] better"
    wide = report.estimate_pivot(table.assign(set="x"), "predictor", ["set", "metric"])
    assert wide.loc["trained", ("x", "acc")] == "60.0 [50.0, 70.0]"
