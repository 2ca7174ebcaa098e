"""Heatmap-on-region shares and their decomposition (egma.gaze.quality)."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from egma.config import GazeConfig, PhantomConfig, get_preset
from egma.datasets.study import FixationTable, Reading, Study, Transcript
from egma.evaluation.bootstrap import Estimate
from egma.gaze.quality import (STAGES, TARGET_MEDIAN_SHARE, by_study, dilate_deg, heatmap_shares, mass_share,
                               point_shares, sentence_regions, share_decomposition, stage_medians, target_verdict,
                               true_fixation_shares)
from egma.phantom import truth
from egma.phantom.gaze_sim import OFF_TARGET_PROBABILITY
from egma.phantom.generate import plan_studies, simulate_study
from egma.phantom.render import Rendered


# --- constructed cases -------------------------------------------------------------------------

def test_mass_share_is_exact_on_a_known_map_and_soft_region():
    heat = np.zeros((4, 4))
    heat[0, 0], heat[0, 1], heat[3, 3] = 1.0, 3.0, 4.0          # mass 8
    region = np.zeros((4, 4))
    region[0, :] = 1.0                                         # holds 1 + 3
    region[3, 3] = 0.25                                        # a soft edge pixel: a quarter of 4
    assert mass_share(heat, region) == pytest.approx(5 / 8)
    stacked = mass_share(np.stack([heat, np.zeros((4, 4))]), np.stack([region, region]))
    assert stacked[0] == pytest.approx(5 / 8) and np.isnan(stacked[1])   # no mass: undefined


def test_a_uniform_map_scores_the_region_area_share():
    rng = np.random.default_rng(0)
    region = rng.random((30, 50)) < 0.2
    assert mass_share(np.ones((30, 50)), region) == pytest.approx(region.mean())


def test_point_shares_follow_the_pixel_convention_and_ignore_unlabelled_points():
    regions = np.zeros((2, 10, 10), bool)
    regions[0, 2:5, 2:5] = True                     # pixels (row, col) 2..4
    regions[1, :, 8:] = True
    x = np.array([2.0, 4.99, 5.0, 9.5, 10.2, 3.0])
    y = np.array([2.0, 4.99, 3.0, 0.5, 1.0, 3.0])
    labels = np.array([0, 0, 0, 1, 1, -1])
    weights = np.array([1.0, 2.0, 4.0, 1.0, 3.0, 100.0])
    # sentence 0: (2, 2) and (4.99, 4.99) lie in pixels 2 and 4, inside; x = 5.0 is pixel 5, outside.
    # sentence 1: (9.5, 0.5) inside; x = 10.2 is off the 10-pixel-wide image, outside. Label -1 counts nowhere.
    np.testing.assert_allclose(point_shares(x, y, weights, labels, regions), [3 / 7, 1 / 4])
    empty = point_shares(x[:3], y[:3], weights[:3], labels[:3], regions)
    assert np.isnan(empty[1])


def test_dilation_is_measured_in_degrees_per_axis():
    region = np.zeros((41, 41), bool)
    region[20, 20] = True
    grown = dilate_deg(region, 1.0, (10.0, 5.0))   # 10 px per degree along x, 5 along y
    assert grown[20, 30] and not grown[20, 31]      # 10 columns = 1 degree
    assert grown[25, 20] and not grown[26, 20]      # 5 rows = 1 degree
    np.testing.assert_array_equal(dilate_deg(region, 0.0, (10.0, 5.0)), region)


def test_sentence_regions_resolve_keys_as_the_generator_does():
    chest = np.zeros((6, 6), bool)
    chest[1:5, 1:5] = True
    heart, angles = np.zeros_like(chest), np.zeros_like(chest)
    heart[2, 2], angles[4, 1] = True, True
    masks = {"anatomy:chest": chest, "anatomy:heart": heart, "anatomy:costophrenic_angles": angles}
    got = sentence_regions(masks, [["anatomy:heart", "anatomy:costophrenic_angles"], ["finding:pleural_effusion"], []])
    np.testing.assert_array_equal(got[0], heart | angles)
    np.testing.assert_array_equal(got[1], angles)   # absent effusion -> where it would be
    np.testing.assert_array_equal(got[2], chest)    # no region -> the whole chest
    with pytest.raises(KeyError, match="finding:unicorn"):
        sentence_regions(masks, [["finding:unicorn"]])


def _box(shape, rows, cols):
    mask = np.zeros(shape, bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


@pytest.fixture
def constructed(tmp_path):
    """A 200 x 200 image, one reading, two sentences: one fixation deep in the heart while the first
    sentence is dictated, one 2.5 degrees above the lungs during the second. A truth sidecar with a
    second reader and calibration offsets for the point-mass stages."""
    shape = (200, 200)
    masks = Rendered(image=np.zeros(shape, np.uint8), finding_masks={},
                     anatomy_masks={"chest": np.ones(shape, bool), "heart": _box(shape, (20, 80), (20, 80)),
                                    "lungs": _box(shape, (100, 180), (100, 180))})
    truth_dir = tmp_path / "phantom_truth"
    truth.write_study_masks(truth_dir, "d1", masks)
    sentences = [{"text": "Heart normal.", "region": ["anatomy:heart"]},
                 {"text": "Lungs clear.", "region": ["anatomy:lungs"]},
                 {"text": "No fracture.", "region": ["anatomy:chest"]}]

    def fixations(x, y, durations, labels):
        start = np.arange(len(x), dtype=float)
        return {"t_start": start.tolist(), "t_end": (start + durations).tolist(), "x": x, "y": y,
                "sentence": labels, "on_target": [True] * len(x)}

    readings = {  # reader A: heart 1 s inside + 3 s outside; lungs 2 s inside. Reader B: heart 2 s inside.
        "A": {"source": "reflacx", "px_per_deg": 20.0, "calibration_offset_px": [100.0, 0.0],
              "fixations": fixations([50.5, 150.5, 120.5, 10.0], [50.5, 150.5, 120.5, 10.0],
                                     np.array([1.0, 3.0, 2.0, 5.0]), [0, 0, 1, -1])},
        "B": {"source": "egd-cxr", "px_per_deg": 20.0, "calibration_offset_px": [0.0, 10.0],
              "fixations": fixations([30.5], [30.5], np.array([2.0]), [0])},
    }
    truth.write_truth_index(truth_dir, PhantomConfig(), [{"dicom_id": "d1", "sentences": sentences,
                                                          "readings": readings}])
    transcript = Transcript(["HEART", "NORMAL", ".", "lungs", "clear", "."], np.array([0, .5, 1, 2, 2.5, 3.0]),
                            np.array([.5, 1, 1, 2.5, 3, 3.0]))
    seen = FixationTable(np.array([0.2, 2.2]), np.array([0.8, 2.8]), np.array([50.0, 140.0]), np.array([50.0, 50.0]))
    study = Study("s1", "p1", "d1", Path(), shape, ["Heart normal.", "Lungs clear."],
                  readings=[Reading("A", "rad", "reflacx", transcript, fixations=seen)])
    cfg = GazeConfig(fixation_method="dataset", sigma_deg=0.05, eye_voice_lead_s=0.0, default_px_per_deg=20.0)
    return study, truth_dir, cfg


def test_heatmap_shares_are_exact_for_maps_well_inside_or_outside_their_regions(constructed):
    study, truth_dir, cfg = constructed
    table = heatmap_shares([study], truth_dir, cfg, 100)
    assert list(table.sentence) == [0, 1]           # report matched to the truth by words, not case
    assert list(table.kind) == ["anatomy", "anatomy"]
    np.testing.assert_allclose(table.share, [1.0, 0.0], atol=1e-6)
    # tracker accuracy of a REFLACX reading, 0.5 deg = 10 px: the lungs are still 50 px away
    np.testing.assert_allclose(table.share_within_accuracy, [1.0, 0.0], atol=1e-6)
    assert set(table.margin_deg) == {0.5}
    wide = heatmap_shares([study], truth_dir, cfg, 100, margin_deg=3.0)   # 60 px: reaches the fixation
    np.testing.assert_allclose(wide.share_within_accuracy, [1.0, 1.0], atol=1e-6)
    # a uniform map over the image: the region's area share (up to the resize's soft edges)
    np.testing.assert_allclose(table.area_share, [60 * 60 / 200 ** 2, 80 * 80 / 200 ** 2], atol=2e-3)


def test_true_fixation_shares_average_the_readers_and_apply_each_offset(constructed):
    _, truth_dir, _ = constructed
    table = true_fixation_shares(truth_dir).set_index("sentence")
    assert list(table.index) == [0, 1]               # sentence 2 had no fixation of its own
    # heart: reader A 1 of 4 s inside, reader B 2 of 2 s -> (0.25 + 1) / 2
    assert table.loc[0, "true_share"] == pytest.approx(0.625)
    # shifted: A's (150.5, 50.5) is outside and (250.5, 150.5) off the image; B's (30.5, 40.5) inside
    assert table.loc[0, "true_offset_share"] == pytest.approx(0.5)
    assert table.loc[1, "true_share"] == pytest.approx(1.0) and table.loc[1, "true_offset_share"] == pytest.approx(0.0)
    assert list(table.n_readers) == [2, 1]
    assert table.loc[0, "offset_deg"] == pytest.approx((100 / 20 + 10 / 20) / 2)


def test_stage_medians_resample_whole_studies():
    values = np.array([0.1, 0.2, 0.3, 0.9, 0.8])
    study = np.array(["a", "a", "a", "b", "b"])
    padded = by_study(values, study)
    np.testing.assert_array_equal(padded[1], [0.9, 0.8, np.nan])
    table = pd.DataFrame({"dicom_id": study, "kind": ["anatomy"] * 3 + ["finding"] * 2,
                          **{column: values for column in STAGES}})
    summary = stage_medians(table, np.random.default_rng(0), n_resamples=200)
    every = summary[summary.kind == "all"]
    assert list(every.stage) == list(STAGES.values())
    assert (every.value == 0.3).all()
    # resampling studies: each resample holds only a's values, only b's, or both -> medians 0.2, 0.85, 0.3
    assert every.ci_low.iloc[0] == pytest.approx(0.2) and every.ci_high.iloc[0] == pytest.approx(0.85)
    assert set(summary.kind) == {"all", "anatomy", "finding"}


def test_target_verdict_reads_the_interval():
    assert target_verdict(Estimate(0.8, 0.72, 0.85)) == "met"
    assert target_verdict(Estimate(0.72, 0.68, 0.75)).startswith("met by the point value")
    assert target_verdict(Estimate(0.68, 0.6, 0.71)).startswith("not met by the point value")
    assert target_verdict(Estimate(0.5, 0.4, 0.6)) == "not met"


# --- a fixed small phantom corpus --------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 phantom studies simulated in memory (seed 0) with their truth sidecar written to disk."""
    cfg = PhantomConfig(n_studies=12, seed=0)
    truth_dir = tmp_path_factory.mktemp("phantom") / "phantom_truth"
    studies, docs = [], []
    for job in plan_studies(cfg):
        sim = simulate_study(job, cfg)
        truth.write_study_masks(truth_dir, job.dicom_id, sim.rendered)
        docs.append(truth.study_truth(job, sim.rendered, {
            plan.reading_id: truth.reading_truth(plan, reading, timeline)
            for plan, reading, timeline in zip(job.readings, sim.simulations, sim.timelines)}))
        studies.append(sim.study)
    truth.write_truth_index(truth_dir, cfg, docs)
    preset = get_preset("ci")
    table = share_decomposition(studies, truth_dir, preset.gaze, preset.model.image_size)
    return studies, truth_dir, preset, table


