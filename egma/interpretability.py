"""Cross-modal attention maps of report sentences and how well they localise.

A sentence's attention map is where the model puts that sentence in the image: the softmax over
the n patches of the scaled patch-sentence similarities X = s P S^T (the very logits the
fine-grained losses train), one column of X per sentence, laid out on the grid x grid patches.
The grid tiles the model frame, which is the padded square of the image resized (centred
pad-to-square, then resize: egma.gaze.geometry); so a map goes back onto the original image by
the inverse of that geometry: resize the square to the padded side, cut the padding off.

Scores, all in the model frame (egma.evaluation.localisation says why and how):
- against the true region of the sentence (the union of its phantom region masks): pointing
  game and map AUROC (over image pixels, padding left out);
- against the radiologist's gaze on that sentence: Pearson CC and KL(gaze || map) with the
  sentence's gaze heatmap (egma.gaze.heatmaps), NSS at the fixations inside its gaze window.
Two references are scored by the same functions: a uniform map (what no localisation gives:
pointing game = the region's share of the frame, AUROC 0.5, NSS 0, CC undefined) and, against
the true region only, the gaze heatmap itself (how well the radiologist's eyes localise).

Confidence intervals resample **studies**, not sentences: the sentences of one report share an
image and a reader, so they are not independent items.
"""
from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from transformers import PreTrainedTokenizerBase

from egma.config import GazeConfig
from egma.datasets.study import Study
from egma.evaluation.bootstrap import Estimate, bootstrap_ci, estimate_record
from egma.evaluation.encoding import encode_image_tensors, encode_texts
from egma.evaluation.localisation import (kl_divergence, map_auroc, nss, pearson_cc, pointing_game,
                                          region_in_model_frame, upsample_map)
from egma.evaluation.report import verdict
from egma.gaze.geometry import image_extent_in_model, points_to_model, square_frame
from egma.gaze.heatmaps import combine_readings, study_reading_heatmaps, window_weights
from egma.gaze.sentences import sentence_key
from egma.model import EGMAModel
from egma.phantom.truth import load_study_masks, load_truth
from egma.viz import add_image

REGION_METRICS = ("pointing_game", "map_auroc")
GAZE_METRICS = ("cc", "kl", "nss")
HIGHER_IS_BETTER = {"pointing_game": True, "map_auroc": True, "cc": True, "kl": False, "nss": True}
UNIFORM = "uniform map"
GAZE_REFERENCE = "gaze map (reference)"


# ---------------------------------------------------------------- maps

def attention_maps(patches, sentences, logit_scale: float) -> np.ndarray:
    """(m, g, g) softmax over patches of s * P S^T, for patches P (n, d) and sentences S (m, d) of one study."""
    patches, sentences = torch.as_tensor(patches, dtype=torch.float64), torch.as_tensor(sentences, dtype=torch.float64)
    grid = int(round(len(patches) ** 0.5))
    if grid * grid != len(patches):
        raise ValueError(f"{len(patches)} patches do not form a square grid")
    logits = float(logit_scale) * sentences @ patches.T          # (m, n): X^T, one row per sentence
    return torch.softmax(logits, dim=1).reshape(-1, grid, grid).numpy()


