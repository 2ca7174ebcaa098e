"""Model-frame heatmaps -> patch-grid gaze labels GS (soft) and GL (binary).

Pooling is exact area averaging: patch (r, c) of a g x g grid covers the model-frame square
[c, c+1) x [r, r+1) * size/g, and pixels cut by a patch border count with the fraction of their
area inside it. So any g works, whether or not it divides the map size (for dividing sizes this
equals plain block averaging). GS is the pooled map divided by its maximum (rows in [0, 1], the
scale the EGM mapping adds to min-max-scaled similarities); GL = GS > threshold.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def area_pooling_matrix(size: int, grid: int) -> np.ndarray:
    """(grid, size): share of pixel p's extent [p, p+1) inside bin i, over the bin's width."""
    edges = np.arange(grid + 1) * size / grid
    lo = np.maximum(edges[:-1, None], np.arange(size)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(size)[None, :] + 1)
    matrix = np.clip(hi - lo, 0.0, None) / (size / grid)
    matrix.setflags(write=False)
    return matrix


def area_pool(maps: np.ndarray, grid: int) -> np.ndarray:
    """(..., size, size) -> (..., grid, grid) exact area means."""
    pool = area_pooling_matrix(maps.shape[-1], grid)
    return np.einsum("ip,...pq,jq->...ij", pool, maps, pool, optimize=True)


def soft_labels(maps: np.ndarray, grid: int) -> np.ndarray:
    """GS: (m, size, size) maps -> (m, grid*grid) rows scaled to max 1 (all-zero rows stay zero)."""
    pooled = area_pool(maps, grid).reshape(len(maps), grid * grid)
    peak = pooled.max(axis=1, keepdims=True)
    return np.divide(pooled, peak, out=np.zeros_like(pooled), where=peak > 0)


def hard_labels(soft: np.ndarray, threshold: float) -> np.ndarray:
    """GL = GS > threshold."""
    return soft > threshold
