"""A simulated radiologist's eyes while reading a chest X-ray and dictating its report.

The reading is generated in two stages.
1. Events (rate-independent): a sequence of fixations and saccades. Before dictation starts the
   reader surveys the whole chest; from a little before each sentence is spoken (the eye-voice
   lead, drawn per sentence) until its last word, fixations land in that sentence's region, with
   occasional off-target fixations elsewhere on the chest; between sentences the reader searches
   again. Fixation durations are lognormal, fitted to 29,118 real CXR fixations (GazeSearch:
   median 0.28 s, 10th/90th pct 0.16/0.52 s). Each saccade target is the candidate point of the
   allowed area whose distance best matches an amplitude drawn from a lognormal, tuned so that
   amplitudes come out as in GazeSearch (median ~17 %, 90th pct ~48 % of the image width).
2. Samples: a continuous trajectory on a 1 kHz latent grid - fixations joined by minimum-jerk
   saccades on the main sequence (duration 2.2 ms/deg + 21 ms, peak velocity capped per reader),
   plus ocular drift (Ornstein-Uhlenbeck), microsaccades and a per-reading calibration offset -
   sampled at the tracker's rate, with Gaussian tracker noise and NaN during blinks. Everything
   random except the tracker noise is drawn before the sampling rate matters, so the same seed
   gives the same true fixations at 60 Hz and at 1000 Hz.

Coordinates are image pixels (x right, y down); times are seconds from the start of recording.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.signal import lfilter

from egma.datasets.study import FixationTable, GazeSamples
from egma.phantom.dictation import DictationTimeline

# Fixation duration, lognormal (GazeSearch CXR fixations: median 0.28, p10 0.16, p90 0.52 s).
FIXATION_MEDIAN_S = 0.28
FIXATION_SIGMA = 0.48
FIXATION_CLIP_S = (0.06, 2.5)
# Desired saccade amplitude as a fraction of image width, lognormal. Wider than the observed
# target (median 0.17, p90 0.48) because regions cap the amplitudes actually reachable; tuned on
# anatomy-like regions (heart, lungs, angles, apices, nodule): observed median 0.17, p90 0.48.
DESIRED_AMPLITUDE_MEDIAN = 0.18
DESIRED_AMPLITUDE_SIGMA = 0.85
N_TARGET_CANDIDATES = 32
# Eye-voice span: gaze reaches a sentence's region this long before its first word.
EYE_VOICE_LEAD_S = (0.5, 1.0)
OFF_TARGET_PROBABILITY = 0.10
# Main sequence: duration = slope * amplitude + intercept; peak velocity saturates per reader.
SACCADE_MS_PER_DEG = 2.2
SACCADE_INTERCEPT_MS = 21.0
PEAK_VELOCITY_DEG_S = (450.0, 600.0)
_MIN_JERK_PEAK = 1.875            # peak / mean velocity of a minimum-jerk profile
# Fixational eye movements.
DRIFT_SD_DEG = 0.08               # stationary spread of drift around the fixation point
DRIFT_TAU_S = 0.25                # drift's mean-reversion time
MICROSACCADE_RATE_HZ = 1.0
MICROSACCADE_OFFSET_DEG = (0.2, 0.6)  # median, max distance of its landing from the anchor
_MICROSACCADE_MAX_S = 0.025       # main-sequence duration of the largest (1.2 deg) microsaccade
# Blinks and tracker.
BLINK_INTERVAL_S = (3.0, 6.0)
BLINK_DURATION_S = (0.10, 0.30)
# Systematic calibration error per reading, by tracker class: the vendors' stated typical accuracy
# (EyeLink 1000 Plus 0.25-0.5 deg; Gazepoint GP3 0.5-1.0 deg).
CALIBRATION_OFFSET_DEG = {"high_rate": (0.25, 0.5), "low_rate": (0.5, 1.0)}
# White Gaussian tracker noise, radial RMS around the true point: EyeLink-class trackers
# (REFLACX, 1000 Hz) vs the 60 Hz Gazepoint of EGD-CXR. Velocity-based fixation filters on the
# 1000 Hz samples need the usual velocity smoothing (e.g. Savitzky-Golay over ~20 ms).
TRACKER_NOISE_DEG = {"high_rate": 0.02, "low_rate": 0.10}
HIGH_RATE_HZ = 250.0
TAIL_AFTER_DICTATION_S = (0.5, 1.5)
LATENT_RATE_HZ = 1000.0


@dataclass
class TrueFixations(FixationTable):
    """Where the eyes really rested. `sentence` is the sentence whose gaze window the fixation
    starts in (-1: free search before or between sentences); `on_target` says whether it was
    aimed at that sentence's region (False for the occasional look elsewhere and for search)."""
    sentence: np.ndarray   # (F,) int
    on_target: np.ndarray  # (F,) bool


