"""Simulated radiologist gaze: statistics against real CXR readers
(GazeSearch), timing against the dictation, and the properties of the raw samples."""
import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from egma.phantom import gaze_sim
from egma.phantom.dictation import dictate
from egma.phantom.gaze_sim import dataset_fixations, simulate_reading
from test_dictation import REPORT

H, W = 512, 420
PX_PER_DEG = 23.0
N_READINGS = 50
LEAD_MAX = gaze_sim.EYE_VOICE_LEAD_S[1]


def random_masks(rng, n):
    yy, xx = np.mgrid[0:H, 0:W]
    masks = []
    for _ in range(n):
        cx, cy = rng.uniform(0.2 * W, 0.8 * W), rng.uniform(0.2 * H, 0.8 * H)
        rx, ry = rng.uniform(10, 0.25 * W), rng.uniform(10, 0.25 * H)
        if rng.random() < 0.5:
            masks.append(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1)
        else:
            masks.append((np.abs(xx - cx) <= rx) & (np.abs(yy - cy) <= ry))
    return masks


def make_case(seed, rate_hz=1000.0):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, len(REPORT) + 1))
    masks = random_masks(rng, n)
    timeline = dictate(REPORT[:n], rng, start_s=rng.uniform(2.0, 10.0))
    reading = simulate_reading(masks, timeline, (H, W), PX_PER_DEG, rate_hz, np.random.default_rng(seed + 1000))
    return masks, timeline, reading


@pytest.fixture(scope="module")
def cases():
    return [make_case(seed) for seed in range(N_READINGS)]


# ---------------------------------------------------------------- dictation

def test_fixation_durations_match_real_cxr_readers(cases):
    d = np.concatenate([r.fixations.duration[:-1] for _, _, r in cases])   # last one is cut
    assert len(d) > 1000
    assert 0.22 <= np.median(d) <= 0.34
    assert 0.12 <= np.percentile(d, 10) <= 0.20
    assert 0.42 <= np.percentile(d, 90) <= 0.62
    assert 0.27 <= d.mean() <= 0.37


def test_saccade_amplitudes_match_real_cxr_readers(cases):
    amp = np.concatenate([r.saccades.amplitude_px for _, _, r in cases]) / W
    assert 0.10 <= np.median(amp) <= 0.25
    assert 0.35 <= np.percentile(amp, 90) <= 0.60


def test_on_target_fixations_are_in_region_and_time(cases):
    max_offset_px = (max(hi for _, hi in gaze_sim.CALIBRATION_OFFSET_DEG.values()) + 0.5) * PX_PER_DEG
    off_target, in_windows = 0, 0
    leads = []
    for masks, tl, r in cases:
        f = r.fixations
        valid = ~np.isnan(r.x)
        for i, mask in enumerate(masks):
            sel = (f.sentence == i) & f.on_target
            if not sel.any():
                continue
            a, b = tl.sentence_spans[i]
            assert np.all(f.t_start[sel] >= a - LEAD_MAX - 1e-9) and np.all(f.t_start[sel] <= b)
            leads.append(a - f.t_start[sel].min())
            inside = mask[np.floor(f.y[sel]).astype(int), np.floor(f.x[sel]).astype(int)]  # pixel j spans [j, j+1)
            assert inside.mean() >= 0.9
            # The measured samples during those fixations land in the region up to the calibration offset.
            dist = distance_transform_edt(~mask)
            hits = []
            for t0, t1 in zip(f.t_start[sel], f.t_end[sel]):
                k = (r.t >= t0) & (r.t < t1) & valid
                if k.any():
                    x, y = np.clip(np.floor(r.x[k].mean()), 0, W - 1), np.clip(np.floor(r.y[k].mean()), 0, H - 1)
                    hits.append(dist[int(y), int(x)] <= max_offset_px)
            assert np.mean(hits) >= 0.7
        in_windows += (f.sentence >= 0).sum()
        off_target += ((f.sentence >= 0) & ~f.on_target).sum()
        assert np.all(~f.on_target[f.sentence < 0])
    assert 0.04 <= off_target / in_windows <= 0.2
    # The eyes reach the region before the words are spoken (eye-voice span).
    assert np.median(leads) > 0.2


