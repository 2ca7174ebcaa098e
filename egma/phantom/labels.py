"""Phantom finding names -> CheXpert's 14 labels (the labeler's hierarchy: lung opacity covers the
parenchymal findings; "No Finding" means no pathology, support devices allowed)."""
from __future__ import annotations

import math

from egma.datasets.downstream import CHEXPERT_CSV_LABELS  # noqa: F401  (re-exported for the writers)
from egma.datasets.study import CHEXPERT_LABELS

FINDING_TO_CHEXPERT = {
    "cardiomegaly": ("Cardiomegaly", "Enlarged Cardiomediastinum"),
    "pleural_effusion": ("Pleural Effusion",),
    "consolidation": ("Consolidation", "Lung Opacity"),
    "pneumonia": ("Pneumonia", "Lung Opacity"),
    "atelectasis": ("Atelectasis", "Lung Opacity"),
    "edema": ("Edema", "Lung Opacity"),
    "pneumothorax": ("Pneumothorax",),
    "nodule": ("Lung Lesion",),
    "opacity": ("Lung Opacity",),
    "support_devices": ("Support Devices",),
    "fracture": ("Fracture",),
}


def chexpert_labels(positive: set[str], negative: set[str] = frozenset()) -> dict[str, float]:
    """1.0 for labels a positive finding implies, 0.0 for explicitly negated ones, nan for unmentioned."""
    labels = {k: math.nan for k in CHEXPERT_LABELS}
    for name in negative:
        for label in FINDING_TO_CHEXPERT[name]:
            labels[label] = 0.0
    for name in positive:
        for label in FINDING_TO_CHEXPERT[name]:
            labels[label] = 1.0
    if not positive - {"support_devices"}:
        labels["No Finding"] = 1.0
    return labels
