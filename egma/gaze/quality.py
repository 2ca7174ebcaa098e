"""Does a sentence's gaze land on its region? Measured on the phantom, whose truth knows every region.

For each report sentence with gaze of its own we measure the share of its heatmap's mass that lies
inside the sentence's true region (the union of its region masks, mapped into the model frame by
the same pad-and-resize as the image), and decompose where the mass outside comes from:

    stage                                   what it measures
    true fixations                          the simulator's fixations (true positions, true sentence
                                            labels, duration-weighted point masses): off-target looks
                                            and the region's own shape; the ceiling of any method
    true fixations + calibration offset     the same points shifted by the reading's systematic
                                            calibration error, i.e. what any tracker records; no
                                            preprocessing can undo it without a calibration target
    book heatmaps                           the maps the model gets (detected fixations, method
                                            windows, Gaussian spread), all readers combined
    book heatmaps, within tracker accuracy  the same maps, region dilated by the tracker's stated
                                            accuracy (the criterion the book adopts)
    uniform map                             a map spread evenly over the image: the region's area share

Several readers of one image: the book's map is the mean of the readers' maps (egma.gaze.heatmaps),
and the point-mass stages average the readers' shares the same way. A study read on two trackers
gets the looser tracker's tolerance.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from egma.config import GazeConfig
from egma.datasets.study import Study
from egma.evaluation.bootstrap import Estimate, bootstrap_ci, estimate_record
from egma.gaze.geometry import image_extent_in_model, to_model_frame
from egma.gaze.heatmaps import GazeFallbackWarning, study_heatmaps
from egma.gaze.sentences import sentence_key
from egma.phantom.generate import sentence_masks
from egma.phantom.render import Rendered
from egma.phantom.truth import load_study_masks, load_truth

# Stated spatial accuracy of the trackers behind each reading format, upper end of the vendor's
# range, in degrees of visual angle: REFLACX used an EyeLink 1000 Plus (SR Research: 0.25-0.5 deg
# typical), EGD-CXR a Gazepoint GP3 (Gazepoint: 0.5-1.0 deg).
TRACKER_ACCURACY_DEG = {"reflacx": 0.5, "egd-cxr": 1.0}
TARGET_MEDIAN_SHARE = 0.7   # the gaze issue's criterion, on the share within tracker accuracy

STAGES = {
    "true_share": "true fixations",
    "true_offset_share": "true fixations + calibration offset",
    "share": "book heatmaps",
    "share_within_accuracy": "book heatmaps, within tracker accuracy",
    "area_share": "uniform map",
}


def mass_share(maps: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Share of each map's mass on its region: (..., H, W) non-negative maps and (..., H, W) region
    weights in [0, 1] (a soft edge after resizing) -> (...). A map without mass gives NaN."""
    maps = np.asarray(maps, float)
    inside = (maps * regions).sum(axis=(-2, -1))
    total = maps.sum(axis=(-2, -1))
    return np.divide(inside, total, out=np.full_like(inside, np.nan), where=total > 0)


def point_shares(x: np.ndarray, y: np.ndarray, weights: np.ndarray, labels: np.ndarray,
                 regions: np.ndarray) -> np.ndarray:
    """(S,) share of the weight of the points labelled s that falls on regions[s] (bool (S, H, W),
    original pixels; a point covers the pixel it lies in, points off the image are outside).
    Points labelled -1 belong to no sentence; a sentence without points gives NaN."""
    n, h, w = regions.shape
    col, row = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    on_image = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    mine = labels >= 0
    inside = np.zeros(len(x), bool)
    hit = mine & on_image
    inside[hit] = regions[labels[hit], row[hit], col[hit]]
    total = np.bincount(labels[mine], weights[mine], minlength=n)
    within = np.bincount(labels[mine], weights[mine] * inside[mine], minlength=n)
    return np.divide(within, total, out=np.full(n, np.nan), where=total > 0)


def dilate_deg(region: np.ndarray, margin_deg: float, px_per_deg: tuple[float, float]) -> np.ndarray:
    """The region grown by `margin_deg` degrees of visual angle (Euclidean, per-axis resolution (x, y))."""
    if margin_deg <= 0:
        return region.copy()
    distance_deg = ndimage.distance_transform_edt(~region, sampling=(1.0 / px_per_deg[1], 1.0 / px_per_deg[0]))
    return distance_deg <= margin_deg