def map_to_image(square_map, image_size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """A map over the model frame (any k x k: the patch grid or the size x size frame) on the original
    (H, W) image: the inverse of pad-to-square + resize. Bilinear with align_corners=False treats
    each cell as a k-th of the padded square, as the forward resize does; "nearest" gives every
    pixel the cell its centre falls in (torch's "nearest-exact", the rule of points_to_patch)."""
    modes = {"bilinear": ("bilinear", {"align_corners": False}), "nearest": ("nearest-exact", {})}
    if mode not in modes:
        raise ValueError(f"mode must be one of {sorted(modes)}, got {mode!r}")
    side, top, left = square_frame(image_size)
    grid = torch.as_tensor(np.asarray(square_map, dtype=np.float32))[None, None]
    square = F.interpolate(grid, size=(side, side), mode=modes[mode][0], **modes[mode][1])[0, 0].numpy()
    return square[top:top + image_size[0], left:left + image_size[1]]


@torch.no_grad()
def study_attention(model: EGMAModel, tokenizer: PreTrainedTokenizerBase, images: torch.Tensor,
                    sentences: Sequence[Sequence[str]], device: torch.device | str = "cpu") -> list[np.ndarray]:
    """Per study, the (m, g, g) attention maps of its sentences under `model`; `images` are the studies'
    model-frame tensors (N, 3, size, size) from egma.batch.load_model_image, read once for every model."""
    if len(images) != len(sentences):
        raise ValueError(f"{len(images)} images but {len(sentences)} sentence lists")
    patches = encode_image_tensors(model, images, device).patches
    embeddings = encode_texts(model, tokenizer, [text for texts in sentences for text in texts], device)
    scale = float(model.logit_scale)
    bounds = np.cumsum([0] + [len(texts) for texts in sentences])
    return [attention_maps(patches[k], embeddings[bounds[k]:bounds[k + 1]], scale) for k in range(len(images))]


# ---------------------------------------------------------------- what the maps are compared with

@dataclass
class SentenceGaze:
    """The radiologist's gaze on each report sentence of one study, in the model frame."""
    sentences: list[str]
    maps: np.ndarray                          # (m, size, size) heatmaps, each sums to 1
    points: list[tuple[np.ndarray, np.ndarray]]  # per sentence: fixation x, y (model-frame pixels)
    fallback: np.ndarray                      # (m,) no fixation in the sentence's window: whole-reading gaze


def _spoken_match(report_sentences: Sequence[str], spoken: Sequence[str]) -> list[int | None]:
    """Index of the dictated sentence of each report sentence (same text key, occurrence by occurrence,
    the rule of egma.gaze.heatmaps.combine_readings), None when the reading did not dictate it."""
    free = defaultdict(list)
    for i, text in enumerate(spoken):
        free[sentence_key(text)].append(i)
    return [free[sentence_key(text)].pop(0) if free.get(sentence_key(text)) else None for text in report_sentences]


def sentence_gaze(study: Study, cfg: GazeConfig, size: int) -> SentenceGaze | None:
    """Heatmaps and fixation points of a study's report sentences (None without gaze). A sentence whose
    gaze window holds no fixation gets all of its readings' fixations, as its heatmap gets their whole map."""
    found = study_reading_heatmaps(study, cfg, size)
    if found is None:
        return None
    sentences, per_reading = found
    combined = combine_readings(sentences, per_reading, study.study_id)
    xs, ys = [[] for _ in sentences], [[] for _ in sentences]
    for rh in per_reading:
        inside = window_weights(rh.fixations, rh.windows) > 0         # (spoken m, F)
        for j, i in enumerate(_spoken_match(sentences, [s.text for s in rh.sentences])):
            if i is not None and inside[i].any():
                xs[j].append(rh.fixations.x[inside[i]])
                ys[j].append(rh.fixations.y[inside[i]])
    every_x = np.concatenate([rh.fixations.x for rh in per_reading])
    every_y = np.concatenate([rh.fixations.y for rh in per_reading])
    points = [points_to_model(np.concatenate(x) if x else every_x, np.concatenate(y) if y else every_y,
                              study.image_size, size) for x, y in zip(xs, ys)]
    return SentenceGaze(sentences, combined.maps, points, combined.fallback)


def sentence_regions(truth_study: Mapping, report_sentences: Sequence[str]) -> list[list[str]]:
    """The region keys of each report sentence, from the phantom's truth record of its image."""
    truth = truth_study["sentences"]
    match = _spoken_match(report_sentences, [s["text"] for s in truth])
    missing = [text for text, i in zip(report_sentences, match) if i is None]
    if missing:
        raise ValueError(f"image {truth_study.get('dicom_id')}: report sentences {missing} are not in the phantom "
                         "truth; was the tree regenerated without its phantom_truth folder?")
    return [list(truth[i]["region"]) for i in match]


def region_mask(masks: Mapping[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """Union (H, W) of the named region masks."""
    unknown = [k for k in keys if k not in masks]
    if unknown or not keys:
        raise KeyError(f"no mask for region keys {unknown or list(keys)}; known: {sorted(masks)}")
    return np.logical_or.reduce([masks[k] for k in keys])


def sentence_kind(keys: Sequence[str]) -> str:
    """"finding" when the sentence points at a finding, "normal" when it describes anatomy only."""
    return "finding" if any(k.startswith("finding:") for k in keys) else "normal"


@dataclass
class StudyCase:
    """One study ready for scoring: its sentences, their gaze and (phantom only) their true regions."""
    study: Study
    sentences: list[str]
    gaze: SentenceGaze | None
    regions: list[list[str]] | None           # region keys per sentence
    masks: dict[str, np.ndarray] | None       # original-image masks by key

    def kinds(self) -> list[str]:
        """Each sentence's kind (sentence_kind); "all" when there is no truth to tell."""
        return [sentence_kind(k) for k in self.regions] if self.regions is not None else ["all"] * len(self.sentences)

    def region(self, j: int) -> np.ndarray | None:
        """Sentence j's true region, original image (H, W)."""
        return None if self.regions is None else region_mask(self.masks, self.regions[j])


def study_cases(studies: Sequence[Study], cfg: GazeConfig, size: int,
                truth_dir: str | Path | None = None) -> list[StudyCase]:
    """A StudyCase per study; `truth_dir` (the phantom's phantom_truth folder) adds the true regions."""
    truth = load_truth(truth_dir)["studies"] if truth_dir is not None else None
    cases = []
    for study in studies:
        gaze = sentence_gaze(study, cfg, size)
        sentences = gaze.sentences if gaze is not None else list(study.report_sentences)
        regions = masks = None
        if truth is not None:
            if study.dicom_id not in truth:
                raise KeyError(f"{truth_dir}: image {study.dicom_id} (study {study.study_id}) has no truth record")
            regions = sentence_regions(truth[study.dicom_id], sentences)
            masks = load_study_masks(truth_dir, study.dicom_id)
        cases.append(StudyCase(study, sentences, gaze, regions, masks))
    return cases


# ---------------------------------------------------------------- scores

def sentence_scores(saliency, size: int, region: np.ndarray | None, valid: np.ndarray,
                    gaze_map: np.ndarray | None, points: tuple[np.ndarray, np.ndarray] | None) -> dict[str, float]:
    """Every score of one square map (the g x g attention, or a size x size map) for one sentence;
    region and valid are bool (size, size) in the model frame."""
    scores = {}
    if region is not None and region.any():
        scores["pointing_game"] = pointing_game(saliency, region)
        scores["map_auroc"] = map_auroc(saliency, region, valid=valid)
    if gaze_map is not None:
        upsampled = upsample_map(saliency, size)
        scores["cc"] = pearson_cc(upsampled, gaze_map)
        scores["kl"] = kl_divergence(gaze_map, upsampled)
        scores["nss"] = nss(upsampled, *points)
    return scores


def localisation_scores(cases: Sequence[StudyCase], attention: Mapping[str, Sequence[np.ndarray]],
                        size: int, references: bool = True) -> pd.DataFrame:
    """Long table of every sentence's scores: model, study_id, sentence, kind, metric, value.

    `attention` maps a model name to its per-study (m, g, g) maps, in the order of `cases`. With
    `references`, the uniform map and (against the true region) the gaze map are scored too."""
    if not attention:
        raise ValueError("no attention maps to score")
    grid = next(iter(attention.values()))[0].shape[-1]
    rows = []
    for k, case in enumerate(cases):
        rows_valid, cols_valid = image_extent_in_model(case.study.image_size, size)
        valid = np.outer(rows_valid, cols_valid) > 0
        for j, (text, kind) in enumerate(zip(case.sentences, case.kinds())):
            region = case.region(j)
            region = None if region is None else region_in_model_frame(region, size)
            gaze_map = case.gaze.maps[j] if case.gaze is not None else None
            points = case.gaze.points[j] if case.gaze is not None else None
            maps = {name: per_study[k][j] for name, per_study in attention.items()}
            if references:
                maps[UNIFORM] = np.ones((grid, grid))
            keys = {"study_id": case.study.study_id, "sentence": j, "text": text, "kind": kind}
            for name, saliency in maps.items():
                for metric, value in sentence_scores(saliency, size, region, valid, gaze_map, points).items():
                    rows.append({"model": name, **keys, "metric": metric, "value": value})
            if references and region is not None and gaze_map is not None:
                for metric, value in sentence_scores(gaze_map, size, region, valid, None, None).items():
                    rows.append({"model": GAZE_REFERENCE, **keys, "metric": metric, "value": value})
    return pd.DataFrame(rows, columns=["model", "study_id", "sentence", "text", "kind", "metric", "value"])


def clustered_mean_ci(values, clusters, rng: np.random.Generator, n_resamples: int = 1000,
                      level: float = 0.95) -> Estimate:
    """Mean of the finite `values` with a percentile bootstrap interval that resamples whole clusters
    (studies): a resample's mean is the sum over its drawn clusters' values over their count."""
    values = np.asarray(values, dtype=float)
    codes = pd.factorize(pd.Series(np.asarray(clusters)))[0]
    finite = np.isfinite(values)
    sums = np.bincount(codes, weights=np.where(finite, values, 0.0))
    counts = np.bincount(codes, weights=finite.astype(float))

    def mean(s, c):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sum(s, axis=-1) / np.sum(c, axis=-1)

    return bootstrap_ci(mean, sums, counts, rng=rng, n_resamples=n_resamples, level=level)


def localisation_table(scores: pd.DataFrame, rng: np.random.Generator, n_resamples: int = 1000) -> pd.DataFrame:
    """Tidy estimates per kind, metric and model: value, ci_low, ci_high (study-clustered bootstrap), n sentences."""
    rows = []
    for (kind, metric, model), part in scores.groupby(["kind", "metric", "model"], sort=False):
        estimate = clustered_mean_ci(part["value"], part["study_id"], rng, n_resamples)
        rows.append({**estimate_record(estimate, kind=kind, metric=metric, model=model),
                     "n": int(np.isfinite(part["value"]).sum())})
    return pd.DataFrame(rows)


def directed_verdict(estimate: Estimate, higher_is_better: bool) -> str:
    """"better" / "worse" for the first model of a difference, whichever way the metric improves."""
    if higher_is_better:
        return verdict(estimate)
    return verdict(Estimate(-estimate.value, -estimate.high, -estimate.low))


def localisation_differences(scores: pd.DataFrame, first: str, second: str, rng: np.random.Generator,
                             n_resamples: int = 1000) -> pd.DataFrame:
    """Paired difference first - second of every metric over the sentences both scored, study-clustered
    bootstrap; verdict says whether `first` is better (KL: lower is better)."""
    keys = ["kind", "metric", "study_id", "sentence"]
    a = scores[scores.model == first].set_index(keys)["value"]
    b = scores[scores.model == second].set_index(keys)["value"]
    paired = (a - b).dropna().reset_index()
    rows = []
    for (kind, metric), part in paired.groupby(["kind", "metric"], sort=False):
        estimate = clustered_mean_ci(part["value"], part["study_id"], rng, n_resamples)
        rows.append({**estimate_record(estimate, kind=kind, metric=metric, comparison=f"{first} - {second}"),
                     "verdict": directed_verdict(estimate, HIGHER_IS_BETTER[metric])})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- figure

_HEAT = [[0, "rgba(255,230,0,0)"], [0.15, "rgba(255,190,0,0.3)"], [1, "rgba(255,0,0,0.85)"]]
DISPLAY_SIDE = 64   # heatmap samples along the longer image side: the maps are smooth, pages stay light
OUTLINE_TOLERANCE = 2.0   # pixels an outline may deviate from the mask's boundary: few points per panel


def outline_xy(mask: np.ndarray, tolerance: float = OUTLINE_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """x, y (pixel-edge coordinates, NaN between pieces) of a mask's boundary, simplified to `tolerance` pixels."""
    from skimage import measure

    padded = np.pad(np.asarray(mask, dtype=float), 1)        # closes contours that touch the border
    pieces = [measure.approximate_polygon(c, tolerance) for c in measure.find_contours(padded, 0.5)]
    points = np.concatenate([np.vstack([p - 0.5, [np.nan, np.nan]]) for p in pieces]) if pieces else np.empty((0, 2))
    return points[:, 1].astype(np.float32), points[:, 0].astype(np.float32)


def _display_heatmap(values: np.ndarray, stride: int, visible: bool, low: float, high: float) -> go.Heatmap:
    """Every stride-th pixel of an original-frame map as one byte (low -> 0, clear; high -> 255, red),
    placed at those pixels' centres."""
    shown = np.clip((values[::stride, ::stride] - low) / max(high - low, 1e-12), 0.0, 1.0)
    return go.Heatmap(z=np.round(255 * shown).astype(np.uint8), x0=0.5, dx=stride, y0=0.5, dy=stride, zmin=0,
                      zmax=255, colorscale=_HEAT, showscale=False, hoverinfo="skip", visible=visible)


def attention_figure(image: np.ndarray, case: StudyCase, attention: Mapping[str, np.ndarray],
                     sentence_ids: Sequence[int] | None = None, title: str = "") -> go.Figure:
    """The original image with, per sentence (slider), the true outline, the radiologist's gaze and each
    model's attention map brought back through the inverse geometry. The gaze map runs from 0 to its
    own peak; the attention maps share one scale, from the uniform level 1/n (clear) to the highest
    attention of any model on any shown sentence (red), so a flat map looks flat.
    Slider steps only toggle trace visibility, so the figure works in static HTML."""
    height, width = image.shape[:2]
    ids = list(range(len(case.sentences))) if sentence_ids is None else list(sentence_ids)
    n_patches = next(iter(attention.values()))[0].size
    uniform = 1.0 / n_patches
    top = max(max(float(maps[j].max()) for j in ids) for maps in attention.values())
    top = top if top > uniform * (1 + 1e-6) else 2 * uniform
    panels = ["image, true region", "radiologist gaze", *(f"{name} (1x to {top * n_patches:.1f}x uniform)"
                                                          for name in attention)]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, horizontal_spacing=0.01)
    stride = max(1, int(np.ceil(max(height, width) / DISPLAY_SIDE)))
    per_step = []
    for step, j in enumerate(ids):
        first = len(fig.data)
        if case.gaze is not None:
            gaze = map_to_image(case.gaze.maps[j], (height, width))
            fig.add_trace(_display_heatmap(gaze, stride, step == 0, 0.0, float(gaze.max())), row=1, col=2)
        for col, maps in enumerate(attention.values(), start=3):
            fig.add_trace(_display_heatmap(map_to_image(maps[j], (height, width)), stride, step == 0, uniform, top),
                          row=1, col=col)
        region = case.region(j)
        if region is not None:
            x, y = outline_xy(region)
            for col in range(1, len(panels) + 1):
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color="#00ff88", width=1.5),
                                         visible=step == 0, showlegend=False, hoverinfo="skip"), row=1, col=col)
        per_step.append(range(first, len(fig.data)))
    for col in range(1, len(panels) + 1):
        add_image(fig, image, row=1, col=col, max_side=160)

    def caption(j: int) -> str:
        kind = case.kinds()[j]
        regions = ", ".join(case.regions[j]) if case.regions is not None else "no true region (real data)"
        return f"{title}<br><sub>{html.escape(case.sentences[j])} ({kind}: {html.escape(regions)})</sub>"

    steps = []
    for step, j in enumerate(ids):
        visible = [False] * len(fig.data)
        for k in per_step[step]:
            visible[k] = True
        steps.append(dict(method="update", label=str(j + 1), args=[{"visible": visible}, {"title.text": caption(j)}]))
    fig.update_annotations(font_size=11)
    fig.update_layout(title=caption(ids[0]), height=int(250 * height / width) + 150, width=200 * len(panels) + 40,
                      showlegend=False, margin=dict(l=10, r=10, t=100, b=10),
                      sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="sentence "), pad=dict(t=20))])
    return fig
