"""Silhouette, cross-validated kNN accuracy, their intervals and references, and the seeded UMAP layout."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import silhouette_samples, silhouette_score
from sklearn.model_selection import StratifiedKFold

from egma.embedding_space import (MAJORITY, SHUFFLED, cosine_distances, embedding_differences, embedding_table,
                                  item_scores, knn_predictions, shuffled_silhouette, silhouette_from_distances,
                                  silhouette_values, umap_coordinates, umap_figure)


def _clusters(rng, n_per_class=(12, 12, 12), d=8, spread=0.2):
    centres = np.eye(d)[: len(n_per_class)]
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), d))
    return x, y


def test_silhouette_matches_sklearn_and_a_hand_case():
    rng = np.random.default_rng(0)
    x, y = _clusters(rng)
    assert silhouette_values(x, y).mean() == pytest.approx(silhouette_score(x, y, metric="cosine"))
    # Hand case, cosine distance 1 - cos: a = 0 inside each class (equal directions), b = 1 (orthogonal).
    x = np.array([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0]])
    np.testing.assert_allclose(silhouette_values(x, [0, 0, 1, 1]), 1.0)
    # Labels across the directions: a = 1 (the orthogonal classmate), b = (0 + 1) / 2 -> (0.5 - 1) / 1.
    np.testing.assert_allclose(silhouette_values(x, [0, 1, 0, 1]), -0.5)


def test_batched_silhouettes_equal_sklearn_for_every_labelling_including_singletons():
    rng = np.random.default_rng(5)
    x, y = _clusters(rng, n_per_class=(6, 5, 4), spread=0.5)
    labellings = np.stack([rng.permutation(y) for _ in range(4)] + [np.r_[y[:-1], 3]])   # last: class 3 alone
    batched = silhouette_from_distances(cosine_distances(x), labellings)
    for labels, values in zip(labellings, batched):
        np.testing.assert_allclose(values, silhouette_samples(x, labels, metric="cosine"), atol=1e-10)
    assert batched[-1, -1] == 0.0
    estimate = shuffled_silhouette(x, y, np.random.default_rng(0), n_permutations=30)
    expected = [silhouette_score(x, np.random.default_rng(0).permuted(np.tile(y, (30, 1)), axis=1)[i], metric="cosine")
                for i in range(30)]
    assert estimate.value == pytest.approx(np.mean(expected))


def test_knn_predictions_match_a_slow_cross_validated_vote():
    rng = np.random.default_rng(1)
    x, y = _clusters(rng, spread=0.9)
    predicted = knn_predictions(x, y, k=3, folds=4, seed=7)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = np.empty_like(y)
    for train, test in StratifiedKFold(4, shuffle=True, random_state=7).split(x, y):
        for i in test:
            distance = 1 - unit[train] @ unit[i]
            votes = np.bincount(y[train][np.argsort(distance, kind="stable")[:3]], minlength=3)
            expected[i] = votes.argmax()
    np.testing.assert_array_equal(predicted, expected)


def test_knn_is_perfect_on_separated_classes_and_near_chance_on_shuffled_ones():
    rng = np.random.default_rng(2)
    x, y = _clusters(rng, n_per_class=(30, 30, 30), spread=0.1)
    assert (knn_predictions(x, y) == y).all()
    noise = rng.normal(size=(300, 8))
    labels = rng.integers(0, 3, size=300)
    assert abs((knn_predictions(noise, labels) == labels).mean() - 1 / 3) < 0.1
    with pytest.raises(ValueError, match="smallest class"):
        knn_predictions(x[:32], y[:32], folds=5)


def test_table_has_model_and_reference_rows_with_intervals_around_the_values():
    rng = np.random.default_rng(3)
    x, y = _clusters(rng, n_per_class=(20, 10, 10), spread=0.3)
    items = item_scores(x, y, k=3, folds=5)
    table = embedding_table(x, y, items, np.random.default_rng(0), n_resamples=300, n_permutations=50)
    value = table.set_index(["metric", "predictor"])
    assert value.loc[("knn_accuracy", MAJORITY), "value"] == pytest.approx(0.5)   # 20 of 40 in class 0
    assert value.loc[("silhouette", "model"), "value"] == pytest.approx(silhouette_score(x, y, metric="cosine"))
    assert value.loc[("knn_accuracy", "model"), "value"] == pytest.approx(items.knn_correct.mean())
    assert abs(value.loc[("silhouette", SHUFFLED), "value"]) < 0.1 < value.loc[("silhouette", "model"), "value"]
    assert (table.ci_low <= table.value + 1e-12).all() and (table.value <= table.ci_high + 1e-12).all()


def test_differences_are_paired_and_judged():
    a = pd.DataFrame({"silhouette": np.linspace(0.4, 0.6, 50), "knn_correct": np.ones(50)})
    b = pd.DataFrame({"silhouette": np.linspace(0.1, 0.3, 50), "knn_correct": np.ones(50)})
    table = embedding_differences(a, b, np.random.default_rng(0), n_resamples=200).set_index("metric")
    assert table.loc["silhouette", "value"] == pytest.approx(0.3) and table.loc["silhouette", "verdict"] == "better"
    assert table.loc["knn_accuracy", "verdict"] == "no clear difference"


def test_umap_is_deterministic_with_its_seed_and_has_one_row_per_item():
    rng = np.random.default_rng(4)
    x, y = _clusters(rng, n_per_class=(25, 25), spread=0.3)
    first, again = umap_coordinates(x, seed=0), umap_coordinates(x, seed=0)
    assert first.shape == (50, 2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, umap_coordinates(x, seed=1))
    fig = umap_figure({"a": first, "b": again}, np.array(["p", "q"])[y])
    assert len(fig.data) == 4 and [t.showlegend for t in fig.data] == [True, True, False, False]
