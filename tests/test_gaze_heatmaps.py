"""Sentence heatmaps: where their mass goes, their geometry, fallbacks and several readers."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from dictated import dictated

from egma.config import GazeConfig
from egma.datasets.study import FixationTable, Reading, Study
from egma.gaze.geometry import to_model_frame
from egma.gaze.heatmaps import (GazeFallbackWarning, combine_readings, reading_heatmaps, render_heatmaps,
                                study_heatmaps, window_weights)
from egma.phantom.dictation import dictate
from egma.phantom.gaze_sim import simulate_reading

CFG = GazeConfig()
HW = (512, 440)   # portrait, so the padding is exercised
SENTENCES = ["The heart is enlarged.", "The right lung is clear.", "There is a small left pleural effusion.",
             "Both lungs are well expanded.", "A nodule in the right upper lobe."]


def _region_masks(h, w):
    """A fixed small set of chest regions of realistic size: heart, right lung, left lung with its
    costophrenic angle, both lungs, a nodule (image left = patient right)."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    ellipse = lambda cx, cy, rx, ry: ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    right, left = ellipse(.3, .5, .15, .3), ellipse(.7, .5, .15, .3)
    return [ellipse(.55, .62, .17, .13), right, left | ellipse(.8, .78, .07, .06), right | left,
            ellipse(.3, .3, .06, .05)]


def _study(seed, rate, n_readers=1):
    masks = _region_masks(*HW)
    readings = []
    for k in range(n_readers):
        rng = np.random.default_rng([seed, k])
        timeline = dictate(SENTENCES, rng, start_s=4.0)
        sim = simulate_reading(masks, timeline, HW, 21.0, rate, rng)
        readings.append(Reading(f"s{seed}r{k}", f"reader{k}", "reflacx", timeline.to_transcript(), sim.gaze_samples()))
    return Study(f"s{seed}", "p", "d", Path("x.jpg"), HW, SENTENCES, readings=readings)


@pytest.mark.parametrize("rate", [1000.0, 60.0])
def test_sentence_mass_lies_in_the_sentence_region(rate):
    """The simulator gives every reading a 0.3-1 deg calibration offset, as real trackers have, so
    the strict share is bounded well below 1; with the usual AOI margin of the tracker's accuracy
    (1 deg = 21 px here) most of the mass is inside."""
    masks = np.stack(_region_masks(*HW))
    regions = to_model_frame(masks.astype(np.float32), 224) > 0.5
    margin = to_model_frame(np.stack([binary_dilation(m, iterations=21) for m in masks]).astype(np.float32), 224) > 0.5
    strict, loose = [], []
    for seed in range(12):
        maps = study_heatmaps(_study(seed, rate), CFG, 224)
        np.testing.assert_allclose(maps.maps.sum(axis=(1, 2)), 1.0)
        strict.append((maps.maps * regions).sum(axis=(1, 2)))
        loose.append((maps.maps * margin).sum(axis=(1, 2)))
    assert np.median(strict) >= 0.6 and np.median(loose) >= 0.8, (np.median(strict), np.median(loose))
    # ... far more than a map spread evenly over the image would put there.
    assert np.median(strict) > 2 * np.median(regions.mean(axis=(1, 2)))


def _reference_maps(fixations, weights, hw, size, sigma_px, truncate):
    """Slow and obvious: Gaussians on every original pixel, then the image's pad + resize."""
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]] + 0.5
    out = []
    for row in weights:
        image = np.zeros(hw)
        for w, x, y in zip(row, fixations.x, fixations.y):
            dx, dy = (xx - x) / sigma_px[0], (yy - y) / sigma_px[1]
            image += w * np.exp(-0.5 * (dx * dx + dy * dy)) * ((np.abs(dx) <= truncate) & (np.abs(dy) <= truncate))
        frame = to_model_frame(image.astype(np.float32), size).astype(float)
        out.append(frame / frame.sum())
    return np.stack(out)


