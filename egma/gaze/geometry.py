"""The one geometry shared by images and gaze: centred pad-to-square, then resize.

An image of (H, W) pixels is padded to a square of side L = max(H, W), the padding split evenly
between both sides (top/bottom for landscape images, left/right for portrait ones; an odd
remainder goes to the bottom/right), and the square is resized to `size` x `size`.
Continuous pixel coordinates follow the usual convention: pixel (row i, column j) covers
[j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5). Points and heatmaps are mapped with
`square_frame`, the very frame `pad_to_square` uses, so gaze and image can never disagree.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


class SquareFrame(NamedTuple):
    side: int   # L = max(H, W)
    top: int    # rows of padding above the image
    left: int   # columns of padding left of the image


def square_frame(image_size: tuple[int, int]) -> SquareFrame:
    """Where an (H, W) image sits inside its padded square."""
    height, width = int(image_size[0]), int(image_size[1])
    side = max(height, width)
    return SquareFrame(side, (side - height) // 2, (side - width) // 2)


def pad_to_square(array, value: float = 0.0):
    """Pad the last two axes (..., H, W) of a numpy array or torch tensor to a centred square."""
    height, width = array.shape[-2:]
    side, top, left = square_frame((height, width))
    bottom, right = side - height - top, side - width - left
    if isinstance(array, torch.Tensor):
        return F.pad(array, (left, right, top, bottom), value=value)
    widths = [(0, 0)] * (array.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(array, widths, constant_values=value)


def resize_square(array, size: int):
    """Resize the last two axes of a square array to size x size (bilinear, antialiased)."""
    as_tensor = torch.as_tensor(array)
    dtype = as_tensor.dtype
    lead = as_tensor.shape[:-2]
    flat = as_tensor.reshape(1, -1, *as_tensor.shape[-2:]).to(torch.float32)
    out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    out = out.reshape(*lead, size, size)
    if dtype == torch.uint8:
        out = out.round().clamp(0, 255)
    out = out.to(dtype)
    return out if isinstance(array, torch.Tensor) else out.numpy()


def to_model_frame(array, size: int, value: float = 0.0):
    """What the model sees: centred pad-to-square, then resize. Used for images, masks and heatmaps."""
    return resize_square(pad_to_square(array, value), size)


def points_to_model(x, y, image_size: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous original-pixel coordinates -> continuous model-frame coordinates."""
    side, top, left = square_frame(image_size)
    scale = size / side
    return (np.asarray(x, float) + left) * scale, (np.asarray(y, float) + top) * scale


def points_to_patch(x, y, image_size: tuple[int, int], grid: int) -> np.ndarray:
    """Row-major patch index (row * grid + col) of original-pixel points; -1 outside the image."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    u, v = points_to_model(x, y, image_size, grid)  # a grid x grid "image": one pixel per patch
    inside = (x >= 0) & (x < image_size[1]) & (y >= 0) & (y < image_size[0])
    col = np.clip(np.floor(u), 0, grid - 1).astype(np.int64)
    row = np.clip(np.floor(v), 0, grid - 1).astype(np.int64)
    return np.where(inside, row * grid + col, -1)


def image_extent_in_model(image_size: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per model-frame row and column: 1 where the pixel centre falls on the image, 0 on padding."""
    side, top, left = square_frame(image_size)
    centres = (np.arange(size) + 0.5) * side / size
    rows = (centres >= top) & (centres < top + image_size[0])
    cols = (centres >= left) & (centres < left + image_size[1])
    return rows.astype(float), cols.astype(float)
