"""The SIIM-ACR pneumothorax run-length encoding (Kaggle train-rle.csv, EncodedPixels).

Pixels are numbered column by column (index = column * height + row, i.e. the transposed image
flattened), and the pairs are *relative*: "gap length gap length ...", where each gap counts the
background pixels since the end of the previous run (from pixel 0 for the first). "-1" means
no pneumothorax.
"""
from __future__ import annotations

import numpy as np

EMPTY = "-1"


def rle_decode(encoded: str, shape: tuple[int, int] = (1024, 1024)) -> np.ndarray:
    """EncodedPixels -> bool mask of `shape` (height, width). Raises ValueError on a malformed code."""
    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    text = encoded.strip()
    if text == EMPTY or not text:
        return mask.reshape(shape)
    numbers = np.array(text.split(), dtype=np.int64)
    if len(numbers) % 2 or (numbers < 0).any():
        raise ValueError("EncodedPixels must be pairs of non-negative integers")
    gaps, lengths = numbers[0::2], numbers[1::2]
    ends = np.cumsum(gaps + lengths)
    starts = ends - lengths
    if len(ends) and ends[-1] > mask.size:
        raise ValueError(f"runs end at pixel {ends[-1]}, beyond a {shape[0]}x{shape[1]} image")
    # Mark run starts +1 and run ends -1, then a running sum fills the runs.
    edges = np.zeros(mask.size + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, ends, -1)
    mask = np.cumsum(edges[:-1]) > 0
    return mask.reshape(shape[1], shape[0]).T


def rle_encode(mask: np.ndarray) -> str:
    """Bool (height, width) mask -> EncodedPixels; an empty mask gives "-1"."""
    flat = np.asarray(mask, dtype=bool).T.ravel()
    padded = np.concatenate([[False], flat, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = changes[0::2], changes[1::2]
    if not len(starts):
        return EMPTY
    gaps = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(map(str, np.column_stack([gaps, ends - starts]).ravel()))
