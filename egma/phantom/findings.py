"""Findings the phantom renderer can draw, and their vocabulary."""
from __future__ import annotations

from dataclasses import dataclass

FINDING_NAMES: tuple[str, ...] = (
    "cardiomegaly", "pleural_effusion", "consolidation", "pneumonia", "atelectasis",
    "edema", "pneumothorax", "nodule", "opacity", "support_devices", "fracture",
)


@dataclass(frozen=True)
class FindingSpec:
    """One finding to draw. `side` is the PATIENT's side (patient right = image left on a PA film)."""
    name: str
    side: str | None = None      # "left" | "right" | "bilateral" | None
    zone: str | None = None      # "upper" | "middle" | "lower" | None
    severity: str | None = None  # "mild" | "moderate" | "severe" | None
