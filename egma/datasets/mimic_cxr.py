"""MIMIC-CXR-JPG (PhysioNet mimic-cxr-jpg 2.0.0): images and labels of studies without gaze.

Tree:
  files/p<first 2 digits>/p<subject_id>/s<study_id>/<dicom_id>.jpg
  mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, ViewPosition, Rows, Columns, ...
  mimic-cxr-2.0.0-chexpert.csv.gz   subject_id, study_id, the 14 CheXpert labels (1, 0, -1, blank)
  mimic-cxr-2.0.0-split.csv.gz      dicom_id, study_id, subject_id, split
The same three tables, per patient, are MIMIC-Eye's CXR-JPG/cxr_meta.csv, cxr_chexpert.csv and
cxr_split.csv; `image_table` joins them for both readers. Reports live in MIMIC-CXR (not -JPG):
pass reports_root = the folder holding files/pXX/p<subject>/s<study>.txt to get report sentences.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from egma.datasets.problems import ProblemLog, StudyList
from egma.datasets.sentences import split_report
from egma.datasets.study import CHEXPERT_LABELS, Study
from egma.datasets.tables import read_table

META_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns")
LABEL_KEYS = ("subject_id", "study_id")
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")


def jpg_path(root: str | Path, subject_id: str, study_id: str, dicom_id: str) -> Path:
    subject = str(subject_id)
    return Path(root) / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study_id}" / f"{dicom_id}.jpg"


def report_path(root: str | Path, subject_id: str, study_id: str) -> Path:
    """MIMIC-CXR's files/pXX/p<subject>/s<study>.txt."""
    subject = str(subject_id)
    return Path(root) / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study_id}.txt"


def image_table(meta: Path, chexpert: Path, split: Path) -> pd.DataFrame:
    """One row per image: ids as text, Rows/Columns, ViewPosition, split and the 14 labels.

    Images of a study without a label row get NaN labels (unlabelled); without a split row, "train".
    """
    images = read_table(meta, META_COLUMNS, numeric=("Rows", "Columns"),
                        not_null=("dicom_id", "subject_id", "study_id", "Rows", "Columns"))
    labels = read_table(chexpert, LABEL_KEYS + CHEXPERT_LABELS, numeric=CHEXPERT_LABELS, not_null=LABEL_KEYS)
    splits = read_table(split, SPLIT_COLUMNS, not_null=SPLIT_COLUMNS)
    table = images.merge(labels, on=list(LABEL_KEYS), how="left")
    table = table.merge(splits[["dicom_id", "split"]].drop_duplicates("dicom_id"), on="dicom_id", how="left")
    table["split"] = table["split"].fillna("train")
    return table


def label_dicts(table: pd.DataFrame) -> list[dict[str, float]]:
    values = table[list(CHEXPERT_LABELS)].to_numpy(dtype=float)
    return [dict(zip(CHEXPERT_LABELS, row)) for row in values.tolist()]


def read_mimic_cxr_jpg(root: str | Path, reports_root: str | Path | None = None, *,
                       views: tuple[str, ...] | None = ("PA", "AP"), allow_partial: bool = False) -> StudyList:
    """One Study per image of the given views (None = all), without readings.

    Every listed image must exist under files/ (else reported); with reports_root, so must its
    study's report. Missing items raise IncompleteTreeError unless allow_partial=True.
    """
    root = Path(root)
    problems = ProblemLog(root)
    table = image_table(root / "mimic-cxr-2.0.0-metadata.csv.gz", root / "mimic-cxr-2.0.0-chexpert.csv.gz",
                        root / "mimic-cxr-2.0.0-split.csv.gz")
    if views is not None:
        table = table[table["ViewPosition"].isin(views)]
    paths = [jpg_path(root, s, st, d) for s, st, d in zip(table["subject_id"], table["study_id"], table["dicom_id"])]
    exists = np.fromiter((p.is_file() for p in paths), bool, len(paths))
    for i in np.flatnonzero(~exists):
        problems.add(root / "mimic-cxr-2.0.0-metadata.csv.gz", f"image file {paths[i]} not found",
                     row=int(table.index[i]) + 1, column="dicom_id")
    studies = []
    for i, (row, labels) in enumerate(zip(table.itertuples(index=False), label_dicts(table))):
        if not exists[i]:
            continue
        sentences: list[str] = []
        if reports_root is not None:
            report = report_path(reports_root, row.subject_id, row.study_id)
            if not report.is_file():
                problems.add(report, f"report of study {row.study_id} not found")
                continue
            sentences = split_report(report.read_text(encoding="utf-8"))
        studies.append(Study(study_id=row.study_id, subject_id=row.subject_id, dicom_id=row.dicom_id,
                             image_path=paths[i], image_size=(int(row.Rows), int(row.Columns)),
                             report_sentences=sentences, labels=labels, split=row.split))
    problems.finish(allow_partial)
    return StudyList(studies, problems)
