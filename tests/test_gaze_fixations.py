"""Fixation detection: agreement with the simulator's true fixations, and every bad-input rule."""
from dataclasses import replace

import numpy as np
import pytest

from egma.config import GazeConfig
from egma.datasets.errors import DataFormatError
from egma.datasets.study import FixationTable, GazeSamples, Reading, Transcript
from egma.gaze.fixations import (clean_fixations, detect_fixations, match_fixations, reading_fixations,
                                 regularise_samples)
from egma.phantom.dictation import dictate
from egma.phantom.gaze_sim import simulate_reading

CFG = GazeConfig()
SENTENCES = ["The heart size is normal.", "There is a small left pleural effusion.",
             "No pneumothorax is seen.", "The lungs are otherwise clear."]


def _boxes(h, w):
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    box = lambda x0, y0, x1, y1: (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    return [box(.4, .45, .7, .75), box(.6, .6, .9, .85), box(.1, .1, .45, .4), box(.1, .15, .9, .8)]


def _simulated(seed, rate, hw=(512, 512)):
    rng = np.random.default_rng(seed)
    timeline = dictate(SENTENCES, rng, start_s=4.0)
    return simulate_reading(_boxes(*hw), timeline, hw, 21.0, rate, rng)


@pytest.mark.parametrize("rate, floor", [(1000.0, 0.9), (60.0, 0.8)])
def test_book_method_matches_true_fixations(rate, floor):
    detected, true = [], []
    for seed in range(4):
        sim = _simulated(seed, rate)
        found = detect_fixations(sim.gaze_samples(), CFG, f"sim{seed}", image_size=(512, 512))
        match = match_fixations(found, sim.fixations)
        detected.append((match.n_detected, len(match.iou)))
        true.append(match.n_true)
    n_det, n_hit = np.sum(detected, axis=0)
    precision, recall = n_hit / n_det, n_hit / np.sum(true)
    assert precision >= floor and recall >= floor, (precision, recall)


def _steps(rate, positions_px, dwell_s=0.3, ppd=40.0):
    """Perfect fixations at `positions_px` joined by one-sample jumps."""
    n = int(dwell_s * rate)
    xy = np.repeat(np.asarray(positions_px, float), n, axis=0)
    t = np.arange(len(xy)) / rate
    return GazeSamples(t, xy[:, 0].copy(), xy[:, 1].copy(), rate, (ppd, ppd))


@pytest.mark.parametrize("method", ["ivt", "engbert", "idt"])
@pytest.mark.parametrize("rate", [1000.0, 60.0])
def test_every_method_finds_clean_fixations(method, rate):
    points = [(100, 100), (300, 120), (200, 400), (420, 300)]
    samples = _steps(rate, points)
    samples.x = samples.x + np.random.default_rng(0).normal(0, 0.2, len(samples))  # idle noise for Engbert
    found = detect_fixations(samples, CFG, image_size=(512, 512), method=method)
    assert len(found) == 4
    np.testing.assert_allclose(np.column_stack([found.x, found.y]), points, atol=3)
    assert np.all(found.duration > 0.2) and np.all(found.duration <= 0.3 + 1e-9)


def test_nan_samples_and_time_gaps_split_a_fixation():
    samples = _steps(1000.0, [(200, 200)], dwell_s=1.0)
    samples.x[400:500] = np.nan                       # a blink
    keep = np.ones(len(samples), bool)
    keep[700:800] = False                             # 100 ms with no samples at all
    gapped = GazeSamples(samples.t[keep], samples.x[keep], samples.y[keep], 1000.0, samples.px_per_deg)
    found = detect_fixations(gapped, CFG)
    np.testing.assert_allclose(found.t_start, [0.0, 0.5, 0.8], atol=0.015)
    np.testing.assert_allclose(found.t_end, [0.4, 0.7, 1.0], atol=0.015)


@pytest.mark.parametrize("method", ["ivt", "engbert"])
def test_a_reading_that_starts_and_ends_in_a_blink(method):
    samples = _steps(1000.0, [(200, 200), (300, 300)], dwell_s=0.5)
    samples.x[:50] = np.nan                           # tracking starts mid-blink ...
    samples.x[-30:] = np.nan                          # ... and ends in one
    samples.x = samples.x + np.random.default_rng(0).normal(0, 0.2, len(samples))
    found = detect_fixations(samples, CFG, method=method)
    np.testing.assert_allclose(found.t_start, [0.05, 0.5], atol=0.015)
    np.testing.assert_allclose(found.t_end, [0.5, 0.97], atol=0.015)


def test_off_image_samples_are_lost():
    samples = _steps(1000.0, [(100, 100), (900, 100), (300, 300)])   # the middle one is off a 512 image
    found = detect_fixations(samples, CFG, image_size=(512, 512))
    assert len(found) == 2 and np.all(found.x < 512)
    assert len(detect_fixations(samples, CFG)) == 3   # without a size nothing is dropped


def test_duplicate_timestamps_keep_the_first_sample():
    samples = _steps(60.0, [(100, 100), (300, 300)])
    dup = np.sort(np.concatenate([np.arange(len(samples)), [5, 20]]))
    doubled = GazeSamples(samples.t[dup], samples.x[dup] + np.isin(np.arange(len(dup)), [6, 22]) * 50,
                          samples.y[dup], 60.0, samples.px_per_deg)
    a, b = detect_fixations(samples, CFG), detect_fixations(doubled, CFG)
    for field in ("t_start", "t_end", "x", "y"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field))