@dataclass
class TrueSaccades:
    t_start: np.ndarray
    t_end: np.ndarray
    amplitude_px: np.ndarray
    peak_velocity_deg_s: np.ndarray

    def __len__(self) -> int:
        return len(self.t_start)


@dataclass
class SimulatedReading:
    """Raw samples (NaN during blinks) and the ground truth that generated them."""
    t: np.ndarray                 # (N,) float64 seconds, step 1 / rate_hz
    x: np.ndarray                 # (N,) float64 image pixels
    y: np.ndarray
    rate_hz: float
    px_per_deg: float
    fixations: TrueFixations
    saccades: TrueSaccades
    blinks: np.ndarray            # (B, 2) seconds: start, end
    calibration_offset_px: np.ndarray  # (2,) x, y
    eye_voice_lead_s: np.ndarray  # (S,) per sentence
    gaze_windows: np.ndarray      # (S, 2) when fixations count as sentence i's

    def gaze_samples(self) -> GazeSamples:
        return GazeSamples(self.t, self.x, self.y, self.rate_hz, (self.px_per_deg, self.px_per_deg))


def default_chest_mask(image_hw: tuple[int, int]) -> np.ndarray:
    """An ellipse over the thorax of a frontal CXR, used when the caller has no chest mask."""
    h, w = image_hw
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx - 0.5 * w) / (0.45 * w)) ** 2 + ((yy - 0.5 * h) / (0.46 * h)) ** 2 <= 1.0


def _pixels(mask: np.ndarray) -> np.ndarray:
    """Centres of the mask's pixels; pixel (row j, column i) spans [i, i+1) x [j, j+1), as in egma.gaze.geometry."""
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], axis=1).astype(np.float64) + 0.5


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    return tau ** 3 * (10.0 - 15.0 * tau + 6.0 * tau ** 2)


def _saccade_duration_s(amplitude_deg, peak_velocity_deg_s):
    main_sequence = (SACCADE_MS_PER_DEG * amplitude_deg + SACCADE_INTERCEPT_MS) / 1000.0
    return np.maximum(main_sequence, _MIN_JERK_PEAK * amplitude_deg / peak_velocity_deg_s)


def _gaze_windows(timeline: DictationTimeline, leads: np.ndarray) -> np.ndarray:
    """Sentence i's window: from its first word minus the lead until its last word, cut short
    where the next sentence's window opens."""
    spans = timeline.sentence_spans
    start = np.maximum.accumulate(np.maximum(spans[:, 0] - leads, 0.0))
    end = np.minimum(spans[:, 1], np.append(start[1:], np.inf))
    return np.stack([start, np.maximum(end, start)], axis=1)


