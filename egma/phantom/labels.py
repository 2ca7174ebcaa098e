"""Phantom finding names -> CheXpert's 14 labels, as the CheXpert labeller marks a report: each finding
mentioned sets its own label (1 asserted, 0 only denied); "No Finding" is 1 when nothing but support
devices is asserted, and never 0."""
from __future__ import annotations

import math

from egma.datasets.downstream import CHEXPERT_CSV_LABELS  # noqa: F401  (re-exported for the writers)
from egma.datasets.study import CHEXPERT_LABELS

FINDING_TO_CHEXPERT = {
    "cardiomegaly": "Cardiomegaly", "pleural_effusion": "Pleural Effusion", "consolidation": "Consolidation",
    "pneumonia": "Pneumonia", "atelectasis": "Atelectasis", "edema": "Edema", "pneumothorax": "Pneumothorax",
    "nodule": "Lung Lesion", "opacity": "Lung Opacity", "support_devices": "Support Devices",
    "fracture": "Fracture",
}


def chexpert_labels(positive: set[str], negative: set[str] = frozenset()) -> dict[str, float]:
    """1.0 for asserted findings' labels, 0.0 for only-denied ones, nan for the unmentioned."""
    labels = {k: math.nan for k in CHEXPERT_LABELS}
    labels.update({FINDING_TO_CHEXPERT[name]: 0.0 for name in negative})
    labels.update({FINDING_TO_CHEXPERT[name]: 1.0 for name in positive})
    if positive <= {"support_devices"}:
        labels["No Finding"] = 1.0
    return labels