@pytest.mark.parametrize("hw", [(300, 200), (200, 300), (256, 256)])
def test_fast_maps_equal_rendering_then_padding_and_resizing(hw):
    rng = np.random.default_rng(0)
    fix = FixationTable(np.arange(6.0), np.arange(6.0) + 0.5, rng.uniform(20, hw[1] - 20, 6), rng.uniform(20, hw[0] - 20, 6))
    weights = rng.uniform(0, 1, (2, 6))
    fast = render_heatmaps(fix, weights, hw, 64, (12.0, 9.0), 3.0)
    slow = _reference_maps(fix, weights, hw, 64, (12.0, 9.0), 3.0)
    assert np.corrcoef(fast.ravel(), slow.ravel())[0, 1] > 0.995
    grid = np.arange(64) + 0.5
    for f, s in zip(fast, slow):
        assert abs(f.sum(0) @ grid - s.sum(0) @ grid) < 0.1 and abs(f.sum(1) @ grid - s.sum(1) @ grid) < 0.1
        assert f[s == 0].sum() < 0.01   # no mass on the padding


def test_sigma_is_in_degrees_of_visual_angle():
    fix = FixationTable(np.array([0.0]), np.array([1.0]), np.array([128.0]), np.array([128.0]))
    spread = []
    for ppd in (10.0, 20.0):
        m = render_heatmaps(fix, np.ones((1, 1)), (256, 256), 256, (CFG.sigma_deg * ppd,) * 2, 6.0)[0]
        spread.append(m.sum(0) @ (np.arange(256) + 0.5 - 128) ** 2)
    assert spread[1] / spread[0] == pytest.approx(4.0, rel=0.02)


def test_window_weights_count_only_time_inside_the_window():
    fix = FixationTable(np.array([0.0, 1.0, 3.0]), np.array([0.5, 2.0, 3.2]), np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(window_weights(fix, np.array([[0.25, 1.5], [2.5, 2.9]])),
                               [[0.25, 0.5, 0.0], [0.0, 0.0, 0.0]])


def _reading(reading_id, sentences_times, fixations):
    return Reading(reading_id, "a", "reflacx", dictated(sentences_times), fixations=fixations)


def test_sentence_without_gaze_falls_back_to_the_whole_reading_and_is_flagged():
    fix = FixationTable(np.array([1.0, 2.0]), np.array([1.5, 2.5]), np.array([50.0, 150.0]), np.array([50.0, 150.0]))
    reading = _reading("r1", [("heart normal", 1.0, 1.8), ("lungs clear", 10.0, 11.0)], fix)
    cfg = replace(CFG, fixation_method="dataset")
    with pytest.warns(GazeFallbackWarning, match="r1: sentences \\[1\\]"):
        rh = reading_heatmaps(reading, (200, 200), cfg, 64)
    assert rh.fallback.tolist() == [False, True]
    np.testing.assert_array_equal(rh.maps[1], rh.whole)
    assert not np.allclose(rh.maps[0], rh.whole)   # the first window holds only part of the time


def test_readers_count_equally_and_unmatched_sentences_fall_back():
    cfg = replace(CFG, fixation_method="dataset")
    one = FixationTable(np.array([1.0]), np.array([1.5]), np.array([40.0]), np.array([40.0]))
    two = FixationTable(np.array([1.0, 5.0]), np.array([4.0, 5.5]), np.array([160.0, 100.0]), np.array([160.0, 100.0]))
    a = reading_heatmaps(_reading("a", [("Heart normal", 1.0, 2.0)], one), (200, 200), cfg, 64)
    b = reading_heatmaps(_reading("b", [("heart normal", 1.0, 4.0), ("no effusion", 5.0, 6.0)], two), (200, 200), cfg, 64)
    with pytest.warns(GazeFallbackWarning, match="not found"):
        combined = combine_readings(["Heart normal.", "No effusion.", "Bones intact."], [a, b])
    np.testing.assert_allclose(combined.maps[0], (a.maps[0] + b.maps[0]) / 2)   # not weighted by 3 s vs 0.5 s
    np.testing.assert_allclose(combined.maps[1], b.maps[1])
    np.testing.assert_allclose(combined.maps[2], (a.whole + b.whole) / 2)
    assert combined.n_readers.tolist() == [2, 1, 0] and combined.fallback.tolist() == [False, False, True]


def test_study_without_gaze_has_no_maps():
    study = Study("s", "p", "d", Path("x"), HW, SENTENCES)
    assert study_heatmaps(study, CFG, 224) is None
