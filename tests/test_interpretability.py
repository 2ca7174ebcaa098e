"""Attention maps, their way back onto the image, the gaze and truth they are scored against, the scores."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dictated import dictated

from egma.config import GazeConfig, get_preset
from egma.datasets.study import FixationTable, Reading, Study
from egma.evaluation.bootstrap import Estimate
from egma.gaze.geometry import points_to_model, points_to_patch, to_model_frame
from egma.interpretability import (GAZE_REFERENCE, UNIFORM, StudyCase, SentenceGaze, attention_figure,
                                   attention_maps, clustered_mean_ci, directed_verdict, localisation_differences,
                                   localisation_scores, map_to_image, outline_xy, region_mask, sentence_gaze,
                                   sentence_kind, sentence_regions, study_attention, study_cases)
from egma.model import build_model, build_tokenizer

PORTRAIT = (90, 60)   # (H, W): padding left and right


def _unit_rows(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_attention_peaks_where_the_sentence_matches_the_patch_and_is_a_softmax_over_patches():
    rng = np.random.default_rng(0)
    grid, d = 7, 64
    patches = _unit_rows(rng, grid * grid, d)
    targets = [10, 33, 48]
    sentences = patches[targets] + 0.05 * _unit_rows(rng, 3, d)
    sentences /= np.linalg.norm(sentences, axis=1, keepdims=True)
    maps = attention_maps(patches, sentences, logit_scale=20.0)
    assert maps.shape == (3, grid, grid)
    for j, target in enumerate(targets):
        assert np.unravel_index(maps[j].argmax(), maps[j].shape) == divmod(target, grid)
        logits = 20.0 * np.array([patches[i] @ sentences[j] for i in range(grid * grid)])
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        np.testing.assert_allclose(maps[j].ravel(), expected, atol=1e-12)


def test_attention_sharpens_with_the_logit_scale():
    rng = np.random.default_rng(1)
    patches, sentence = _unit_rows(rng, 49, 16), _unit_rows(rng, 1, 16)
    assert attention_maps(patches, sentence, 50.0).max() > attention_maps(patches, sentence, 5.0).max()
    with pytest.raises(ValueError, match="square grid"):
        attention_maps(patches[:48], sentence, 1.0)


def test_study_attention_keeps_each_studys_sentences_with_its_image():
    cfg = get_preset("ci").model
    tokenizer = build_tokenizer(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, tokenizer).eval()
    images = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    sentences = [["Heart is enlarged.", "No effusion."], ["Small right pneumothorax."]]
    maps = study_attention(model, tokenizer, images, sentences)
    assert [m.shape for m in maps] == [(2, cfg.grid, cfg.grid), (1, cfg.grid, cfg.grid)]
    with torch.no_grad():
        patches = model.encode_images(images)[0]
        for k, texts in enumerate(sentences):
            tokens = tokenizer(texts, padding=True, return_tensors="pt")
            text = model.encode_sentences(tokens["input_ids"], tokens["attention_mask"])
            np.testing.assert_allclose(maps[k], attention_maps(patches[k], text, float(model.logit_scale)), atol=1e-5)


def test_nearest_map_gives_every_image_pixel_the_patch_its_centre_falls_in():
    """A portrait image: each original pixel gets the patch that points_to_patch (the gaze labels' rule) names."""
    grid = 7
    index_map = np.arange(grid * grid, dtype=float).reshape(grid, grid)
    on_image = map_to_image(index_map, PORTRAIT, mode="nearest")
    assert on_image.shape == PORTRAIT
    rows, cols = np.mgrid[0:PORTRAIT[0], 0:PORTRAIT[1]]
    expected = points_to_patch(cols.ravel() + 0.5, rows.ravel() + 0.5, PORTRAIT, grid).reshape(PORTRAIT)
    np.testing.assert_array_equal(on_image, expected)


def test_a_patch_peak_lands_on_that_patch_of_the_portrait_image():
    grid = 7
    x, y = 48.0, 20.0                                        # right part, upper third of a 60 x 90 image
    patch = int(points_to_patch(np.array([x]), np.array([y]), PORTRAIT, grid)[0])
    peak = np.zeros((grid, grid))
    peak.flat[patch] = 1.0
    on_image = map_to_image(peak, PORTRAIT)
    r, c = np.unravel_index(on_image.argmax(), on_image.shape)
    assert points_to_patch(np.array([c + 0.5]), np.array([r + 0.5]), PORTRAIT, grid)[0] == patch
    assert abs(c + 0.5 - x) < 90 / grid and abs(r + 0.5 - y) < 90 / grid   # within one patch (side 90 / 7 px)


def test_model_frame_map_goes_back_onto_the_original_pixels():
    """to_model_frame then map_to_image returns a portrait mask to where it was (up to resampling blur)."""
    mask = np.zeros(PORTRAIT, dtype=np.float32)
    mask[50:75, 8:30] = 1.0
    back = map_to_image(to_model_frame(mask, 112), PORTRAIT) > 0.5
    iou = (back & (mask > 0)).sum() / (back | (mask > 0)).sum()
    assert back.shape == PORTRAIT and iou > 0.9



def _study(report, readings, image_size=(200, 160)):
    return Study("s1", "p1", "d1", Path("img.jpg"), image_size, list(report), readings=readings)


def test_sentence_gaze_points_are_the_fixations_in_that_sentences_window_in_the_model_frame():
    cfg = replace(GazeConfig(), fixation_method="dataset", eye_voice_lead_s=0.0)
    fix = FixationTable(np.array([1.0, 1.6, 5.0, 9.0]), np.array([1.4, 1.9, 5.5, 9.5]),
                        np.array([30.0, 40.0, 120.0, 80.0]), np.array([50.0, 60.0, 150.0, 100.0]))
    reading = Reading("r", "a", "reflacx", dictated([("Heart normal.", 1.0, 2.0), ("No effusion.", 5.0, 6.0),
                                                        ("Bones intact.", 20.0, 21.0)]), fixations=fix)
    study = _study(["No effusion.", "Heart normal.", "Bones intact."], [reading])
    with pytest.warns(UserWarning, match="no fixation"):
        gaze = sentence_gaze(study, cfg, 56)
    assert gaze.sentences == study.report_sentences
    np.testing.assert_allclose(gaze.maps.sum(axis=(1, 2)), 1.0)
    expected = {0: [2], 1: [0, 1], 2: [0, 1, 2, 3]}          # the last sentence has no gaze: every fixation
    for j, idx in expected.items():
        np.testing.assert_allclose(np.stack(gaze.points[j]), np.stack(points_to_model(fix.x[idx], fix.y[idx],
                                                                                      (200, 160), 56)))
    assert gaze.fallback.tolist() == [False, False, True]
    assert sentence_gaze(_study(["x."], []), cfg, 56) is None


def test_sentence_regions_follow_the_report_order_and_refuse_unknown_sentences():
    truth = {"dicom_id": "d1", "sentences": [{"text": "Heart is big.", "region": ["finding:cardiomegaly"]},
                                             {"text": "Lungs clear.", "region": ["anatomy:lungs"]}]}
    assert sentence_regions(truth, ["lungs clear", "Heart is big."]) == [["anatomy:lungs"], ["finding:cardiomegaly"]]
    with pytest.raises(ValueError, match="d1.*not in the phantom truth"):
        sentence_regions(truth, ["Bones intact."])
    assert sentence_kind(["anatomy:heart", "finding:edema"]) == "finding"
    assert sentence_kind(["anatomy:heart"]) == "normal"
    masks = {"a": np.eye(3, dtype=bool), "b": np.fliplr(np.eye(3, dtype=bool))}
    assert region_mask(masks, ["a", "b"]).sum() == 5
    with pytest.raises(KeyError, match="c"):
        region_mask(masks, ["a", "c"])


def _case(image_size=(120, 96), size=56):
    """Sentence 0 points at a blob in the lower left of a portrait image; its gaze sits on the blob."""
    blob = np.zeros(image_size, dtype=bool)
    blob[80:110, 5:35] = True
    gaze_map = to_model_frame(blob.astype(np.float32), size)
    gaze_map /= gaze_map.sum()
    x, y = points_to_model(np.array([20.0, 15.0]), np.array([95.0, 90.0]), image_size, size)
    gaze = SentenceGaze(["Blob here.", "Elsewhere."], np.stack([gaze_map, gaze_map]), [(x, y), (x, y)],
                        np.zeros(2, bool))
    study = Study("s1", "p", "d", Path("x"), image_size, gaze.sentences)
    return StudyCase(study, gaze.sentences, gaze, [["finding:blob"], ["anatomy:blob"]], {"finding:blob": blob,
                                                                                          "anatomy:blob": blob})


def test_scores_of_a_map_on_the_region_beat_the_uniform_map_and_the_gaze_reference_is_scored():
    size, grid = 56, 7
    case = _case(size=size)
    on_target = np.full((grid, grid), 0.01)
    on_target[5, 1] = 1.0                                    # the patch over the blob's centre
    off_target = np.full((grid, grid), 0.01)
    off_target[1, 5] = 1.0
    scores = localisation_scores([case], {"good": [np.stack([on_target, on_target])],
                                          "bad": [np.stack([off_target, off_target])]}, size)
    value = scores.set_index(["model", "sentence", "metric"])["value"]
    assert set(scores.model) == {"good", "bad", UNIFORM, GAZE_REFERENCE}
    assert set(scores.kind) == {"finding", "normal"}
    assert value["good", 0, "pointing_game"] == 1.0 and value["bad", 0, "pointing_game"] == 0.0
    region_share = (to_model_frame(case.masks["finding:blob"].astype(np.float32), size) >= 0.5).mean()
    assert value[UNIFORM, 0, "pointing_game"] == pytest.approx(region_share, abs=1e-9)
    assert value[UNIFORM, 0, "map_auroc"] == pytest.approx(0.5)
    assert value["good", 0, "map_auroc"] > 0.9 > 0.5 > value["bad", 0, "map_auroc"]
    assert value["good", 0, "cc"] > 0.5 > value["bad", 0, "cc"]
    assert value["good", 0, "kl"] < value[UNIFORM, 0, "kl"] < value["bad", 0, "kl"]
    assert value["good", 0, "nss"] > 0 == value[UNIFORM, 0, "nss"] > value["bad", 0, "nss"]
    assert np.isnan(value[UNIFORM, 0, "cc"])
    assert value[GAZE_REFERENCE, 0, "pointing_game"] == 1.0
    assert set(scores[scores.model == GAZE_REFERENCE].metric) == {"pointing_game", "map_auroc"}


def test_without_truth_only_the_gaze_scores_are_computed():
    case = _case()
    case.regions = case.masks = None
    scores = localisation_scores([case], {"m": [np.ones((2, 7, 7))]}, 56)
    assert set(scores.metric) == {"cc", "kl", "nss"} and set(scores.kind) == {"all"}


def test_clustered_interval_resamples_whole_studies():
    """Against a slow reference: the same draws of studies, each resample's mean over its sentences."""
    values = np.array([0.1, 0.3, np.nan, 0.9, 0.8, 0.2, 0.5])
    studies = np.array(["a", "a", "a", "b", "b", "c", "d"])
    estimate = clustered_mean_ci(values, studies, np.random.default_rng(3), n_resamples=400)
    assert estimate.value == pytest.approx(np.nanmean(values))
    draws = np.random.default_rng(3).integers(0, 4, size=(400, 4))
    groups = [values[studies == s] for s in "abcd"]
    means = [np.nanmean(np.concatenate([groups[i] for i in row])) for row in draws]
    low, high = np.percentile(means, [2.5, 97.5])
    assert (estimate.low, estimate.high) == pytest.approx((low, high))


def test_differences_are_paired_per_sentence_and_verdicts_follow_the_metric_direction():
    rows = []
    for study in range(6):
        for sentence in range(3):
            for model, shift in (("a", 0.2), ("b", 0.0)):
                keys = {"model": model, "study_id": f"s{study}", "sentence": sentence, "text": "t", "kind": "finding"}
                rows.append({**keys, "metric": "map_auroc", "value": 0.5 + shift + 0.01 * sentence})
                rows.append({**keys, "metric": "kl", "value": 2.0 - shift + 0.1 * study})
    table = localisation_differences(pd.DataFrame(rows), "a", "b", np.random.default_rng(0), n_resamples=200)
    table = table.set_index("metric")
    assert table.loc["map_auroc", "value"] == pytest.approx(0.2) and table.loc["kl", "value"] == pytest.approx(-0.2)
    assert table.loc["map_auroc", "verdict"] == "better" and table.loc["kl", "verdict"] == "better"
    assert directed_verdict(Estimate(0.1, 0.05, 0.2), higher_is_better=False) == "worse"
    assert directed_verdict(Estimate(0.1, -0.05, 0.2), higher_is_better=False) == "no clear difference"


def test_attention_figure_has_a_slider_step_per_sentence_that_toggles_its_own_traces():
    case = _case()
    image = np.zeros(case.study.image_size, dtype=np.uint8)
    peaked = np.random.default_rng(0).random((2, 7, 7)) ** 4
    maps = {"EGMA": peaked / peaked.sum(axis=(1, 2), keepdims=True), "CLIP": np.full((2, 7, 7), 1 / 49)}
    fig = attention_figure(image, case, maps, title="t")
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 2
    first, second = (np.array(s.args[0]["visible"]) for s in steps)
    assert first.sum() == second.sum() > 0 and not (first & second).any()
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:2] == ["image, true region", "radiologist gaze"]
    assert titles[2].startswith("EGMA (1x to") and titles[3].startswith("CLIP (1x to")
    clip_traces = [t for t in fig.data if t.type == "heatmap" and t.xaxis == "x4"]
    assert all(np.asarray(t.z).max() == 0 for t in clip_traces)     # a uniform map shows as no attention at all