def test_true_fixations_land_on_their_regions(corpus):
    *_, table = corpus
    assert table.dicom_id.nunique() >= 10 and len(table) >= 40
    # the simulated reader looks off target on purpose with probability OFF_TARGET_PROBABILITY
    assert table.true_share.median() >= 1 - OFF_TARGET_PROBABILITY - 0.05
    assert table.true_offset_share.median() < table.true_share.median()   # the offset costs mass


def test_book_heatmaps_meet_the_criterion_within_tracker_accuracy(corpus):
    *_, table = corpus
    assert table.share_within_accuracy.median() >= TARGET_MEDIAN_SHARE
    assert (table.share_within_accuracy >= table.share - 1e-9).all()
    assert set(table.margin_deg) <= {0.5, 1.0}
    # far above a map spread evenly over the image
    assert table.share.median() > 3 * table.area_share.median()


def test_the_method_loses_little_beyond_the_calibration_offset(corpus):
    studies, truth_dir, preset, table = corpus
    # near-point-mass maps (sigma 0.05 deg) of the detected fixations in the method's windows against
    # the true fixations shifted by the offset: what detection and windowing lose, sentence by sentence
    point_like = share_decomposition(studies, truth_dir, dataclasses.replace(preset.gaze, sigma_deg=0.05),
                                     preset.model.image_size)
    assert (point_like.true_offset_share - point_like.share).median() <= 0.1
    # the book's 0.5 deg Gaussians spread some mass over region edges on top of that
    assert point_like.share.median() >= table.share.median()
    assert (table.true_offset_share - table.share).median() <= 0.2


def test_uniform_map_scores_each_regions_area_share(corpus):
    _, truth_dir, preset, table = corpus
    dicom = table.dicom_id.iloc[0]
    doc = truth.load_truth(truth_dir)["studies"][dicom]
    rows = table[table.dicom_id == dicom]
    regions = sentence_regions(truth.load_study_masks(truth_dir, dicom),
                               [doc["sentences"][i]["region"] for i in rows.sentence])
    np.testing.assert_allclose(rows.area_share, regions.mean(axis=(1, 2)), atol=5e-3)
