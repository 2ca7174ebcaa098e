"""egma.losses against per-study loop references (tests/reference_losses.py), gradcheck, and autocast."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import reference_losses as ref
from egma import losses
from egma.config import LossConfig
from egma.losses import ABLATIONS, EncodedBatch, LossBundle

HAS_GAZE = ref.HAS_GAZE


def close(a, b, tol=1e-5):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                          atol=tol, rtol=tol)


@pytest.fixture(params=[0, 1, 2])
def batch(request):
    return ref.random_batch(seed=request.param)


def test_filip_scores_and_loss_match_reference(batch):
    S, _ = ref.per_study(batch)
    z_image, z_text, x = losses.filip_scores(batch["patches"], batch["sentences"], batch["mask"], batch["scale"])
    ref_image, ref_text = ref.filip_scores(batch["patches"], S, batch["scale"])
    assert x.shape == (7, 7, 9, 5)
    assert close(z_image, ref_image) and close(z_text, ref_text)
    got = losses.filip_loss(batch["patches"], batch["sentences"], batch["mask"], batch["scale"])
    assert close(got, ref.filip(batch["patches"], S, batch["scale"]))


def test_filip_text_term_normalises_over_images_not_texts():
    # with z_T asymmetric, rows-as-images (the released code's choice) gives another value than Eq. 2
    batch = ref.random_batch(seed=5)
    z_image, z_text, _ = losses.filip_scores(batch["patches"], batch["sentences"], batch["mask"], batch["scale"])
    target = torch.arange(7)
    paper = 0.5 * (F.cross_entropy(z_image, target) + F.cross_entropy(z_text.T, target))
    released = 0.5 * (F.cross_entropy(z_image, target) + F.cross_entropy(z_text, target))
    got = losses.filip_loss(batch["patches"], batch["sentences"], batch["mask"], batch["scale"])
    assert close(got, paper) and not close(got, released, 1e-3)


def test_clip_loss_matches_reference(batch):
    got = losses.clip_loss(batch["image_emb"], batch["text_emb"], batch["scale"])
    assert close(got, ref.clip(batch["image_emb"], batch["text_emb"], batch["scale"]))


def test_semantic_matching_matches_reference(batch):
    got = losses.semantic_matching_loss(batch["image_emb"], batch["text_emb"], batch["labels"], batch["scale"], 0.1)
    assert close(got, ref.semantic_matching(batch["image_emb"], batch["text_emb"], batch["labels"], batch["scale"], 0.1))


def test_semantic_matching_is_clip_when_no_two_reports_share_a_finding(batch):
    distinct = torch.eye(len(batch["image_emb"]), dtype=batch["image_emb"].dtype)
    got = losses.semantic_matching_loss(batch["image_emb"], batch["text_emb"], distinct, batch["scale"], 0.01)
    assert close(got, losses.clip_loss(batch["image_emb"], batch["text_emb"], batch["scale"]))
    shared = losses.semantic_matching_loss(batch["image_emb"], batch["text_emb"], batch["labels"], batch["scale"], 0.01)
    assert not close(got, shared, 1e-3)  # studies 0 and 1 state the same findings: each is the other's positive


def test_mlce_matches_the_formula_row_by_row():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 6, 10, generator=g, dtype=torch.float64) * 5
    labels = torch.rand(4, 6, 10, generator=g) < 0.3
    mask = torch.rand(4, 1, 10, generator=g) < 0.8
    got = losses.mlce(logits, labels, mask)
    for i in range(4):
        for j in range(6):
            keep = mask[i, 0]
            assert close(got[i, j], ref.mlce(logits[i, j][keep], labels[i, j][keep]))


def test_mlce_is_near_zero_when_positives_outscore_negatives_by_far():
    labels = torch.tensor([[True, False, True, False]])
    assert losses.mlce(torch.tensor([[30.0, -30.0, 30.0, -30.0]]), labels).item() < 1e-12
    assert losses.mlce(torch.tensor([[-30.0, 30.0, -30.0, 30.0]]), labels).item() > 59


@pytest.mark.parametrize("direction_weight", [0.5, 0.8])
def test_mlce_and_egf_losses_match_reference(batch, direction_weight):
    S, GS = ref.per_study(batch)
    args = (batch["patches"], batch["sentences"], batch["mask"], batch["gaze"], batch["has_gaze"], batch["scale"],
            direction_weight, 0.3)
    expected = ref.mlce_loss(batch["patches"], S, GS, HAS_GAZE, batch["scale"], direction_weight, 0.3)
    assert close(losses.mlce_loss(*args), expected)
    assert close(losses.egf_loss(*args), expected + ref.filip(batch["patches"], S, batch["scale"]))


@pytest.mark.parametrize("include_without_gaze", [False, True])
def test_egm_loss_matches_reference(batch, include_without_gaze):
    S, GS = ref.per_study(batch)
    got = losses.egm_loss(batch["patches"], batch["sentences"], batch["mask"], batch["gaze"], batch["has_gaze"],
                          batch["scale"], 2 / 7, include_without_gaze)
    expected = ref.egm_loss(batch["patches"], S, GS, HAS_GAZE, batch["scale"], 2 / 7, include_without_gaze)
    assert close(got, expected)


def test_egm_weights_match_reference_and_are_row_stochastic(batch):
    S, GS = ref.per_study(batch)
    x = losses.in_study_similarity(batch["patches"], batch["sentences"], batch["scale"])
    text_to_image, image_to_text = losses.egm_weights(x, batch["gaze"], batch["mask"], 2 / 7)
    for k, c in enumerate(batch["mask"].sum(1).tolist()):
        ref_t2i, ref_i2t = ref.egm_weights(batch["patches"][k], S[k], GS[k], batch["scale"], 2 / 7)
        assert close(text_to_image[k, :c], ref_t2i) and close(image_to_text[k, :, :c], ref_i2t)
        assert torch.all(text_to_image[k, c:] == 0) and torch.all(image_to_text[k, :, c:] == 0)
    assert close(text_to_image.sum(-1), batch["mask"].double())
    assert close(image_to_text.sum(-1), torch.ones(7, 9))


def test_egm_of_a_one_sentence_report_is_its_image_side_alone():
    batch = ref.random_batch(counts=[1, 3], has_gaze=[True, True])
    S, GS = ref.per_study(batch)
    values = losses.egm_per_study(batch["patches"], batch["sentences"], batch["mask"], batch["gaze"], batch["scale"])
    assert close(values[0], ref.egm_study(batch["patches"][0], S[0], GS[0], batch["scale"], 2 / 7))
    assert values[0] > 0.1  # the image side still teaches something


def test_padding_and_absent_gaze_get_no_gradient(batch):
    sentences = batch["sentences"].clone().requires_grad_()
    gaze = batch["gaze"].clone().requires_grad_()
    total = LossBundle(LossConfig("egma"))(EncodedBatch(batch["patches"], batch["image_emb"], sentences,
                                                        batch["mask"], batch["text_emb"], batch["scale"]),
                                           gaze, batch["has_gaze"])["total"]
    total.backward()
    assert torch.all(sentences.grad[~batch["mask"]] == 0)
    assert sentences.grad[batch["mask"]].abs().sum() > 0
    assert torch.all(gaze.grad[~batch["has_gaze"]] == 0) and torch.all(gaze.grad[~batch["mask"]] == 0)


def test_a_batch_without_any_gaze_has_zero_gaze_terms():
    batch = ref.random_batch(has_gaze=[False] * 7)
    patches = batch["patches"].clone().requires_grad_()
    args = (patches, batch["sentences"], batch["mask"], batch["gaze"], batch["has_gaze"], batch["scale"])
    mlce_value, egm_value = losses.mlce_loss(*args), losses.egm_loss(*args)
    assert mlce_value.item() == 0 and egm_value.item() == 0
    (mlce_value + egm_value).backward()
    assert torch.all(patches.grad == 0)


def test_a_study_without_sentences_is_refused():
    batch = ref.random_batch()
    mask = batch["mask"].clone()
    mask[2] = False
    with pytest.raises(ValueError, match=r"studies \[2\]"):
        losses.filip_loss(batch["patches"], batch["sentences"], mask, batch["scale"])


def test_bundle_sums_the_terms_of_each_ablation(batch):
    encoded = EncodedBatch(batch["patches"], batch["image_emb"], batch["sentences"], batch["mask"],
                           batch["text_emb"], batch["scale"])
    S, GS = ref.per_study(batch)
    reference = {"clip": ref.clip(batch["image_emb"], batch["text_emb"], batch["scale"]),
                 "semantic": ref.semantic_matching(batch["image_emb"], batch["text_emb"], batch["labels"],
                                                   batch["scale"], 0.2),
                 "filip": ref.filip(batch["patches"], S, batch["scale"]),
                 "mlce": ref.mlce_loss(batch["patches"], S, GS, HAS_GAZE, batch["scale"], 0.8),
                 "egm": ref.egm_loss(batch["patches"], S, GS, HAS_GAZE, batch["scale"], 0.25)}
    for name, terms in ABLATIONS.items():
        cfg = replace(LossConfig(name), gaze_direction_weight=0.8, egm_sparsity=0.25, label_temperature=0.2)
        values = LossBundle(cfg)(encoded, batch["gaze"], batch["has_gaze"], batch["labels"])
        assert set(values) == set(terms) | {"total"}
        assert close(values["total"], sum(reference[t] for t in terms))
    assert ABLATIONS["egma"] == ("filip", "mlce", "egm")
    with pytest.raises(KeyError, match="unknown loss"):
        LossBundle(LossConfig("gloria"))
    with pytest.raises(ValueError, match="needs the studies' labels"):
        LossBundle(LossConfig("medclip"))(encoded, batch["gaze"], batch["has_gaze"])


def test_float64_gradcheck_of_every_loss():
    batch = ref.random_batch(counts=[2, 1, 3], has_gaze=[True, False, True], n=4, d=3, seed=7)
    patches = batch["patches"].clone().requires_grad_()
    sentences = batch["sentences"].clone().requires_grad_()
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)  # moderate scale keeps the check sharp
    image_emb, text_emb = batch["image_emb"].clone().requires_grad_(), batch["text_emb"].clone().requires_grad_()
    mask, gaze, has_gaze = batch["mask"], batch["gaze"], batch["has_gaze"]
    checks = {
        "clip": (lambda i, t, s: losses.clip_loss(i, t, s), (image_emb, text_emb, scale)),
        "semantic": (lambda i, t, s: losses.semantic_matching_loss(i, t, batch["labels"], s, 0.5),
                     (image_emb, text_emb, scale)),
        "filip": (lambda p, q, s: losses.filip_loss(p, q, mask, s), (patches, sentences, scale)),
        "mlce": (lambda p, q, s: losses.mlce_loss(p, q, mask, gaze, has_gaze, s, 0.8), (patches, sentences, scale)),
        "egm": (lambda p, q, s: losses.egm_loss(p, q, mask, gaze, has_gaze, s, 2 / 7, True),
                (patches, sentences, scale)),
    }
    for name, (fn, inputs) in checks.items():
        assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5), name


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_losses_under_cpu_autocast_run_in_float32(half):
    batch = ref.random_batch(dtype=torch.float32, seed=4)
    low = {k: (v.to(half) if v.is_floating_point() and k != "scale" else v) for k, v in batch.items()}
    as_float = {k: (v.float() if v.is_floating_point() else v) for k, v in low.items()}
    bundle = LossBundle(LossConfig("egma"))

    def run(b):
        encoded = EncodedBatch(b["patches"], b["image_emb"], b["sentences"], b["mask"], b["text_emb"], b["scale"])
        return bundle(encoded, b["gaze"], b["has_gaze"])

    low["patches"].requires_grad_()
    with torch.autocast("cpu", dtype=half):
        got = run(low)
        clip_value = losses.clip_loss(low["image_emb"], low["text_emb"], low["scale"])
    got["total"].backward()
    exact_same_inputs, full_precision = run(as_float), run(batch)
    for name, value in got.items():
        assert value.dtype == torch.float32 and torch.isfinite(value)
        assert close(value, exact_same_inputs[name])       # nothing was computed in half precision
        assert close(value, full_precision[name], 5e-2)   # only the inputs' rounding differs
    assert torch.isfinite(clip_value) and clip_value.dtype == torch.float32
    assert low["patches"].grad.dtype == half and torch.isfinite(low["patches"].grad).all()
