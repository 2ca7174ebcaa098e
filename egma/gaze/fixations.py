"""Raw gaze samples -> fixations, with pymovements' detectors, and comparison with a reference.

Input rules (tested in tests/test_gaze_fixations.py):
- timestamps must not decrease: a decrease raises DataFormatError naming the reading, the 1-based
  row of the first offending sample and column "t"; a non-finite timestamp is rejected the same way;
- repeated timestamps keep their first sample (trackers write duplicates on buffer flushes);
- NaN coordinates are lost samples (blinks, track loss) and samples outside the image are treated
  as lost too (the heatmap has nowhere to put them); a lost sample ends a fixation;
- samples are placed on a regular grid at the nominal rate (slot = round((t - t0) * rate)); a time
  gap leaves empty slots, i.e. lost samples, so gaps split fixations as blinks do. A single empty
  slot between two valid samples is timestamp jitter, not a gap, and is interpolated.
Detection runs in degrees of visual angle: pixels / px_per_deg (the reading's angular resolution,
REFLACX, or GazeConfig.default_px_per_deg). All methods share one post-processing: fixations
separated by a short gap without lost samples and with close centres are merged (the I-VT filter
of Olsen 2012), then fixations shorter than `min_fixation_s` are dropped.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from pymovements.events.detection import idt, ivt, microsaccades
from pymovements.events.detection.microsaccades import compute_threshold
from pymovements.transforms.numpy import pos2vel

from egma.config import GazeConfig
from egma.datasets.errors import DataFormatError
from egma.datasets.study import FixationTable, GazeSamples, Reading

METHODS = ("ivt", "engbert", "idt", "dataset")


@dataclass
class RegularSamples:
    """Samples on a regular time grid; lost slots are NaN."""
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    rate_hz: float


def regularise_samples(samples: GazeSamples, reading_id: str,
                       image_size: tuple[int, int] | None = None) -> RegularSamples:
    """Validate timestamps and resample onto the nominal-rate grid (see module docstring)."""
    t = np.asarray(samples.t, dtype=float)
    x = np.asarray(samples.x, dtype=float).copy()
    y = np.asarray(samples.y, dtype=float).copy()
    if len(t) == 0:
        raise DataFormatError(reading_id, "no gaze samples", column="t")
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        raise DataFormatError(reading_id, "timestamp is not a finite number", row=int(bad[0]) + 1, column="t")
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataFormatError(reading_id, f"timestamps decrease ({t[i]:.6f} s after {t[i - 1]:.6f} s)",
                              row=i + 1, column="t")
    if image_size is not None:
        off = (x < 0) | (x >= image_size[1]) | (y < 0) | (y >= image_size[0])
        x[off], y[off] = np.nan, np.nan

    rate = float(samples.rate_hz)
    slot = np.round((t - t[0]) * rate).astype(np.int64)
    n_slots = int(slot[-1]) + 1
    if n_slots > 10 * len(t) + 1_000_000:
        raise DataFormatError(reading_id, f"timestamps span {t[-1] - t[0]:.0f} s, implausible for "
                              f"{len(t)} samples at {rate:g} Hz", column="t")
    slot, first = np.unique(slot, return_index=True)  # duplicates (and jitter collisions) keep the first
    gx, gy = np.full(n_slots, np.nan), np.full(n_slots, np.nan)
    gx[slot], gy[slot] = x[first], y[first]
    present = np.zeros(n_slots, bool)
    present[slot] = True
    hole = np.flatnonzero(~present[1:-1]) + 1
    jitter = hole[present[hole - 1] & present[hole + 1]]
    gx[jitter] = (gx[jitter - 1] + gx[jitter + 1]) / 2
    gy[jitter] = (gy[jitter - 1] + gy[jitter + 1]) / 2
    return RegularSamples(t[0] + np.arange(n_slots) / rate, gx, gy, rate)


def px_per_deg(samples: GazeSamples, cfg: GazeConfig) -> tuple[float, float]:
    return tuple(samples.px_per_deg) if samples.px_per_deg is not None else (cfg.default_px_per_deg,) * 2


def _velocity(pos_deg: np.ndarray, rate: float, window_s: float) -> np.ndarray:
    """(N, 2) deg/s; Savitzky-Golay when the window spans >= 5 samples, else central differences."""
    n = int(round(window_s * rate)) | 1
    if n >= 5 and len(pos_deg) >= n:
        # The filter's edge fit rejects NaN: filter NaN-free positions, then blank every velocity whose
        # window touched a lost sample (what the filter does to NaN inside the trace).
        lost = np.isnan(pos_deg).any(axis=1)
        if lost.all():
            return np.full_like(pos_deg, np.nan)
        index = np.arange(len(pos_deg))
        filled = np.stack([np.interp(index, index[~lost], pos_deg[~lost, k]) for k in range(2)], axis=1)
        velocity = pos2vel(filled, sampling_rate=rate, method="savitzky_golay", window_length=n, polyorder=2)
        velocity[np.convolve(lost, np.ones(n), mode="same") > 0] = np.nan
        return velocity
    return pos2vel(pos_deg, sampling_rate=rate, method="neighbors")


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) stops of the True runs of a boolean vector."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _events_to_runs(events) -> tuple[np.ndarray, np.ndarray]:
    frame = events.frame
    return frame["onset"].to_numpy().astype(np.int64), frame["offset"].to_numpy().astype(np.int64) + 1


def _candidate_runs(pos_deg: np.ndarray, rate: float, cfg: GazeConfig, method: str):
    index = np.arange(len(pos_deg))
    if method == "idt":
        min_samples = max(2, int(round(cfg.min_fixation_s * rate)))
        with warnings.catch_warnings():  # all-NaN windows during blinks
            warnings.simplefilter("ignore", RuntimeWarning)
            starts, stops = _events_to_runs(idt(pos_deg, timesteps=index, minimum_duration=min_samples,
                                                dispersion_threshold=cfg.idt_dispersion_deg))
        # pymovements 0.28 ends a NaN-free I-DT window on the first sample that breaks the
        # threshold; give that sample back to the saccade.
        spread = np.array([np.ptp(pos_deg[a:b], axis=0).sum() for a, b in zip(starts, stops)])
        return starts, stops - (spread > cfg.idt_dispersion_deg)
    velocity = _velocity(pos_deg, rate, cfg.velocity_window_s)
    if method == "ivt":
        return _events_to_runs(ivt(velocity, timesteps=index, minimum_duration=0,
                                   velocity_threshold=cfg.ivt_threshold_deg_s))
    if method == "engbert":
        # Fixations are what lies between saccades (noise-adaptive elliptic threshold) and lost samples.
        sd = np.maximum(compute_threshold(velocity, method="engbert2015"), 1e-6)
        min_len = max(1, int(np.ceil(cfg.min_saccade_s * rate)))
        saccades = microsaccades(velocity, timesteps=index, minimum_duration=min_len - 1,
                                 threshold=tuple(sd), threshold_factor=cfg.engbert_lambda)
        moving = np.isnan(velocity).any(axis=1)
        for start, stop in zip(*_events_to_runs(saccades)):
            moving[start:stop] = True
        return _runs(~moving)
    raise ValueError(f"unknown fixation method {method!r}; choose one of {METHODS}")


def _run_means(values: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """nanmean of values over each [start, stop) run, from cumulative sums."""
    finite = np.isfinite(values)
    total = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    count = np.concatenate([[0], np.cumsum(finite)])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total[stops] - total[starts]) / (count[stops] - count[starts])


def detect_fixations(samples: GazeSamples, cfg: GazeConfig, reading_id: str = "<samples>",
                     image_size: tuple[int, int] | None = None, method: str | None = None) -> FixationTable:
    """Fixations of one reading with `method` (default cfg.fixation_method; "dataset" is not a detector)."""
    method = method or cfg.fixation_method
    grid = regularise_samples(samples, reading_id, image_size)
    ppd_x, ppd_y = px_per_deg(samples, cfg)
    pos_deg = np.column_stack([grid.x / ppd_x, grid.y / ppd_y])
    if len(pos_deg) < 6:
        return FixationTable(*(np.empty(0) for _ in range(4)))
    starts, stops = _candidate_runs(pos_deg, grid.rate_hz, cfg, method)
    if len(starts) == 0:
        return FixationTable(*(np.empty(0) for _ in range(4)))

    # Merge neighbours split by a short, sample-complete gap (micro-saccades, velocity noise).
    lost_before = np.concatenate([[0], np.cumsum(np.isnan(grid.x))])
    cx, cy = _run_means(pos_deg[:, 0], starts, stops), _run_means(pos_deg[:, 1], starts, stops)
    gap = starts[1:] - stops[:-1]
    joinable = ((gap <= cfg.merge_gap_s * grid.rate_hz)
                & (lost_before[starts[1:]] == lost_before[stops[:-1]])
                & (np.hypot(np.diff(cx), np.diff(cy)) <= cfg.merge_max_deg))
    group = np.concatenate([[0], np.cumsum(~joinable)])
    first = np.flatnonzero(np.diff(np.concatenate([[-1], group])))
    last = np.concatenate([first[1:], [len(group)]]) - 1
    starts, stops = starts[first], stops[last]

    keep = (stops - starts) >= cfg.min_fixation_s * grid.rate_hz - 1e-9
    starts, stops = starts[keep], stops[keep]
    return FixationTable(t_start=grid.t[starts], t_end=grid.t[stops - 1] + 1.0 / grid.rate_hz,
                         x=_run_means(grid.x, starts, stops), y=_run_means(grid.y, starts, stops))


def clean_fixations(fixations: FixationTable, image_size: tuple[int, int] | None = None) -> FixationTable:
    """Dataset fixations made usable: non-finite, zero-length and (given the size) off-image rows dropped."""
    fx = fixations
    keep = (np.isfinite(fx.t_start) & np.isfinite(fx.t_end) & np.isfinite(fx.x) & np.isfinite(fx.y)
            & (fx.t_end > fx.t_start))
    if image_size is not None:
        keep &= (fx.x >= 0) & (fx.x < image_size[1]) & (fx.y >= 0) & (fx.y < image_size[0])
    order = np.argsort(fx.t_start[keep], kind="stable")
    return FixationTable(*(np.asarray(a, float)[keep][order] for a in (fx.t_start, fx.t_end, fx.x, fx.y)))


def reading_fixations(reading: Reading, cfg: GazeConfig, image_size: tuple[int, int] | None = None) -> FixationTable:
    """The fixations the book uses for a reading: detected from raw samples, or the dataset's own
    when cfg.fixation_method == "dataset" or the reading has no raw samples."""
    if cfg.fixation_method != "dataset" and reading.samples is not None:
        return detect_fixations(reading.samples, cfg, reading.reading_id, image_size)
    if reading.fixations is None:
        raise DataFormatError(reading.reading_id, "reading has neither raw samples nor fixations")
    return clean_fixations(reading.fixations, image_size)


@dataclass
class FixationMatch:
    """Detected vs reference fixations, one-to-one by temporal intersection-over-union."""
    precision: float
    recall: float
    n_detected: int
    n_true: int
    detected_index: np.ndarray   # (K,) matched pairs
    true_index: np.ndarray
    iou: np.ndarray

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def match_fixations(detected: FixationTable, true: FixationTable, min_iou: float = 0.5) -> FixationMatch:
    """A detected fixation matches a true one when their time intervals' IoU exceeds `min_iou`.

    With min_iou >= 0.5 the matching is one-to-one by construction (an interval cannot overlap two
    disjoint intervals each by more than half of their union), so no assignment step is needed.
    Both tables must hold non-overlapping intervals sorted by start.
    """
    if min_iou < 0.5:
        raise ValueError("min_iou must be >= 0.5 for an unambiguous one-to-one matching")
    # Candidate pairs: every true fixation that overlaps each detected one (both tables sorted).
    lo = np.searchsorted(true.t_end, detected.t_start, side="right")
    hi = np.searchsorted(true.t_start, detected.t_end, side="left")
    counts = np.maximum(hi - lo, 0)
    det = np.repeat(np.arange(len(detected)), counts)
    tru = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) + np.repeat(lo, counts)
    inter = (np.minimum(detected.t_end[det], true.t_end[tru]) - np.maximum(detected.t_start[det], true.t_start[tru]))
    union = (np.maximum(detected.t_end[det], true.t_end[tru]) - np.minimum(detected.t_start[det], true.t_start[tru]))
    iou = inter / union
    hit = iou > min_iou
    n_match = int(hit.sum())
    return FixationMatch(precision=n_match / len(detected) if len(detected) else 0.0,
                         recall=n_match / len(true) if len(true) else 0.0,
                         n_detected=len(detected), n_true=len(true),
                         detected_index=det[hit], true_index=tru[hit], iou=iou[hit])


def angular_speed(samples: GazeSamples, cfg: GazeConfig, reading_id: str = "<samples>",
                  image_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(t, deg/s) on the regular sample grid: the speed the velocity detectors threshold (NaN where lost)."""
    grid = regularise_samples(samples, reading_id, image_size)
    ppd_x, ppd_y = px_per_deg(samples, cfg)
    velocity = _velocity(np.column_stack([grid.x / ppd_x, grid.y / ppd_y]), grid.rate_hz, cfg.velocity_window_s)
    return grid.t, np.hypot(velocity[:, 0], velocity[:, 1])
