"""egma.evaluation.zero_shot: aggregation, scoring, targets, and end to end on a fake and the CI model."""
import numpy as np
import pandas as pd
import pytest
import torch

from egma.batch import load_model_image
from egma.config import get_preset
from egma.datasets.downstream import DownstreamSet
from egma.evaluation import zero_shot as zs
from egma.evaluation.encoding import DIFFERENT_FINDINGS, encode_image_files, encode_texts, statement_similarities
from egma.model import build_model, build_tokenizer
from egma.prompts import chexpert_5x200_prompts
from fake_encoder import FakeModel, FakeTokenizer, multiclass_set, write_images

CLASSES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


def test_aggregate_max_and_mean_by_class():
    scores = np.array([[0.1, 0.5, 0.3, 0.9], [0.4, 0.2, 0.8, 0.0]])
    prompt_class = np.array([1, 0, 1, 0])
    assert np.allclose(zs.aggregate_by_class(scores, prompt_class, 2, "max"), [[0.9, 0.3], [0.2, 0.8]])
    assert np.allclose(zs.aggregate_by_class(scores, prompt_class, 2, "mean"), [[0.7, 0.2], [0.1, 0.6]])
    with pytest.raises(ValueError, match="at least one prompt"):
        zs.aggregate_by_class(scores, prompt_class, 3)


def test_filip_prompt_scores_are_mean_and_max_over_patches():
    g = torch.Generator().manual_seed(0)
    patches = torch.nn.functional.normalize(torch.randn(3, 5, 8, generator=g), dim=-1)
    prompts = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)
    cos = torch.einsum("knd,pd->kpn", patches, prompts)
    assert torch.allclose(zs.filip_prompt_scores(patches, prompts, "image"), cos.mean(-1), atol=1e-6)
    assert torch.allclose(zs.filip_prompt_scores(patches, prompts, "text"), cos.amax(-1), atol=1e-6)
    assert torch.allclose(zs.filip_prompt_scores(patches, prompts), (cos.mean(-1) + cos.amax(-1)) / 2, atol=1e-6)


def test_targets_follow_the_prompt_order(tmp_path):
    data = multiclass_set(tmp_path, CLASSES, 2)
    reordered = list(reversed(CLASSES))
    assert np.array_equal(zs.zero_shot_targets(data, reordered), 4 - data.y)
    binary = DownstreamSet("b", pd.DataFrame({"path": ["a", "b"], "split": "test", "Pneumonia": [1.0, 0.0]}),
                           ("Pneumonia",), False)
    assert zs.zero_shot_targets(binary, ["Normal", "Pneumonia"]).tolist() == [1, 0]
    with pytest.raises(ValueError):
        zs.zero_shot_targets(binary, ["Normal", "Pneumothorax"])
    with pytest.raises(ValueError):
        zs.zero_shot_targets(data, CLASSES[:4])


@pytest.mark.parametrize("scoring", ["global", "filip"])
@pytest.mark.parametrize("aggregate", ["max", "mean"])
def test_end_to_end_fake_encoder_is_perfect(tmp_path, scoring, aggregate):
    data = multiclass_set(tmp_path, CLASSES, 3)
    prompts = {c: [f"{c} prompt {j}" for j in range(3)] for c in reversed(CLASSES)}   # another class order
    text_class = {t: CLASSES.index(c) for c, ts in prompts.items() for t in ts}
    result = zs.evaluate_zero_shot(FakeModel(5), data, prompts, "cpu", batch_size=4, scoring=scoring,
                                   aggregate=aggregate, tokenizer=FakeTokenizer(text_class), n_resamples=100,
                                   n_draws=100)
    assert (result.predictions["true_class"] == result.predictions["predicted_class"]).all()
    assert result.class_names == tuple(reversed(CLASSES))
    model_rows = result.metrics[result.metrics.predictor == "model"].set_index("metric")
    assert np.allclose(model_rows["value"], 1.0) and np.allclose(model_rows["ci_low"], 1.0)
    assert result.metrics.set_index(["predictor", "metric"]).loc[("majority", "accuracy"), "value"] == \
        pytest.approx(0.2)
    assert np.array_equal(np.diag(result.confusion.to_numpy()), [3] * 5)


