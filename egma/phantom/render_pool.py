"""Render many phantom images to disk, in parallel worker processes when asked."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from egma.phantom.render import render_radiograph
from egma.phantom.findings import FindingSpec


def save_image(path: Path, image: np.ndarray) -> None:
    """JPEG for .jpg paths (as MIMIC-CXR-JPG and CheXpert ship), lossless PNG otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        Image.fromarray(image).save(path, format="JPEG", quality=92)
    else:
        Image.fromarray(image).save(path, format="PNG")


def _render_one(args) -> dict[str, np.ndarray] | None:
    path, findings, seed, size, keep_masks = args
    rendered = render_radiograph(findings, size, int(seed))
    save_image(Path(path), rendered.image)
    return rendered.finding_masks if keep_masks else None


def render_many(paths: Sequence[Path], findings: Sequence[Sequence[FindingSpec]], seeds: Sequence[int],
                size: int, workers: int = 1, keep_masks: bool = False) -> list[dict[str, np.ndarray] | None]:
    """Render and save one image per path; returns each image's finding masks when keep_masks."""
    jobs = [(p, list(f), s, size, keep_masks) for p, f, s in zip(paths, findings, seeds)]
    if workers <= 1:
        return [_render_one(j) for j in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_render_one, jobs, chunksize=8))
