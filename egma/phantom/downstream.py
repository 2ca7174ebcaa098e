"""Phantom downstream sets in the real formats: CheXpert (train/valid, 5x200, 8x200), RSNA Pneumonia, SIIM-ACR.

Each image is rendered from the findings its labels state, so a model that learned the findings from
phantom MIMIC-Eye reports can be evaluated on them exactly as on the real sets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from egma.config import PhantomConfig
from egma.phantom.findings import FindingSpec
from egma.phantom.labels import CHEXPERT_CSV_LABELS, chexpert_labels
from egma.phantom.render_pool import render_many
from egma.phantom.writers import write_csv

FIVE_CLASSES = {  # CheXpert 5x200 class -> the phantom finding that shows it
    "Atelectasis": "atelectasis", "Cardiomegaly": "cardiomegaly", "Consolidation": "consolidation",
    "Edema": "edema", "Pleural Effusion": "pleural_effusion",
}
EIGHT_CLASSES = {  # CheXpert 8x200 retrieval classes
    "No Finding": None, "Cardiomegaly": "cardiomegaly", "Edema": "edema", "Pneumonia": "pneumonia",
    "Atelectasis": "atelectasis", "Pneumothorax": "pneumothorax", "Pleural Effusion": "pleural_effusion",
    "Fracture": "fracture",
}
LATERAL = ("left", "right")
ZONED = {"consolidation", "pneumonia", "atelectasis", "opacity", "nodule"}
SEVERITIES = ("mild", "moderate", "severe")


def random_finding(name: str, rng: np.random.Generator) -> FindingSpec:
    """A finding with a plausible side, zone and severity."""
    if name in ("cardiomegaly", "support_devices"):
        return FindingSpec(name, severity=str(rng.choice(SEVERITIES)) if name == "cardiomegaly" else None)
    if name == "edema":
        return FindingSpec(name, side="bilateral", severity=str(rng.choice(SEVERITIES)))
    side = str(rng.choice(LATERAL + ("bilateral",), p=(0.4, 0.4, 0.2))) if name == "pleural_effusion" else str(rng.choice(LATERAL))
    zone = str(rng.choice(("upper", "middle", "lower"), p=(0.2, 0.3, 0.5))) if name in ZONED else None
    return FindingSpec(name, side=side, zone=zone, severity=str(rng.choice(SEVERITIES)))


def _chexpert_rows(paths: list[str], findings: list[list[FindingSpec]], rng: np.random.Generator) -> pd.DataFrame:
    """One CheXpert row per image, labelled as a report naming exactly its findings would be."""
    rows = []
    for path, fs in zip(paths, findings):
        labels = chexpert_labels({f.name for f in fs})
        rows.append({"Path": path, "Sex": str(rng.choice(("Female", "Male"))), "Age": int(rng.integers(20, 90)),
                     "Frontal/Lateral": "Frontal", "AP/PA": str(rng.choice(("AP", "PA"))),
                     **{k: labels[k] for k in CHEXPERT_CSV_LABELS}})
    return pd.DataFrame(rows)


def _write_chexpert_split(root: Path, split: str, first_patient: int, findings: list[list[FindingSpec]],
                          cfg: PhantomConfig, rng: np.random.Generator, seeds: np.ndarray, workers: int) -> pd.DataFrame:
    paths = [f"CheXpert-v1.0-small/{split}/patient{first_patient + i:05d}/study1/view1_frontal.jpg"
             for i in range(len(findings))]
    render_many([root / p for p in paths], findings, seeds, cfg.downstream_image_size, workers)
    return _chexpert_rows(paths, findings, rng)


def write_chexpert(root: Path, cfg: PhantomConfig, rng: np.random.Generator, workers: int = 1) -> None:
    """train.csv / valid.csv (multi-label, for linear probing), chexpert_5x200.csv and chexpert_8x200.csv
    (each image positive for exactly one class, on patients not in train/valid)."""
    pool = ("cardiomegaly", "pleural_effusion", "consolidation", "pneumonia", "atelectasis", "edema",
            "pneumothorax", "nodule", "opacity", "support_devices", "fracture")

    def multi_label(n: int) -> list[list[FindingSpec]]:
        out = []
        for _ in range(n):
            k = int(rng.choice((0, 1, 2, 3), p=(0.25, 0.4, 0.25, 0.1)))
            out.append([random_finding(str(name), rng) for name in rng.choice(pool, size=k, replace=False)])
        return out

    def single(classes: dict[str, str | None], per_class: int) -> list[list[FindingSpec]]:
        return [[random_finding(f, rng)] if f else [] for f in classes.values() for _ in range(per_class)]

    sets = {"train.csv": ("train", multi_label(cfg.n_chexpert_train)),
            "valid.csv": ("valid", multi_label(max(cfg.n_chexpert_train // 4, 20))),
            "chexpert_5x200.csv": ("train", single(FIVE_CLASSES, cfg.n_per_class_5x200)),
            "chexpert_8x200.csv": ("train", single(EIGHT_CLASSES, cfg.n_per_class_8x200))}
    patient = 1
    for name, (split, findings) in sets.items():
        seeds = rng.integers(0, 2**31, size=len(findings))
        table = _write_chexpert_split(root, split, patient, findings, cfg, rng, seeds, workers)
        patient += len(findings)
        write_csv(table, root / "CheXpert-v1.0-small" / name, "%.1f")


def _hex_id(rng: np.random.Generator) -> str:
    h = rng.bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def write_rsna(root: Path, cfg: PhantomConfig, rng: np.random.Generator, workers: int = 1) -> None:
    """stage_2_train_labels.csv (one row per box; Target 0 rows have empty boxes) and images named by patientId.
    About 23 % positive, as in the real set."""
    ids = [_hex_id(rng) for _ in range(cfg.n_rsna)]
    positive = rng.random(cfg.n_rsna) < 0.23
    findings = [[random_finding("pneumonia", rng)] if p else [] for p in positive]
    for fs in findings:  # half the real positives are bilateral: add a second focus
        if fs and rng.random() < 0.5:
            other = "left" if fs[0].side == "right" else "right"
            fs.append(FindingSpec("pneumonia", side=other, zone=fs[0].zone, severity=fs[0].severity))
    seeds = rng.integers(0, 2**31, size=cfg.n_rsna)
    rendered = render_many([root / "stage_2_train_images" / f"{i}.jpg" for i in ids], findings, seeds,
                           cfg.downstream_image_size, workers, keep_masks=True)
    rows = []
    for pid, fs, masks in zip(ids, findings, rendered):
        if not fs:
            rows.append({"patientId": pid, "x": np.nan, "y": np.nan, "width": np.nan, "height": np.nan, "Target": 0})
            continue
        for box in _component_boxes(masks["pneumonia"]):
            x0, y0, x1, y1 = box
            rows.append({"patientId": pid, "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "Target": 1})
    write_csv(pd.DataFrame(rows), root / "stage_2_train_labels.csv", "%.1f")


def write_siim(root: Path, cfg: PhantomConfig, rng: np.random.Generator, workers: int = 1) -> None:
    """train-rle.csv (ImageId, EncodedPixels with -1 for none; Kaggle's column-major relative RLE) and images.
    About 22 % positive, as in the real set (2,379 of 10,679)."""
    from egma.datasets.rle import rle_encode

    ids = [f"1.2.276.0.7230010.3.1.4.8323329.{int(rng.integers(1000, 99999))}.{i}" for i in range(cfg.n_siim)]
    positive = rng.random(cfg.n_siim) < 0.22
    findings = [[random_finding("pneumothorax", rng)] if p else [] for p in positive]
    seeds = rng.integers(0, 2**31, size=cfg.n_siim)
    rendered = render_many([root / "dicom-images-train" / f"{i}.png" for i in ids], findings, seeds,
                           cfg.downstream_image_size, workers, keep_masks=True)
    rows = [{"ImageId": i, " EncodedPixels": rle_encode(m["pneumothorax"]) if fs else "-1"}
            for i, fs, m in zip(ids, findings, rendered)]
    write_csv(pd.DataFrame(rows), root / "train-rle.csv")


def _component_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each connected component of a mask, like the RSNA readers' boxes."""
    from scipy import ndimage

    labelled, _ = ndimage.label(mask)
    return [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndimage.find_objects(labelled) if s is not None]