def test_decreasing_timestamp_names_reading_row_and_column():
    samples = _steps(60.0, [(100, 100)])
    samples.t[7] = samples.t[3]
    with pytest.raises(DataFormatError) as err:
        detect_fixations(samples, CFG, reading_id="reading-42")
    assert err.value.row == 8 and err.value.column == "t" and "reading-42" in str(err.value)


def test_timestamp_jitter_is_not_a_gap():
    samples = _steps(60.0, [(100, 100)], dwell_s=1.0)
    samples.t = samples.t + np.random.default_rng(1).uniform(-0.004, 0.004, len(samples))
    samples.t.sort()
    grid = regularise_samples(samples, "r")
    assert np.isfinite(grid.x).all()
    assert len(detect_fixations(samples, CFG)) == 1


def test_angular_resolution_sets_the_velocity_scale():
    # A slow glide of 20 px/s: 1 deg/s at 20 px/deg (a fixation), 40 deg/s at 0.5 px/deg (not one).
    t = np.arange(1000) / 1000.0
    glide = lambda ppd: GazeSamples(t, 100 + 20 * t, np.full_like(t, 100.0), 1000.0, (ppd, ppd))
    assert len(detect_fixations(glide(20.0), CFG)) == 1
    assert len(detect_fixations(glide(0.5), CFG)) == 0


def test_short_fixations_are_dropped():
    samples = _steps(1000.0, [(100, 100), (300, 300)], dwell_s=0.05)
    assert len(detect_fixations(samples, replace(CFG, min_fixation_s=0.06))) == 0
    assert len(detect_fixations(samples, replace(CFG, min_fixation_s=0.04))) == 2


def test_dataset_fixations_are_cleaned_and_used_on_request():
    table = FixationTable(np.array([2.0, 0.0, 3.0, 4.0]), np.array([2.5, 0.4, 3.0, 4.2]),
                          np.array([10.0, 20.0, 30.0, 700.0]), np.array([10.0, np.nan, 30.0, 10.0]))
    reading = Reading("r", "a", "reflacx", Transcript([], np.empty(0), np.empty(0)),
                      samples=_steps(60.0, [(5, 5)]), fixations=table)
    used = reading_fixations(reading, replace(CFG, fixation_method="dataset"), (512, 512))
    np.testing.assert_array_equal(used.t_start, [2.0])   # NaN, zero-length and off-image rows dropped
    assert len(reading_fixations(reading, CFG, (512, 512))) == 1   # detected from samples instead
    assert len(clean_fixations(table)) == 2


def test_match_counts_only_overlaps_above_half_union():
    true = FixationTable(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5, 2.5]), np.zeros(3), np.zeros(3))
    det = FixationTable(np.array([0.05, 1.3, 2.0, 3.0]), np.array([0.5, 1.5, 2.5, 3.2]), np.zeros(4), np.zeros(4))
    match = match_fixations(det, true)
    np.testing.assert_array_equal(match.detected_index, [0, 2])
    np.testing.assert_array_equal(match.true_index, [0, 2])
    assert match.precision == 0.5 and match.recall == pytest.approx(2 / 3)
