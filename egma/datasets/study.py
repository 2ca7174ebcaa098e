"""The one in-memory form every reader returns, for phantom and real data alike.

Coordinates are pixels of the *original* image (x to the right, y down); times are seconds
from the start of the reading's recording. Arrays are numpy; nothing here depends on torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The 14 CheXpert/MIMIC-CXR labels, in the column order of mimic-cxr-2.0.0-chexpert.csv.
CHEXPERT_LABELS = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
    "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion",
    "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices",
)


@dataclass
class GazeSamples:
    """Raw eye-tracker samples of one reading. Lost samples (blinks, track loss) are NaN."""
    t: np.ndarray          # (N,) float64 seconds, non-decreasing
    x: np.ndarray          # (N,) float64 image pixels
    y: np.ndarray          # (N,) float64 image pixels
    rate_hz: float         # nominal sampling rate (REFLACX 1000, EGD-CXR 60)
    px_per_deg: tuple[float, float] | None = None  # (x, y) angular resolution, if known

    def __len__(self) -> int:
        return len(self.t)


@dataclass
class FixationTable:
    """Fixations, either provided by the dataset or detected from samples."""
    t_start: np.ndarray    # (F,) seconds
    t_end: np.ndarray      # (F,) seconds
    x: np.ndarray          # (F,) image pixels
    y: np.ndarray          # (F,) image pixels

    def __len__(self) -> int:
        return len(self.t_start)

    @property
    def duration(self) -> np.ndarray:
        return self.t_end - self.t_start


@dataclass
class Transcript:
    """Time-stamped dictation tokens: REFLACX words (with "." and "," rows) or EGD-CXR phrases."""
    tokens: list[str]
    t_start: np.ndarray    # (T,) seconds
    t_end: np.ndarray      # (T,) seconds

    @property
    def text(self) -> str:
        out = ""
        for tok in self.tokens:
            out += tok if (tok in {".", ","} or not out) else " " + tok
        return out


@dataclass
class Reading:
    """One radiologist reading one image: what was said when, and where the eyes were."""
    reading_id: str
    reader_id: str
    source: str                        # "reflacx" or "egd-cxr"
    transcript: Transcript
    samples: GazeSamples | None = None
    fixations: FixationTable | None = None


@dataclass
class Study:
    """One chest X-ray with its report, labels and any readings with gaze."""
    study_id: str
    subject_id: str
    dicom_id: str
    image_path: Path
    image_size: tuple[int, int]        # (height, width) of the original image
    report_sentences: list[str]
    labels: dict[str, float] = field(default_factory=dict)   # CheXpert convention: 1, 0, -1, nan
    readings: list[Reading] = field(default_factory=list)
    split: str = "train"
    boxes: dict[str, list[tuple[float, float, float, float]]] = field(default_factory=dict)  # name -> (x1, y1, x2, y2)
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool (H, W), when known

    @property
    def has_gaze(self) -> bool:
        return any(r.samples is not None or r.fixations is not None for r in self.readings)