# ---------------------------------------------------------------- gaze: samples

def test_samples_are_regular_and_nan_exactly_in_blinks(cases):
    for _, tl, r in cases[:10]:
        assert r.t.dtype == np.float64 and r.t[0] == 0.0
        step = np.diff(r.t)
        assert np.all(step > 0) and np.allclose(step, 1.0 / r.rate_hz)
        assert r.t[-1] > tl.sentence_spans[-1, 1]
        in_blink = np.zeros(len(r.t), bool)
        for a, b in r.blinks:
            assert 0.1 <= b - a <= 0.3
            in_blink |= (r.t >= a) & (r.t < b)
        assert np.array_equal(np.isnan(r.x), in_blink) and np.array_equal(np.isnan(r.y), in_blink)
        gaps = np.diff(np.concatenate([[0.0], r.blinks[:, 0]]))
        assert len(r.blinks) >= 1 and np.all((gaps >= 3.0) & (gaps <= 6.0))


def test_saccades_follow_the_main_sequence(cases):
    _, _, r = cases[0]
    s = r.saccades
    amp_deg = s.amplitude_px / PX_PER_DEG
    dur_ms = 1000 * (s.t_end - s.t_start)
    assert np.all(dur_ms >= 2.2 * amp_deg + 21 - 1e-6)
    assert np.all(s.peak_velocity_deg_s <= gaze_sim.PEAK_VELOCITY_DEG_S[1])
    # Measured: eye displacement across each saccade equals its amplitude, peak speed its peak.
    valid = ~np.isnan(r.x)
    checked = 0
    for a, b, amp, peak in zip(s.t_start, s.t_end, amp_deg, s.peak_velocity_deg_s):
        k = np.flatnonzero((r.t >= a - 0.005) & (r.t <= b + 0.005))
        if amp < 3 or not valid[k].all():
            continue
        disp = np.hypot(r.x[k[-1]] - r.x[k[0]], r.y[k[-1]] - r.y[k[0]]) / PX_PER_DEG
        speed = np.hypot(np.diff(r.x[k]), np.diff(r.y[k])) * r.rate_hz / PX_PER_DEG
        assert disp == pytest.approx(amp, abs=0.3 + 0.05 * amp)
        assert speed.max() == pytest.approx(peak, rel=0.25)
        checked += 1
    assert checked >= 5


def test_calibration_offset_noise_and_fixational_movements(cases):
    for _, _, r in cases[:10]:
        f = r.fixations
        off_deg = np.hypot(*r.calibration_offset_px) / PX_PER_DEG
        low, high = gaze_sim.CALIBRATION_OFFSET_DEG["high_rate" if r.rate_hz >= gaze_sim.HIGH_RATE_HZ else "low_rate"]
        assert low <= off_deg <= high
        k = np.searchsorted(f.t_start, r.t, side="right") - 1
        inner = (r.t > f.t_start[k] + 0.03) & (r.t < f.t_end[k] - 0.03) & ~np.isnan(r.x)
        err = np.stack([r.x - f.x[k], r.y - f.y[k]], axis=1)[inner]
        # Systematic error = the calibration offset; the rest (drift, microsaccades, noise) is small.
        assert np.allclose(err.mean(0), r.calibration_offset_px, atol=0.15 * PX_PER_DEG)
        spread = np.hypot(*(err - r.calibration_offset_px).T) / PX_PER_DEG
        assert 0.05 < np.median(spread) < 0.6
        s2s = np.hypot(np.diff(r.x), np.diff(r.y))[inner[1:] & inner[:-1]] / PX_PER_DEG
        assert 0.01 < np.sqrt(np.mean(s2s ** 2)) < 0.07


