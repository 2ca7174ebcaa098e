"""Localisation scores of a patch-similarity map (grid x grid), which the paper did not measure.

Everything is compared in the model frame (egma.gaze.geometry.to_model_frame: centred pad to
square, then resize), where the map's patch i is the image's patch i:
- a true finding mask (or boxes drawn into a mask) goes through to_model_frame and is cut at 0.5;
- the map is upsampled to the same size (bilinear by default, align_corners=False, as the
  model-frame resize; "nearest" keeps the patches as blocks).

Against a true region:
- pointing game: 1 when the map's maximum lies inside the region; tied maxima score the share of
  them inside (the expected hit when the tie is broken at random);
- AUROC of the map's pixels against the region (optionally only over `valid` pixels, e.g. the
  image without its padding, from image_extent_in_model).
Against a radiologist's gaze (maps of equal shape; upsample the similarity map first):
- Pearson correlation;
- KL(gaze || map): both maps shifted to a minimum of 0 (cosine maps can be negative) and divided
  by their sums; KL = sum P log(eps + P / (Q + eps)) with eps = 1e-7 (the MIT saliency
  benchmark's form, which keeps empty pixels of Q finite; KL of a map with itself is then about
  -eps * (number of pixels), not exactly 0);
- NSS: the map standardised to mean 0 and SD 1, averaged at the fixation points (x right, y down,
  continuous pixel coordinates of the map; pixel (r, c) covers [c, c+1) x [r, r+1)).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from egma.evaluation.metrics import binary_auroc
from egma.gaze.geometry import to_model_frame

KL_EPS = 1e-7


def boxes_to_mask(boxes: Sequence[tuple[float, float, float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Bool (H, W) union of boxes (x1, y1, x2, y2) in pixel-edge coordinates; a pixel is in when its centre is."""
    rows, cols = np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5
    mask = np.zeros(shape, dtype=bool)
    for x1, y1, x2, y2 in boxes:
        mask |= ((rows >= y1) & (rows < y2))[:, None] & ((cols >= x1) & (cols < x2))[None, :]
    return mask


def region_in_model_frame(mask: np.ndarray, size: int) -> np.ndarray:
    """An original-image mask (H, W) as the bool (size, size) region the model sees."""
    return to_model_frame(np.asarray(mask, dtype=np.float32), size) >= 0.5


def upsample_map(similarity_map, size: int, mode: str = "bilinear") -> np.ndarray:
    """A (g, g) patch map resized to (size, size)."""
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    grid = torch.as_tensor(np.asarray(similarity_map, dtype=np.float32))[None, None]
    extra = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(grid, size=(size, size), mode=mode, **extra)[0, 0].numpy()


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes {a.shape} and {b.shape} differ; upsample the map to the region's size first")


def pointing_game(similarity_map, region, mode: str = "bilinear") -> float:
    """Share of the map's maxima (after upsampling to the region's size) that fall inside the region."""
    region = np.asarray(region, dtype=bool)
    if not region.any():
        raise ValueError("the region is empty: the pointing game needs a finding in the image")
    upsampled = upsample_map(similarity_map, region.shape[0], mode)
    _same_shape(upsampled, region, "pointing game")
    top = upsampled.max()
    maxima = upsampled >= top - 1e-6 * max(1.0, abs(top))   # float32 resizing leaves ~1e-7 noise on plateaus
    return float((maxima & region).sum() / maxima.sum())


def map_auroc(similarity_map, region, valid=None, mode: str = "bilinear") -> float:
    """AUROC of the upsampled map's pixels for membership of the region (NaN if the region is empty or everything)."""
    region = np.asarray(region, dtype=bool)
    upsampled = upsample_map(similarity_map, region.shape[0], mode)
    _same_shape(upsampled, region, "map AUROC")
    keep = np.ones_like(region) if valid is None else np.asarray(valid, dtype=bool)
    return float(binary_auroc(region[keep], upsampled[keep]))


def pearson_cc(map_a, map_b) -> float:
    a, b = np.asarray(map_a, dtype=float).ravel(), np.asarray(map_b, dtype=float).ravel()
    _same_shape(a, b, "correlation")
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def as_distribution(saliency) -> np.ndarray:
    """A map shifted to a minimum of 0 and divided by its sum (uniform when the map is constant)."""
    shifted = np.asarray(saliency, dtype=float) - np.min(saliency)
    total = shifted.sum()
    return shifted / total if total > 0 else np.full(shifted.shape, 1.0 / shifted.size)


def kl_divergence(gaze_map, similarity_map, eps: float = KL_EPS) -> float:
    """KL(gaze || map) of the two maps as distributions (lower is better; 0 when they are equal)."""
    p, q = as_distribution(gaze_map), as_distribution(similarity_map)
    _same_shape(p, q, "KL divergence")
    return float((p * np.log(eps + p / (q + eps))).sum())


def nss(similarity_map, x, y) -> float:
    """Normalised scanpath saliency at fixation points (x, y) in the map's pixel coordinates; points off the map are dropped."""
    saliency = np.asarray(similarity_map, dtype=float)
    sd = saliency.std()
    if sd == 0:
        return 0.0   # a flat map predicts nothing
    col, row = np.floor(np.asarray(x, float)).astype(int), np.floor(np.asarray(y, float)).astype(int)
    inside = (row >= 0) & (row < saliency.shape[0]) & (col >= 0) & (col < saliency.shape[1])
    if not inside.any():
        raise ValueError("no fixation falls on the map")
    standardised = (saliency - saliency.mean()) / sd
    return float(standardised[row[inside], col[inside]].mean())


def patch_similarity_map(patches, text_emb) -> np.ndarray:
    """(g, g) cosine map of one image's patch features (g*g, d) with a sentence or prompt embedding (d,)."""
    patches, text_emb = np.asarray(patches, dtype=float), np.asarray(text_emb, dtype=float)
    grid = int(round(np.sqrt(len(patches))))
    if grid * grid != len(patches):
        raise ValueError(f"{len(patches)} patches do not form a square grid")
    return (patches @ text_emb).reshape(grid, grid)