def test_end_to_end_binary_set_with_a_normal_class(tmp_path):
    labels = np.array([1, 0, 0, 1, 0, 0])
    table = pd.DataFrame({"path": write_images(tmp_path, labels), "split": "test", "Pneumonia": labels.astype(float)})
    data = DownstreamSet("rsna-like", table, ("Pneumonia",), False)
    prompts = {"Normal": ["clear"], "Pneumonia": ["pneumonia", "consolidation"]}
    result = zs.evaluate_zero_shot(FakeModel(2), data, prompts, "cpu", tokenizer=FakeTokenizer(
        {"clear": 0, "pneumonia": 1, "consolidation": 1}), n_resamples=50, n_draws=50)
    assert result.predictions["y_pred"].tolist() == labels.tolist()
    rows = result.metrics.set_index(["predictor", "metric"])["value"]
    assert rows[("majority", "accuracy")] == pytest.approx(4 / 6)
    assert rows[("majority", "macro_f1")] == pytest.approx(0.4)    # F1 of "Normal" 0.8, of "Pneumonia" 0


@pytest.fixture(scope="module")
def ci_model():
    cfg = get_preset("ci").model
    tokenizer = build_tokenizer(cfg)
    torch.manual_seed(0)
    return build_model(cfg, tokenizer).eval(), tokenizer


def test_ci_model_runs_end_to_end_and_encoding_is_batch_invariant(tmp_path, ci_model):
    model, tokenizer = ci_model
    data = multiclass_set(tmp_path, CLASSES, 2)
    features = encode_image_files(model, data.paths, "cpu", batch_size=3)
    with torch.no_grad():
        direct = model.encode_images(torch.stack([load_model_image(p, model.cfg.image_size) for p in data.paths]))
    assert torch.allclose(features.patches, direct[0], atol=1e-5)
    assert torch.allclose(features.global_emb, direct[1], atol=1e-5)
    prompts = chexpert_5x200_prompts(max_per_class=4)
    result = zs.evaluate_zero_shot(model, data, prompts, "cpu", scoring="filip", tokenizer=tokenizer,
                                   features=features, n_resamples=50, n_draws=50)
    assert result.scores.shape == (10, 5) and np.isfinite(result.scores).all()
    assert set(result.metrics.metric) == set(zs.SCORE_METRICS) and len(result.metrics) == 12
    assert not model.training


def test_statement_similarities_give_each_pair_and_the_mean_over_different_findings(ci_model):
    model, tokenizer = ci_model
    pairs = {"A": ("Heart is enlarged.", "Heart is not enlarged."), "B": ("Right effusion.", "No effusion."),
             "C": ("Left pneumothorax.", "Left pneumothorax.")}   # C: a sentence against itself
    table = statement_similarities(model, tokenizer, pairs, "cpu")
    assert list(table.index) == ["A", "B", "C", DIFFERENT_FINDINGS]
    for name, (a, b) in pairs.items():   # each sentence encoded on its own
        emb = encode_texts(model, tokenizer, [a, b], "cpu")
        assert table[name] == pytest.approx(float(emb[0] @ emb[1]), abs=1e-5)
    assert table["C"] == pytest.approx(1.0, abs=1e-5) and table[["A", "B"]].max() < 1 - 1e-4
    affirmed = encode_texts(model, tokenizer, [a for a, _ in pairs.values()], "cpu")
    expected = float(affirmed[0] @ affirmed[1] + affirmed[0] @ affirmed[2] + affirmed[1] @ affirmed[2]) / 3
    assert table[DIFFERENT_FINDINGS] == pytest.approx(expected, abs=1e-5)   # the diagonal (1s) is left out
