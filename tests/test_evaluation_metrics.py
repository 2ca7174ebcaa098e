"""egma.evaluation.metrics against scikit-learn and hand-computed cases: ties, absent classes, P@K."""
import numpy as np
import pytest
from sklearn import metrics as skm

from egma.evaluation import metrics as m


@pytest.fixture
def labelled():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 60)
    scores = rng.random((60, 4)).round(1)          # coarse values: many ties
    scores[np.arange(60), y_true] += 0.2
    return y_true, scores, scores.argmax(axis=1)


def test_classification_metrics_match_sklearn(labelled):
    y, scores, pred = labelled
    assert m.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    assert m.macro_f1(y, pred, 4) == pytest.approx(skm.f1_score(y, pred, average="macro", labels=range(4)))
    assert m.balanced_accuracy(y, pred, 4) == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert np.array_equal(m.confusion_matrix(y, pred, 4), skm.confusion_matrix(y, pred, labels=range(4)))
    one_vs_rest = [skm.roc_auc_score(y == c, scores[:, c]) for c in range(4)]   # sklearn's "ovr" needs probabilities
    assert m.per_class_auroc(y, scores) == pytest.approx(one_vs_rest)
    assert m.macro_auroc(y, scores) == pytest.approx(np.mean(one_vs_rest))


def test_auroc_ties_count_one_half():
    # positives 0.5, 0.9; negatives 0.5, 0.1: pairs (0.5 vs 0.5) tie -> 0.5, the other three are won
    assert m.binary_auroc([1, 1, 0, 0], [0.5, 0.9, 0.5, 0.1]) == pytest.approx(3.5 / 4)
    assert m.binary_auroc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)
    positive = np.array([1, 1, 0, 0, 1, 0], bool)
    scores = np.array([0.2, 0.2, 0.2, 0.7, 0.7, 0.1])
    assert m.binary_auroc(positive, scores) == pytest.approx(skm.roc_auc_score(positive, scores))


def test_class_without_positives_is_nan_and_left_out_of_the_macro_mean():
    y = np.array([0, 0, 1, 1, 0, 1])                 # class 2 never occurs
    scores = np.array([[.9, .1, .0], [.8, .1, .1], [.2, .7, .1], [.1, .6, .3], [.3, .3, .4], [.5, .4, .1]])
    per_class = m.per_class_auroc(y, scores)
    assert np.isnan(per_class[2]) and not np.isnan(per_class[:2]).any()
    assert per_class[0] == pytest.approx(skm.roc_auc_score(y == 0, scores[:, 0]))
    assert m.macro_auroc(y, scores) == pytest.approx(per_class[:2].mean())
    pred = scores.argmax(axis=1)
    with pytest.warns(UserWarning, match="not in y_true"):
        expected = skm.balanced_accuracy_score(y, pred)
    assert m.balanced_accuracy(y, pred, 3) == pytest.approx(expected)
    assert m.macro_f1(y, pred, 3) == pytest.approx(skm.f1_score(y, pred, average="macro", labels=range(3)))
    absent = np.array([0, 0, 1, 1])    # class 2 neither true nor predicted: left out, not counted as 0
    assert m.macro_f1(absent, absent, 3) == pytest.approx(1.0)
    assert m.macro_f1(absent, absent, 3) == pytest.approx(
        skm.f1_score(absent, absent, average="macro", labels=range(3), zero_division=np.nan))
    assert np.isnan(m.macro_auroc(np.zeros(4, int), np.random.default_rng(0).random((4, 1))))


def test_metrics_are_vectorised_over_leading_axes(labelled):
    y, scores, pred = labelled
    idx = np.random.default_rng(1).integers(0, 60, (7, 60))
    batched = {name: fn(y[idx], scores[idx]) for name, fn in m.SCORE_METRICS.items()}
    for name, fn in m.SCORE_METRICS.items():
        assert batched[name].shape == (7,)
        assert np.allclose(batched[name], [fn(y[i], scores[i]) for i in idx])


def test_two_class_auroc_uses_the_score_difference():
    y = np.array([0, 1, 1, 0, 1])
    scores = np.array([[.5, .4], [.1, .3], [.6, .9], [.2, .1], [.9, .8]])
    assert m.SCORE_METRICS["auroc"](y, scores) == pytest.approx(skm.roc_auc_score(y, scores[:, 1] - scores[:, 0]))


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match="class indices"):
        m.confusion_matrix([0, 3], [0, 1], 3)


def test_precision_at_k_on_a_constructed_ranking():
    # one query, six items; relevance of the items in decreasing similarity: R N R R N N
    similarity = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    relevant = np.array([[1, 0, 1, 1, 0, 0]], bool)
    got = [m.precision_at_k(similarity, relevant, k)[0] for k in (1, 2, 3, 4, 6)]
    assert got == pytest.approx([1, 1 / 2, 2 / 3, 3 / 4, 1 / 2])
    shuffled = np.random.default_rng(0).permutation(6)   # column order must not matter
    assert m.precision_at_k(similarity[:, shuffled], relevant[:, shuffled], 3)[0] == pytest.approx(2 / 3)


def test_precision_at_k_ties_expected_and_by_index():
    similarity = np.array([[0.9, 0.5, 0.5, 0.5, 0.1]])
    relevant = np.array([[0, 1, 0, 0, 1]], bool)   # one relevant among the three tied items
    assert m.precision_at_k(similarity, relevant, 2)[0] == pytest.approx((0 + 1 / 3) / 2)
    assert m.precision_at_k(similarity, relevant, 2, ties="index")[0] == pytest.approx(1 / 2)
    assert m.precision_at_k(similarity, relevant, 4)[0] == pytest.approx(1 / 4)
    constant = np.zeros((3, 40))
    rel = m.relevance(np.arange(3), np.repeat(np.arange(8), 5))
    assert np.allclose(m.precision_at_k(constant, rel, 1), 5 / 40)   # chance exactly
    with pytest.raises(ValueError):
        m.precision_at_k(similarity, relevant, 6)


def test_retrieval_directions_follow_the_protocol():
    image_class = np.array([0, 0, 1])
    query_class = np.array([0, 1])
    sim = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])   # image 1 prefers the wrong query
    i2t = m.precision_at_k(sim, m.relevance(image_class, query_class), 1)
    t2i = m.precision_at_k(sim.T, m.relevance(query_class, image_class), 2)
    assert i2t.tolist() == [1, 0, 1]
    assert t2i.tolist() == pytest.approx([1 / 2, 1 / 2])    # query 0 ranks images 0, 2; query 1 ranks 1, 2


def test_top_k_weights_share_the_free_places_among_ties():
    similarity = np.array([[0.9, 0.5, 0.5, 0.5, 0.1],
                           [0.1, 0.2, 0.3, 0.4, 0.5]])
    weights = m.top_k_weights(similarity, 2)
    assert weights[0].tolist() == pytest.approx([1, 1 / 3, 1 / 3, 1 / 3, 0])   # one free place, three tied
    assert weights[1].tolist() == pytest.approx([0, 0, 0, 1, 1])
    rng = np.random.default_rng(0)
    random_rows = rng.integers(0, 4, (50, 30)).astype(float)   # many ties
    for k in (1, 7, 30):
        assert np.allclose(m.top_k_weights(random_rows, k).sum(axis=1), k)