def test_same_seed_same_reading_and_rates_share_the_truth():
    _, _, a = make_case(3)
    _, _, b = make_case(3)
    _, _, c = make_case(4)
    for name in ("t", "x", "y", "blinks"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True)
    assert not np.array_equal(a.x, c.x, equal_nan=True)

    _, _, slow = make_case(3, rate_hz=60.0)
    for name in ("t_start", "t_end", "x", "y", "sentence", "on_target"):
        assert np.array_equal(getattr(a.fixations, name), getattr(slow.fixations, name))
    assert np.array_equal(a.saccades.t_start, slow.saccades.t_start)
    assert np.array_equal(a.blinks, slow.blinks)
    assert np.allclose(np.diff(slow.t), 1 / 60)
    # Both rates sample one trajectory: at shared instants they agree up to tracker noise.
    nearest = np.rint(slow.t * 1000).astype(int)
    keep = nearest < len(a.t)
    diff = np.hypot(a.x[nearest[keep]] - slow.x[keep], a.y[nearest[keep]] - slow.y[keep]) / PX_PER_DEG
    assert np.nanmedian(diff) < 0.3
    # The 60 Hz tracker is noisier: sample-to-sample jitter is larger though its samples are sparser.
    jitter = lambda r: np.nanmedian(np.hypot(np.diff(r.x), np.diff(r.y)))
    assert jitter(slow) > 2 * jitter(a)


def test_vendor_fixations_resemble_but_differ_from_truth(cases):
    for _, _, r in cases[:10]:
        truth = r.fixations
        v = dataset_fixations(r, np.random.default_rng(0))
        assert 0.6 * len(truth) <= len(v) <= len(truth)
        assert np.all(v.duration >= 0.08 - 1e-9) and np.all(v.t_start[1:] >= v.t_end[:-1])
        # A vendor fixation never spans a real saccade: it is one true fixation or a merged run.
        big = r.saccades.amplitude_px >= PX_PER_DEG
        for a, b in zip(r.saccades.t_start[big], r.saccades.t_end[big]):
            assert not np.any((v.t_start < b) & (v.t_end > a))
        k0 = np.searchsorted(truth.t_start, v.t_start, side="right") - 1
        k1 = np.searchsorted(truth.t_start, v.t_end, side="right") - 1
        assert np.all(v.t_start > truth.t_start[k0])                     # detected late
        # Only fixations less than the merge distance apart are merged.
        step = np.hypot(np.diff(truth.x), np.diff(truth.y)) / PX_PER_DEG
        for i, j in zip(k0[k0 != k1], k1[k0 != k1]):
            assert np.all(step[i:j] < 1.0)
        for a, b in r.blinks:
            assert not np.any((v.t_start < b) & (v.t_end > a))
        # Positions carry the calibration offset.
        shift = np.stack([v.x - truth.x[k0], v.y - truth.y[k0]], axis=1)[k0 == k1]
        assert np.allclose(np.median(shift, axis=0), r.calibration_offset_px, atol=0.2 * PX_PER_DEG)


def test_bad_input_is_rejected():
    rng = np.random.default_rng(0)
    tl = dictate(REPORT[:2], rng, 1.0)
    masks = random_masks(rng, 2)
    with pytest.raises(ValueError, match="2 sentences"):
        simulate_reading(masks[:1], tl, (H, W), PX_PER_DEG, 1000, rng)
    with pytest.raises(ValueError, match="region mask 1 is empty"):
        simulate_reading([masks[0], np.zeros((H, W), bool)], tl, (H, W), PX_PER_DEG, 1000, rng)
    with pytest.raises(ValueError, match="shape"):
        simulate_reading([masks[0], masks[1][:10]], tl, (H, W), PX_PER_DEG, 1000, rng)
