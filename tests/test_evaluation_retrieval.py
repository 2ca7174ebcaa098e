"""egma.evaluation.retrieval: both directions, baselines at chance, and end to end on the fake encoder."""
import numpy as np
import pytest

from egma.evaluation.metrics import precision_at_k, relevance
from egma.evaluation.retrieval import evaluate_retrieval, retrieval_table, top_k_class_counts
from fake_encoder import FakeModel, FakeTokenizer, multiclass_set

CLASSES = ("No Finding", "Cardiomegaly", "Edema")


def _values(table):
    return table.set_index(["direction", "k", "predictor"])["value"]


def test_table_on_a_constructed_similarity():
    image_class = np.array([0, 0, 1, 1])
    query_class = np.array([0, 1])
    sim = np.array([[0.9, 0.1], [0.2, 0.3], [0.1, 0.8], [0.0, 0.9]])   # image 1 ranks the wrong query first
    values = _values(retrieval_table(sim, image_class, query_class, ks=(1, 2), n_resamples=50, n_draws=50))
    assert values[("image_to_text", 1, "model")] == pytest.approx(3 / 4)
    assert values[("image_to_text", 2, "model")] == pytest.approx(1 / 2)       # only one relevant query of two
    # query 0 ranks images 0 (0.9), 1 (0.2) first; query 1 ranks 3 (0.9), 2 (0.8): all relevant
    assert values[("text_to_image", 1, "model")] == pytest.approx(1.0)
    assert values[("text_to_image", 2, "model")] == pytest.approx(1.0)
    assert values[("image_to_text", 1, "random")] == pytest.approx(0.5, abs=0.1)


def test_baselines_are_chance_on_a_balanced_set():
    rng = np.random.default_rng(0)
    image_class, query_class = np.repeat(np.arange(8), 30), np.repeat(np.arange(8), 5)
    table = retrieval_table(rng.random((240, 40)), image_class, query_class, n_resamples=100, n_draws=100)
    baselines = table[table.predictor != "model"]
    assert np.allclose(baselines["value"], 1 / 8, atol=0.02)
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()
    assert set(table.direction) == {"image_to_text", "text_to_image"} and set(table.k) == {1, 5, 10}


@pytest.mark.parametrize("scoring", ["global", "filip"])
def test_end_to_end_fake_encoder_retrieves_its_class(tmp_path, scoring):
    data = multiclass_set(tmp_path, CLASSES, 4)
    queries = {c: [f"{c} query {j}" for j in range(5)] for c in CLASSES}
    tokenizer = FakeTokenizer({q: CLASSES.index(c) for c, qs in queries.items() for q in qs})
    result = evaluate_retrieval(FakeModel(3), data, queries, "cpu", ks=(1, 4), tokenizer=tokenizer, scoring=scoring,
                                n_resamples=50, n_draws=50)
    values = _values(result.table)
    assert values[("image_to_text", 1, "model")] == 1.0 and values[("image_to_text", 4, "model")] == 1.0
    assert values[("text_to_image", 4, "model")] == 1.0
    assert result.similarity.shape == (12, 15)


def test_top_k_class_counts_on_a_constructed_ranking_with_a_hub():
    # 6 images: classes 0 0 1 1 2 2; image 4 (class 2) is first for every query
    image_class = np.array([0, 0, 1, 1, 2, 2])
    query_class = np.array([0, 1, 1])
    similarity = np.array([[0.5, 0.4, 0.0, 0.0, 0.9, 0.1],     # query of class 0: top 2 = images 4, 0
                           [0.0, 0.0, 0.6, 0.2, 0.9, 0.1],     # query of class 1: top 2 = images 4, 2
                           [0.0, 0.0, 0.3, 0.3, 0.9, 0.3]])    # class 1 again: 4, then a 3-way tie (2, 3, 5)
    counts = top_k_class_counts(similarity, image_class, query_class, 3, k=2)
    assert counts[0].tolist() == pytest.approx([1, 0, 1])
    # class 1: places of both queries pooled: image 4 twice (class 2), image 2 once, then 2/3 class 1, 1/3 class 2
    assert counts[1].tolist() == pytest.approx([0, 1 + 2 / 3, 2 + 1 / 3])
    assert counts[2].tolist() == pytest.approx([0, 0, 0])       # no query of class 2: an empty row
    # the diagonal over the row's places is the mean Precision@K of each class's queries
    p_at_2 = precision_at_k(similarity, relevance(query_class, image_class), 2)
    assert counts[0, 0] / 2 == pytest.approx(p_at_2[0])
    assert counts[1, 1] / 4 == pytest.approx(p_at_2[1:].mean())