def sentence_regions(masks: dict[str, np.ndarray], regions: list[list[str]]) -> np.ndarray:
    """(S, H, W) bool: the union of each sentence's region keys, resolved as the generator resolves
    them (an absent finding -> the anatomy where it would be); an empty union is the whole chest,
    where the simulated reader then looks."""
    split = {"finding": {}, "anatomy": {}}
    for key, mask in masks.items():
        kind, _, name = key.partition(":")
        split[kind][name] = mask
    rendered = Rendered(image=None, finding_masks=split["finding"], anatomy_masks=split["anatomy"])
    return np.stack(sentence_masks(rendered, regions))


def region_kind(keys) -> str:
    return "finding" if any(k.startswith("finding:") for k in keys) else "anatomy"


def _reading_tolerances(study: Study, cfg: GazeConfig, margin_deg: float | None) -> set:
    """{(margin in degrees, px_per_deg (x, y))} over the study's readings with gaze."""
    tolerances = set()
    for r in study.readings:
        if r.samples is None and r.fixations is None:
            continue
        ppd = r.samples.px_per_deg if r.samples is not None and r.samples.px_per_deg else (cfg.default_px_per_deg,) * 2
        if margin_deg is None and r.source not in TRACKER_ACCURACY_DEG:
            raise ValueError(f"{r.reading_id}: no stated tracker accuracy for source {r.source!r} "
                             f"(known: {sorted(TRACKER_ACCURACY_DEG)}); pass margin_deg")
        tolerances.add((TRACKER_ACCURACY_DEG[r.source] if margin_deg is None else margin_deg, tuple(ppd)))
    return tolerances


def _match_truth_sentences(report: list[str], truth_sentences: list[dict]) -> list[int | None]:
    """Index of each report sentence in the truth's sentence list (matched by key, occurrence by occurrence)."""
    by_key = defaultdict(list)
    for i, s in enumerate(truth_sentences):
        by_key[sentence_key(s["text"])].append(i)
    return [by_key[sentence_key(text)].pop(0) if by_key.get(sentence_key(text)) else None for text in report]


def heatmap_shares(studies: list[Study], truth_dir: str | Path, cfg: GazeConfig, size: int, *,
                   truth: dict | None = None, margin_deg: float | None = None) -> pd.DataFrame:
    """One row per report sentence with gaze of its own (fallback maps and sentences the truth does not
    know are left out): the book's heatmap (study_heatmaps, model frame) scored against the true region.

    Columns: dicom_id, study_id, sentence (index in the truth), text, kind, region, share (strict),
    margin_deg, share_within_accuracy (region dilated by margin_deg: the study's tracker accuracy
    when margin_deg is None, else that fixed margin), area_share (what a uniform map scores).
    """
    truth = load_truth(truth_dir) if truth is None else truth
    rows = []
    for study in studies:
        if study.dicom_id not in truth["studies"]:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GazeFallbackWarning)   # fallback rows are dropped below
            maps = study_heatmaps(study, cfg, size)
        if maps is None:
            continue
        true_sentences = truth["studies"][study.dicom_id]["sentences"]
        index = _match_truth_sentences(maps.sentences, true_sentences)
        keep = [j for j, i in enumerate(index) if i is not None and not maps.fallback[j]]
        if not keep:
            continue
        regions = sentence_regions(load_study_masks(truth_dir, study.dicom_id),
                                   [true_sentences[index[j]]["region"] for j in keep])
        tolerances = _reading_tolerances(study, cfg, margin_deg)
        tolerant = np.stack([np.any([dilate_deg(r, m, ppd) for m, ppd in tolerances], axis=0) for r in regions])
        in_model = to_model_frame(np.concatenate([regions, tolerant]).astype(np.float32), size)
        region_model, tolerant_model = in_model[:len(keep)], in_model[len(keep):]
        strict, within = mass_share(maps.maps[keep], region_model), mass_share(maps.maps[keep], tolerant_model)
        uniform = np.outer(*image_extent_in_model(study.image_size, size))   # the padding carries no gaze
        area = mass_share(uniform[None], region_model)
        for k, j in enumerate(keep):
            keys = true_sentences[index[j]]["region"]
            rows.append({"dicom_id": study.dicom_id, "study_id": study.study_id, "sentence": index[j],
                         "text": maps.sentences[j], "kind": region_kind(keys), "region": ", ".join(keys),
                         "share": strict[k], "margin_deg": max(m for m, _ in tolerances),
                         "share_within_accuracy": within[k], "area_share": area[k]})
    return pd.DataFrame(rows, columns=["dicom_id", "study_id", "sentence", "text", "kind", "region", "share",
                                       "margin_deg", "share_within_accuracy", "area_share"])


