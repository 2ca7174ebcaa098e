"""The EGMA paper's published numbers, as data, for the reproduction scoreboard (chapter 9).

Every value is copied as printed in the NeurIPS 2024 version (Ma et al., "Eye-gaze Guided Multi-modal
Alignment for Medical Representation Learning"), in percent, with the table it comes from. Only the EGMA
rows and the strongest baselines are kept (the rows of /work/shared/paper_facts.md, which the tests parse
and compare with these, number by number).

Names follow the book's own result files so that the scoreboard can join them: zero-shot sets are
"CheXpert 5x200", "RSNA", "SIIM" and metrics "accuracy", "macro_f1" (chapter 5's zero_shot.csv);
retrieval directions are "image_to_text" / "text_to_image" (retrieval.csv); linear-probe sets are
"CheXpert", "RSNA", "SIIM" with label shares "1%", "10%", "100%" (chapter 6's linear_probe.csv).
"""
from __future__ import annotations

import pandas as pd

CITATION = "Ma et al., NeurIPS 2024"

TABLES = {
    "Table 1": "supervised classification: linear-probe AUROC (%) with 1 %, 10 %, 100 % of the training labels",
    "Table 2": "zero-shot classification: accuracy and F1 (%) on CheXpert 5x200, RSNA, SIIM-ACR",
    "Table 3": "zero-shot retrieval on CheXpert 8x200: Precision@1/5/10 (%)",
    "Table 4": "zero-shot classification ablations: loss modules (upper part) and share of studies with gaze "
               "(lower part, each value the mean of three runs)",
}

ZERO_SHOT_SETS = ("CheXpert 5x200", "RSNA", "SIIM")
ZERO_SHOT_METRICS = ("accuracy", "macro_f1")
RETRIEVAL_KS = (1, 5, 10)
PROBE_LABELS = ("1%", "10%", "100%")

# Table 2: (accuracy, macro-F1) per set.
ZERO_SHOT = {
    "CLIP": {"CheXpert 5x200": (20.10, 9.12), "RSNA": (25.03, 22.07), "SIIM": (49.39, 47.98)},
    "GLoRIA": {"CheXpert 5x200": (53.30, 48.99), "RSNA": (29.15, 28.54), "SIIM": (22.57, 22.57)},
    "MGCA": {"CheXpert 5x200": (43.60, 41.37), "RSNA": (60.83, 57.77), "SIIM": (30.03, 25.45)},
    "MedCLIP": {"CheXpert 5x200": (57.50, 55.97), "RSNA": (43.09, 31.01), "SIIM": (58.40, 57.85)},
    "EGMA": {"CheXpert 5x200": (61.30, 60.38), "RSNA": (76.97, 43.49), "SIIM": (63.62, 61.46)},
}

# Table 3: (P@1, P@5, P@10) per direction; ConVIRT is reported for text->image only.
RETRIEVAL = {
    "GLoRIA": {"image_to_text": (38.75, 31.62, 24.51), "text_to_image": (52.50, 49.00, 50.25)},
    "ConVIRT": {"text_to_image": (60.25, 60.00, 57.50)},
    "MedCLIP": {"image_to_text": (14.50, 15.98, 15.86), "text_to_image": (12.50, 12.50, 15.00)},
    "EGMA": {"image_to_text": (42.65, 37.50, 28.84), "text_to_image": (80.00, 74.50, 69.50)},
}

# Table 1: AUROC with (1 %, 10 %, 100 %) of the training labels; MGCA is kept for CheXpert only.
LINEAR_PROBE = {
    "MGCA": {"CheXpert": (85.80, 87.66, 89.30)},
    "MedCLIP": {"CheXpert": (85.74, 87.49, 88.02), "RSNA": (87.61, 88.19, 89.10), "SIIM": (88.84, 91.13, 92.18)},
    "EGMA": {"CheXpert": (87.71, 88.92, 89.50), "RSNA": (88.41, 89.40, 90.10), "SIIM": (90.78, 92.17, 93.29)},
}

# Table 4, upper part: ((acc, F1) on CheXpert 5x200, RSNA, SIIM) per loss configuration.
ABLATION = {
    "Baseline (MedCLIP init)": ((57.50, 55.97), (43.09, 31.01), (58.40, 57.85)),
    "MLCE only": ((60.90, 59.59), (47.06, 33.04), (27.43, 22.81)),
    "EGF": ((60.30, 58.44), (53.81, 35.52), (63.54, 65.70)),
    "EGM": ((59.30, 57.74), (54.68, 35.80), (52.61, 47.85)),
    "EGF + EGM (EGMA)": ((61.30, 60.38), (76.97, 43.49), (63.62, 61.46)),
}

# Table 4, lower part: EGMA trained with gaze on a share of the 3,695 studies: share -> (studies, results).
GAZE_FRACTION = {
    0.01: (37, ((58.93, 56.62), (40.38, 29.75), (57.90, 57.37))),
    0.05: (185, ((58.93, 56.69), (53.00, 35.13), (59.20, 58.51))),
    0.10: (370, ((59.30, 57.82), (53.78, 35.37), (58.27, 57.71))),
    0.50: (1848, ((59.55, 58.84), (58.54, 37.01), (61.41, 58.88))),
}

COLUMNS = ("table", "task", "model", "set", "setting", "metric", "gaze_fraction", "value")


def gaze_setting(fraction: float, studies: int) -> str:
    """How a gaze-fraction row is labelled, e.g. "gaze on 1 % of studies (37)"."""
    return f"gaze on {fraction:.0%} of studies ({studies:,})".replace("%", " %")


def _zero_shot_rows(table: str, task: str, model: str, per_set, setting: str = "", gaze_fraction=float("nan")):
    return [(table, task, model, set_name, setting, metric, gaze_fraction, value)
            for set_name, pair in per_set for metric, value in zip(ZERO_SHOT_METRICS, pair)]


def paper_results() -> pd.DataFrame:
    """Every published number above as one tidy table (values in percent), columns COLUMNS.

    `task` is "zero-shot", "retrieval", "linear probe", "ablation" (upper part of Table 4: `model` is the
    paper's row label) or "gaze fraction" (lower part: `gaze_fraction` is the share of studies with gaze).
    """
    rows = []
    for model, per_set in ZERO_SHOT.items():
        rows += _zero_shot_rows("Table 2", "zero-shot", model, per_set.items())
    for model, per_direction in RETRIEVAL.items():
        rows += [("Table 3", "retrieval", model, "CheXpert 8x200", direction, f"P@{k}", float("nan"), value)
                 for direction, values in per_direction.items() for k, value in zip(RETRIEVAL_KS, values)]
    for model, per_set in LINEAR_PROBE.items():
        rows += [("Table 1", "linear probe", model, set_name, labels, "auroc", float("nan"), value)
                 for set_name, values in per_set.items() for labels, value in zip(PROBE_LABELS, values)]
    for label, results in ABLATION.items():
        rows += _zero_shot_rows("Table 4", "ablation", label, zip(ZERO_SHOT_SETS, results))
    for fraction, (studies, results) in GAZE_FRACTION.items():
        rows += _zero_shot_rows("Table 4", "gaze fraction", "EGMA", zip(ZERO_SHOT_SETS, results),
                                gaze_setting(fraction, studies), fraction)
    return pd.DataFrame(rows, columns=list(COLUMNS))