class _TargetChooser:
    """Picks where the next fixation lands and what it counts as."""

    def __init__(self, region_masks, chest_mask, windows, image_w, rng):
        self.masks = region_masks
        self.region_px = [_pixels(m) for m in region_masks]
        self.chest_px = _pixels(chest_mask)
        self.windows = windows
        self.image_w = image_w
        self.rng = rng

    def phase(self, t: float) -> int:
        i = int(np.searchsorted(self.windows[:, 0], t, side="right")) - 1
        return i if i >= 0 and t < self.windows[i, 1] else -1

    def _candidates(self, pool: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        pts = pool[self.rng.integers(0, len(pool), N_TARGET_CANDIDATES)]
        pts = pts + self.rng.uniform(-0.45, 0.45, pts.shape)   # stays inside its pixel
        if exclude is not None:
            keep = ~exclude[np.floor(pts[:, 1]).astype(int), np.floor(pts[:, 0]).astype(int)]
            if keep.any():
                pts = pts[keep]
        return pts

    def choose(self, t: float, current: np.ndarray) -> tuple[np.ndarray, int, bool]:
        sentence = self.phase(t)
        on_target = sentence >= 0 and self.rng.random() >= OFF_TARGET_PROBABILITY
        if on_target:
            pts = self._candidates(self.region_px[sentence], None)
        else:
            pts = self._candidates(self.chest_px, self.masks[sentence] if sentence >= 0 else None)
        desired = self.image_w * self.rng.lognormal(np.log(DESIRED_AMPLITUDE_MEDIAN), DESIRED_AMPLITUDE_SIGMA)
        distance = np.hypot(*(pts - current).T)
        return pts[np.argmin(np.abs(distance - desired))], sentence, on_target


def _fixation_sequence(chooser: _TargetChooser, t_end: float, px_per_deg: float,
                       peak_velocity: float, rng: np.random.Generator):
    """Alternate fixations and saccades from t = 0 to t_end (sequential: each target depends on
    where the eyes are and on when they land)."""
    pos, sentence, on_target = chooser.choose(0.0, chooser.chest_px.mean(axis=0))
    fix, sac = [], []
    t = 0.0
    while True:
        duration = np.clip(rng.lognormal(np.log(FIXATION_MEDIAN_S), FIXATION_SIGMA), *FIXATION_CLIP_S)
        fix_end = min(t + duration, t_end)
        fix.append((t, fix_end, pos[0], pos[1], sentence, on_target))
        if fix_end >= t_end:
            break
        # Aim by the phase at the saccade's start; re-aim if it lands in a different phase.
        target, sentence, on_target = chooser.choose(fix_end, pos)
        amplitude = float(np.hypot(*(target - pos)))
        landing = fix_end + float(_saccade_duration_s(amplitude / px_per_deg, peak_velocity))
        if chooser.phase(landing) != sentence:
            target, sentence, on_target = chooser.choose(landing, pos)
            amplitude = float(np.hypot(*(target - pos)))
            landing = fix_end + float(_saccade_duration_s(amplitude / px_per_deg, peak_velocity))
            if chooser.phase(landing) != sentence:   # landed across a window edge: search
                sentence, on_target = -1, False
        if landing >= t_end:
            fix[-1] = (t, t_end) + fix[-1][2:]
            break
        sac.append((fix_end, landing, amplitude))
        t, pos = landing, target
    f = np.array(fix, dtype=np.float64).reshape(-1, 6)
    s = np.array(sac, dtype=np.float64).reshape(-1, 3)
    fixations = TrueFixations(t_start=f[:, 0], t_end=f[:, 1], x=f[:, 2], y=f[:, 3],
                              sentence=f[:, 4].astype(int), on_target=f[:, 5].astype(bool))
    amp_deg = s[:, 2] / px_per_deg
    peak = np.minimum(_MIN_JERK_PEAK * amp_deg / np.maximum(s[:, 1] - s[:, 0], 1e-9), peak_velocity)
    saccades = TrueSaccades(t_start=s[:, 0], t_end=s[:, 1], amplitude_px=s[:, 2], peak_velocity_deg_s=peak)
    return fixations, saccades


def _saccadic_path(fix: TrueFixations, t: np.ndarray) -> np.ndarray:
    """(N, 2) positions: at the fixation point during fixations, minimum-jerk between them."""
    k = np.searchsorted(fix.t_start, t, side="right") - 1
    nxt = np.minimum(k + 1, len(fix) - 1)
    in_saccade = (t >= fix.t_end[k]) & (k < len(fix) - 1)
    span = np.where(in_saccade, fix.t_start[nxt] - fix.t_end[k], 1.0)
    s = np.where(in_saccade, _min_jerk(np.clip((t - fix.t_end[k]) / span, 0.0, 1.0)), 0.0)
    x = fix.x[k] + s * (fix.x[nxt] - fix.x[k])
    y = fix.y[k] + s * (fix.y[nxt] - fix.y[k])
    return np.stack([x, y], axis=1)


def _drift(n: int, px_per_deg: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) slow ocular drift: white noise through two first-order low-passes, so the path
    is smooth (drift speeds well under 1 deg/s, not the jagged velocity of a random walk) and
    mean-reverting. Scaled to a stationary SD of DRIFT_SD_DEG; a burn-in makes it stationary
    from the first sample."""
    a = np.exp(-1.0 / (LATENT_RATE_HZ * DRIFT_TAU_S))
    burn = int(5 * DRIFT_TAU_S * LATENT_RATE_HZ)
    gain = np.sqrt((1.0 + a * a) / (1.0 - a * a) ** 3)   # SD of the cascade for unit white noise
    eps = rng.normal(0.0, DRIFT_SD_DEG * px_per_deg / gain, (n + burn, 2))
    return lfilter([1.0], np.convolve([1.0, -a], [1.0, -a]), eps, axis=0)[burn:]


def _microsaccades(fix: TrueFixations, t: np.ndarray, px_per_deg: float, peak_velocity: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(N, 2) offsets: each microsaccade moves the eye to a new small offset from the fixation
    point (so they also undo earlier ones instead of wandering away)."""
    t_total = t[-1]
    onset = np.sort(rng.uniform(0.0, t_total, rng.poisson(MICROSACCADE_RATE_HZ * t_total)))
    angle = rng.uniform(0.0, 2 * np.pi, len(onset))
    median, largest = MICROSACCADE_OFFSET_DEG
    radius = np.minimum(rng.lognormal(np.log(median), 0.5, len(onset)), largest) * px_per_deg
    offsets = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    k = np.searchsorted(fix.t_start, onset, side="right") - 1
    keep = onset + _MICROSACCADE_MAX_S < fix.t_end[k]                        # inside fixations
    keep &= np.append(np.diff(onset) > _MICROSACCADE_MAX_S, True)            # not overlapping
    onset, offsets = onset[keep], offsets[keep]
    if len(onset) == 0:
        return np.zeros((len(t), 2))
    prev = np.vstack([np.zeros((1, 2)), offsets[:-1]])
    duration = _saccade_duration_s(np.hypot(*(offsets - prev).T) / px_per_deg, peak_velocity)
    j = np.searchsorted(onset, t, side="right") - 1
    jj = np.maximum(j, 0)
    s = _min_jerk(np.clip((t - onset[jj]) / duration[jj], 0.0, 1.0))
    out = prev[jj] + s[:, None] * (offsets[jj] - prev[jj])
    out[j < 0] = 0.0
    return out


def _blinks(t_total: float, rng: np.random.Generator) -> np.ndarray:
    n = int(t_total / BLINK_INTERVAL_S[0]) + 2
    start = np.cumsum(rng.uniform(*BLINK_INTERVAL_S, n))
    end = start + rng.uniform(*BLINK_DURATION_S, n)
    keep = end < t_total
    return np.stack([start[keep], end[keep]], axis=1)


def _inside(intervals: np.ndarray, t: np.ndarray) -> np.ndarray:
    i = np.searchsorted(intervals[:, 0], t, side="right") - 1
    return (i >= 0) & (t < intervals[np.maximum(i, 0), 1])


def simulate_reading(region_masks: Sequence[np.ndarray], timeline: DictationTimeline,
                     image_hw: tuple[int, int], px_per_deg: float, rate_hz: float,
                     rng: np.random.Generator, *, chest_mask: np.ndarray | None = None,
                     tracker_noise_deg: float | None = None) -> SimulatedReading:
    """Simulate the raw gaze of one reading. `region_masks[i]` (bool, image_hw) is where the eyes
    go while sentence i of `timeline` is dictated; `chest_mask` is where search and off-target
    fixations land (default: an ellipse over the thorax); `tracker_noise_deg` is the noise's
    radial RMS (default by rate, TRACKER_NOISE_DEG)."""
    h, w = image_hw
    if len(region_masks) != timeline.n_sentences:
        raise ValueError(f"{len(region_masks)} region masks for {timeline.n_sentences} sentences")
    masks = [np.asarray(m, dtype=bool) for m in region_masks]
    for i, m in enumerate(masks):
        if m.shape != (h, w):
            raise ValueError(f"region mask {i} has shape {m.shape}, expected {(h, w)}")
        if not m.any():
            raise ValueError(f"region mask {i} is empty: sentence {i} has nowhere to look")
    chest = default_chest_mask(image_hw) if chest_mask is None else np.asarray(chest_mask, dtype=bool)
    if chest.shape != (h, w) or not chest.any():
        raise ValueError(f"chest mask must be a non-empty bool array of shape {(h, w)}")
    if px_per_deg <= 0 or rate_hz <= 0:
        raise ValueError(f"px_per_deg and rate_hz must be positive, got {px_per_deg}, {rate_hz}")

    # Stage 1: events. Nothing here depends on rate_hz.
    leads = rng.uniform(*EYE_VOICE_LEAD_S, timeline.n_sentences)
    windows = _gaze_windows(timeline, leads)
    t_total = float(timeline.sentence_spans[-1, 1] + rng.uniform(*TAIL_AFTER_DICTATION_S))
    peak_velocity = rng.uniform(*PEAK_VELOCITY_DEG_S)
    chooser = _TargetChooser(masks, chest, windows, w, rng)
    fixations, saccades = _fixation_sequence(chooser, t_total, px_per_deg, peak_velocity, rng)
    angle = rng.uniform(0.0, 2 * np.pi)
    low, high = CALIBRATION_OFFSET_DEG["high_rate" if rate_hz >= HIGH_RATE_HZ else "low_rate"]
    offset = (low + (high - low) * rng.uniform()) * px_per_deg * np.array([np.cos(angle), np.sin(angle)])
    blinks = _blinks(t_total, rng)

    t_latent = np.arange(int(t_total * LATENT_RATE_HZ) + 1) / LATENT_RATE_HZ
    latent = (_saccadic_path(fixations, t_latent) + _drift(len(t_latent), px_per_deg, rng)
              + _microsaccades(fixations, t_latent, px_per_deg, peak_velocity, rng) + offset)

    # Stage 2: the tracker samples the latent trajectory at its own rate.
    if rate_hz == LATENT_RATE_HZ:
        t, xy = t_latent, latent
    else:
        t = np.arange(int(t_total * rate_hz) + 1) / rate_hz
        xy = np.stack([np.interp(t, t_latent, latent[:, 0]), np.interp(t, t_latent, latent[:, 1])], axis=1)
    if tracker_noise_deg is None:
        tracker_noise_deg = TRACKER_NOISE_DEG["high_rate" if rate_hz >= HIGH_RATE_HZ else "low_rate"]
    xy = xy + rng.normal(0.0, tracker_noise_deg * px_per_deg / np.sqrt(2.0), xy.shape)
    xy[_inside(blinks, t)] = np.nan
    return SimulatedReading(t=t, x=xy[:, 0].copy(), y=xy[:, 1].copy(), rate_hz=float(rate_hz),
                            px_per_deg=float(px_per_deg), fixations=fixations, saccades=saccades,
                            blinks=blinks, calibration_offset_px=offset, eye_voice_lead_s=leads,
                            gaze_windows=windows)


def dataset_fixations(reading: SimulatedReading, rng: np.random.Generator, *,
                      merge_deg: float = 1.0, min_duration_s: float = 0.08) -> FixationTable:
    """The fixation table an eye tracker's own filter would ship (REFLACX / EGD-CXR
    `fixations.csv`), derived from the truth by the ways such filters differ from it:
    - onsets detected a little late and offsets a little early (velocity-filter latency),
      snapped to sample times;
    - consecutive fixations less than `merge_deg` apart merged (the saccade between them is
      below the filter's threshold);
    - a fixation interrupted by a blink keeps only its longest blink-free part;
    - fixations shorter than `min_duration_s` dropped;
    - positions are the mean of the measured samples, so they carry the calibration offset,
      drift and noise.
    """
    fix, rate = reading.fixations, reading.rate_hz
    period = 1.0 / rate
    start = fix.t_start + rng.uniform(0.0, max(2 * period, 0.008), len(fix))
    end = fix.t_end - rng.uniform(0.0, max(period, 0.004), len(fix))
    start, end = np.ceil(start * rate - 1e-9) / rate, np.floor(end * rate + 1e-9) / rate

    step = np.hypot(np.diff(fix.x), np.diff(fix.y))
    group = np.concatenate([[0], np.cumsum(step >= merge_deg * reading.px_per_deg)])
    first = np.flatnonzero(np.diff(np.concatenate([[-1], group])))
    start = start[first]
    end = np.maximum.reduceat(end, first)

    for b0, b1 in reading.blinks:
        hit = (start < b1) & (end > b0)
        before, after = b0 - start, end - b1
        keep_after = hit & (after > before)
        keep_before = hit & ~keep_after
        start = np.where(keep_after, np.ceil(b1 * rate) / rate, start)
        end = np.where(keep_before, np.floor(b0 * rate) / rate, end)

    keep = end - start >= min_duration_s - 1e-9
    start, end = start[keep], end[keep]
    valid = ~np.isnan(reading.x)
    cum = [np.concatenate([[0.0], np.cumsum(np.where(valid, v, 0.0))]) for v in (reading.x, reading.y, valid)]
    lo = np.searchsorted(reading.t, start - 1e-9, side="left")
    hi = np.searchsorted(reading.t, end + 1e-9, side="right")
    count = cum[2][hi] - cum[2][lo]
    has = count > 0
    x = (cum[0][hi] - cum[0][lo])[has] / count[has]
    y = (cum[1][hi] - cum[1][lo])[has] / count[has]
    return FixationTable(t_start=start[has], t_end=end[has], x=x, y=y)