def _pieces(x, y):
    cuts = np.flatnonzero(np.isnan(x))
    assert np.array_equal(cuts, np.flatnonzero(np.isnan(y)))
    bounds = zip(np.r_[0, cuts[:-1] + 1], cuts)
    return sorted([(x[a:b], y[a:b]) for a, b in bounds], key=lambda p: p[0].min())


def test_outline_runs_along_the_pixel_edges_of_the_mask_even_at_the_border():
    mask = np.zeros((30, 25), dtype=bool)
    mask[10:20, 5:15] = True
    mask[0:4, 20:25] = True                                  # touches the top and right borders
    (sx, sy), (bx, by) = _pieces(*outline_xy(mask, tolerance=0))
    assert (sx.min(), sx.max(), sy.min(), sy.max()) == (5.0, 15.0, 10.0, 20.0)
    assert (bx.min(), bx.max(), by.min(), by.max()) == (20.0, 25.0, 0.0, 4.0)
    (rx, ry), _ = _pieces(*outline_xy(mask))                 # simplified: a rectangle needs its corners only
    assert len(rx) <= 6 < len(sx)
    assert np.abs(np.array([rx.min(), rx.max(), ry.min(), ry.max()]) - [5, 15, 10, 20]).max() <= 1.0


def test_study_cases_join_gaze_truth_regions_and_masks_by_image(tmp_path):
    import json
    from types import SimpleNamespace

    from egma.phantom.truth import write_study_masks

    cfg = replace(GazeConfig(), fixation_method="dataset")
    heart = np.zeros((200, 160), dtype=bool)
    heart[100:150, 60:120] = True
    rendered = SimpleNamespace(image=np.zeros((200, 160)), finding_masks={"cardiomegaly": heart},
                               anatomy_masks={"lungs": ~heart})
    write_study_masks(tmp_path, "d1", rendered)
    sentences = [{"text": "Lungs clear.", "region": ["anatomy:lungs"]},
                 {"text": "Heart is enlarged.", "region": ["finding:cardiomegaly"]}]
    (tmp_path / "truth.json").write_text(json.dumps({"studies": {"d1": {"dicom_id": "d1", "sentences": sentences}}}))
    fix = FixationTable(np.array([1.0, 5.0]), np.array([1.5, 5.5]), np.array([90.0, 40.0]), np.array([120.0, 40.0]))
    reading = Reading("r", "a", "reflacx", dictated([("Heart is enlarged.", 1.0, 2.0), ("Lungs clear.", 5.0, 6.0)]),
                      fixations=fix)
    study = Study("s1", "p1", "d1", Path("img.jpg"), (200, 160), ["Heart is enlarged.", "Lungs clear."],
                  readings=[reading])
    [case] = study_cases([study], cfg, 56, tmp_path)
    assert case.regions == [["finding:cardiomegaly"], ["anatomy:lungs"]] and case.kinds() == ["finding", "normal"]
    np.testing.assert_array_equal(case.region(0), heart)
    assert case.gaze is not None and len(case.gaze.points) == 2
    [plain] = study_cases([study], cfg, 56)
    assert plain.regions is None and plain.kinds() == ["all", "all"] and plain.region(0) is None
    with pytest.raises(KeyError, match="no truth record"):
        study_cases([replace(study, dicom_id="d2")], cfg, 56, tmp_path)
