"""egma.evaluation.linear_probe: label subsets, fitting, AUROC, summary; end to end on the fake encoder."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from egma.datasets.downstream import DownstreamSet
from egma.evaluation import linear_probe as lp
from fake_encoder import FakeModel, multiclass_set


def test_label_subset_has_every_class_and_the_requested_size():
    rng = np.random.default_rng(0)
    labels = (rng.random((500, 6)) < [0.3, 0.1, 0.02, 0.5, 0.05, 0.01]).astype(float)
    for seed in range(5):
        subset = lp.label_subset(labels, 0.01, np.random.default_rng(seed))
        assert len(set(subset)) == len(subset) >= 5
        assert (labels[subset].max(axis=0) == 1).all() and (labels[subset].min(axis=0) == 0).all()
    assert len(lp.label_subset(labels, 0.1, np.random.default_rng(0))) == 50
    assert np.array_equal(lp.label_subset(labels, 1.0, np.random.default_rng(0)), np.arange(500))
    assert not np.array_equal(lp.label_subset(labels, 0.1, np.random.default_rng(0)),
                              lp.label_subset(labels, 0.1, np.random.default_rng(1)))


def test_probe_labels_policies():
    table = pd.DataFrame({"path": ["a", "b", "c"], "split": "train", "A": [1.0, -1.0, np.nan], "B": [0.0, 1.0, -1.0]})
    data = DownstreamSet("x", table, ("A", "B"), False)
    assert lp.probe_labels(data).tolist() == [[1, 0], [0, 1], [0, 0]]
    assert lp.probe_labels(data, uncertain=1.0).tolist() == [[1, 0], [1, 1], [0, 1]]


def _separable(n, rng, n_labels=3, shift=2.0):
    y = (rng.random((n, n_labels)) < 0.3).astype(float)
    x = rng.normal(size=(n, 8))
    x[:, :n_labels] += shift * y
    return x, y


def test_probe_learns_separable_labels_and_macro_auroc_matches_sklearn():
    rng = np.random.default_rng(0)
    (train_x, train_y), (test_x, test_y) = _separable(400, rng), _separable(200, rng)
    scores = lp.fit_predict(train_x, train_y, test_x, multiclass=False)
    expected = np.mean([roc_auc_score(test_y[:, c], scores[:, c]) for c in range(3)])
    assert lp.macro_label_auroc(test_y, scores) == pytest.approx(expected)
    assert expected > 0.85
    constant = train_y.copy()
    constant[:, 1] = 0
    assert np.isnan(lp.fit_predict(train_x, constant, test_x, multiclass=False)[:, 1]).all()


def test_linear_probe_tables_and_more_labels_help():
    rng = np.random.default_rng(1)
    (train_x, train_y), (test_x, test_y) = _separable(1000, rng, shift=1.0), _separable(300, rng, shift=1.0)
    result = lp.linear_probe(train_x, train_y, test_x, test_y, multiclass=False, fractions=(0.01, 1.0),
                             seeds=(0, 1, 2), n_resamples=100)
    assert list(result.runs.columns) == ["fraction", "seed", "n_train", "auroc"] and len(result.runs) == 6
    summary = result.summary.set_index("fraction")
    assert summary.loc[1.0, "mean"] > summary.loc[0.01, "mean"]
    assert (summary["ci_low"] <= summary["mean"] + 1e-9).all() and (summary["mean"] <= summary["ci_high"] + 1e-9).all()
    assert summary.loc[0.01, "mean"] == pytest.approx(result.runs[result.runs.fraction == 0.01]["auroc"].mean())


def test_evaluate_linear_probe_multiclass_end_to_end(tmp_path):
    classes = ("A", "B", "C")
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    train, test = multiclass_set(tmp_path / "train", classes, 10), multiclass_set(tmp_path / "test", classes, 4)
    result = lp.evaluate_linear_probe(FakeModel(3), train, test, "cpu", fractions=(0.1, 1.0), seeds=(0, 1),
                                      n_resamples=50)
    assert np.allclose(result.runs["auroc"], 1.0)
    assert (result.runs.set_index("fraction")["n_train"].loc[0.1] == 3).all()