def true_fixation_shares(truth_dir: str | Path, dicom_ids: list[str] | None = None, *,
                         truth: dict | None = None) -> pd.DataFrame:
    """One row per report sentence that has true fixations: the share of their duration inside the
    true region, at the true positions (true_share) and shifted by each reading's calibration offset
    (true_offset_share), averaged over the readers who looked for that sentence (n_readers), and the
    readers' mean offset in degrees (offset_deg). Columns also: dicom_id, sentence, kind."""
    truth = load_truth(truth_dir) if truth is None else truth
    rows = []
    for dicom in truth["studies"] if dicom_ids is None else dicom_ids:
        doc = truth["studies"][dicom]
        regions = sentence_regions(load_study_masks(truth_dir, dicom), [s["region"] for s in doc["sentences"]])
        per_reader, offsets = [], []
        for reading in doc["readings"].values():
            f = {k: np.asarray(v) for k, v in reading["fixations"].items()}
            labels, duration = f["sentence"].astype(np.int64), f["t_end"] - f["t_start"]
            dx, dy = reading["calibration_offset_px"]
            per_reader.append([point_shares(f["x"], f["y"], duration, labels, regions),
                               point_shares(f["x"] + dx, f["y"] + dy, duration, labels, regions)])
            offsets.append(np.hypot(dx, dy) / reading["px_per_deg"])
        if not per_reader:
            continue
        shares = np.asarray(per_reader)                       # (readers, 2, S)
        looked = np.isfinite(shares[:, 0])                    # (readers, S)
        mean = np.nansum(shares, axis=0) / np.maximum(looked.sum(axis=0), 1)
        for i, s in enumerate(doc["sentences"]):
            if looked[:, i].any():
                rows.append({"dicom_id": dicom, "sentence": i, "kind": region_kind(s["region"]),
                             "true_share": mean[0, i], "true_offset_share": mean[1, i],
                             "n_readers": int(looked[:, i].sum()), "offset_deg": float(np.mean(offsets))})
    return pd.DataFrame(rows, columns=["dicom_id", "sentence", "kind", "true_share", "true_offset_share",
                                       "n_readers", "offset_deg"])


def share_decomposition(studies: list[Study], truth_dir: str | Path, cfg: GazeConfig, size: int, *,
                        truth: dict | None = None, margin_deg: float | None = None) -> pd.DataFrame:
    """heatmap_shares joined with true_fixation_shares: one row per sentence that has both, every
    column of STAGES side by side (the same sentences in every stage)."""
    truth = load_truth(truth_dir) if truth is None else truth
    maps = heatmap_shares(studies, truth_dir, cfg, size, truth=truth, margin_deg=margin_deg)
    points = true_fixation_shares(truth_dir, list(dict.fromkeys(maps["dicom_id"])), truth=truth)
    return maps.merge(points.drop(columns="kind"), on=["dicom_id", "sentence"], how="inner")


def _pooled_nanmedian(values: np.ndarray) -> np.ndarray:
    """Median over the last two axes (studies x their sentences, NaN-padded)."""
    return np.nanmedian(values.reshape(*values.shape[:-2], -1), axis=-1)


def by_study(values: np.ndarray, study: np.ndarray) -> np.ndarray:
    """(studies, most sentences) NaN-padded rows: the items of a study-level (cluster) bootstrap."""
    codes, order = pd.factorize(pd.Series(study))
    slot = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    out = np.full((len(order), slot.max() + 1 if len(slot) else 0), np.nan)
    out[codes, slot] = values
    return out


def stage_medians(table: pd.DataFrame, rng: np.random.Generator, n_resamples: int = 1000,
                  level: float = 0.95) -> pd.DataFrame:
    """Tidy table (stage, kind, value, ci_low, ci_high, sentences, studies): the median share of every
    stage of STAGES, per kind and over all sentences. Sentences of one study share a reader and a
    calibration offset, so the percentile bootstrap resamples studies, not sentences."""
    records = []
    for kind, part in [("all", table)] + list(table.groupby("kind", sort=True)):
        for column, stage in STAGES.items():
            estimate = bootstrap_ci(_pooled_nanmedian, by_study(part[column].to_numpy(float), part["dicom_id"]),
                                    rng=rng, n_resamples=n_resamples, level=level)
            records.append(estimate_record(estimate, stage=stage, kind=kind, sentences=len(part),
                                           studies=part["dicom_id"].nunique()))
    return pd.DataFrame(records)


def target_verdict(estimate: Estimate, target: float = TARGET_MEDIAN_SHARE) -> str:
    """Whether a median meets `target`, and whether its interval settles it."""
    if estimate.low >= target:
        return "met"
    if estimate.value >= target:
        return "met by the point value; the interval reaches below the target"
    if estimate.high >= target:
        return "not met by the point value; the interval reaches the target"
    return "not met"
