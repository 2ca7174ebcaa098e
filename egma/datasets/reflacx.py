"""REFLACX (PhysioNet reflacx-xray-localization 1.0.0), standalone or as MIMIC-Eye's REFLACX part.

Tree (standalone)                          | MIMIC-Eye: patient_<subject_id>/REFLACX/
  main_data/metadata_phase_{1,2,3}.csv     |   metadata.csv
  main_data/<id>/fixations.csv             |   main_data/<id>/...
  main_data/<id>/timestamps_transcription.csv, transcription.txt,
  main_data/<id>/chest_bounding_box.csv, anomaly_location_ellipses.csv
  gaze_data/<id>/gaze.csv                  (1000 Hz samples)

Positions are pixels of the original image and times seconds from the start of the recording,
as in the files. Angular resolution: REFLACX gives, per fixation and per sample, how many pixels
*of the original image, as shown at that moment's zoom* one degree of visual angle spans
(angular_resolution_{x,y}_pixels_per_degree); a reading's px_per_deg is the median over its rows.
Readings with eye_tracking_data_discarded=True are skipped and counted (StudyList.skipped).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from egma.datasets.problems import ProblemLog, StudyList
from egma.datasets.sentences import split_report
from egma.datasets.study import FixationTable, GazeSamples, Reading, Study, Transcript
from egma.datasets.tables import check_non_decreasing, check_not_before, parse_bool, read_table
from egma.datasets.errors import DataFormatError

METADATA_COLUMNS = ("id", "split", "eye_tracking_data_discarded", "image", "dicom_id", "subject_id",
                    "image_size_x", "image_size_y")
FIXATION_COLUMNS = ("timestamp_start_fixation", "timestamp_end_fixation", "x_position", "y_position")
GAZE_COLUMNS = ("timestamp_sample", "x_position", "y_position")
WORD_COLUMNS = ("word", "timestamp_start_word", "timestamp_end_word")
BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
ANGULAR_COLUMNS = ("angular_resolution_x_pixels_per_degree", "angular_resolution_y_pixels_per_degree")
SAMPLE_RATE_HZ = 1000.0
# Real ids look like P102R108387: phase digit, two-digit radiologist, R, case number.
_READER_IN_ID = re.compile(r"^P\d(\d{2})R\d+$")
_STUDY_IN_PATH = re.compile(r"/s(\d+)/")


@dataclass
class ReflacxCase:
    """One REFLACX reading with the metadata of the image it was made on."""
    reading: Reading
    dicom_id: str
    subject_id: str
    study_id: str
    image: str                           # the metadata's `image` column (a MIMIC-CXR DICOM path)
    image_size: tuple[int, int]          # (height, width)
    split: str
    transcription: str                   # transcription.txt, or the words joined when it is absent
    boxes: dict[str, list[tuple[float, float, float, float]]]
    listed_at: tuple[Path, int]          # metadata file and 1-based data row of this reading


def metadata_files(root: Path) -> list[Path]:
    """metadata_phase_*.csv (standalone) or metadata.csv (MIMIC-Eye), whichever the tree has."""
    found = sorted((root / "main_data").glob("metadata_phase_*.csv"))
    found += [p for p in (root / "metadata.csv", root / "main_data" / "metadata.csv") if p.is_file()]
    return found


def read_metadata(root: Path) -> pd.DataFrame:
    """All metadata rows, with `source_file` and `source_row` (1-based data row) kept for error messages."""
    files = metadata_files(root)
    if not files:
        raise DataFormatError(root / "main_data", "no metadata_phase_*.csv or metadata.csv found")
    parts = []
    for path in files:
        table = read_table(path, METADATA_COLUMNS, numeric=("image_size_x", "image_size_y"),
                           not_null=("id", "dicom_id", "subject_id", "image_size_x", "image_size_y"))
        table["discarded"] = parse_bool(path, table["eye_tracking_data_discarded"], "eye_tracking_data_discarded")
        table["source_file"], table["source_row"] = str(path), np.arange(1, len(table) + 1)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def read_cases(root: str | Path, *, samples: bool = True, problems: ProblemLog) -> list[ReflacxCase]:
    """Every non-discarded reading of a REFLACX tree; incomplete readings go to `problems`."""
    root = Path(root)
    meta = read_metadata(root)
    problems.skip("REFLACX eye_tracking_data_discarded=True", int(meta["discarded"].sum()))
    cases = []
    for row in meta[~meta["discarded"]].itertuples(index=False):
        case = _read_case(root, row, samples, problems)
        if case is not None:
            cases.append(case)
    return cases


def read_reflacx(root: str | Path, images_root: str | Path | None = None, *, samples: bool = True,
                 allow_partial: bool = False) -> StudyList:
    """Studies of a standalone REFLACX tree, one per image, with all its readings.

    images_root: a MIMIC-CXR-JPG root (files/pXX/p<subject>/s<study>/<dicom>.jpg); each image
    must exist there. Without it image_path is the metadata's DICOM path, unchecked.
    The report sentences are the first reading's dictation (REFLACX has no MIMIC report).
    samples=False skips the 1000 Hz gaze.csv files (Reading.samples is None), for speed.
    """
    from egma.datasets.mimic_cxr import jpg_path

    problems = ProblemLog(root)
    by_image: dict[str, Study] = {}
    for case in read_cases(root, samples=samples, problems=problems):
        study = by_image.get(case.dicom_id)
        if study is None:
            if images_root is None:
                image_path = Path(case.image)
            else:
                image_path = jpg_path(images_root, case.subject_id, case.study_id, case.dicom_id)
                if not image_path.is_file():
                    problems.add(case.listed_at[0], f"image file {image_path} not found",
                                 row=case.listed_at[1], column="dicom_id")
                    continue
            study = by_image[case.dicom_id] = Study(
                study_id=case.study_id, subject_id=case.subject_id, dicom_id=case.dicom_id,
                image_path=image_path, image_size=case.image_size,
                report_sentences=split_report(case.transcription), split=case.split)
        study.readings.append(case.reading)
        merge_boxes(study.boxes, case.boxes)
    problems.finish(allow_partial)
    return StudyList(by_image.values(), problems)


def merge_boxes(into: dict[str, list], boxes: dict[str, list]) -> None:
    for name, items in boxes.items():
        into.setdefault(name, []).extend(items)


def _read_case(root: Path, row, samples: bool, problems: ProblemLog) -> ReflacxCase | None:
    folder = root / "main_data" / row.id
    needed = [folder / "fixations.csv", folder / "timestamps_transcription.csv"]
    if samples:
        needed.append(root / "gaze_data" / row.id / "gaze.csv")
    missing = [p for p in needed if not p.is_file()]
    for path in missing:
        problems.add(path, f"file of REFLACX reading {row.id} (metadata row {row.source_row}) is missing")
    if missing:
        return None
    fixations, fixation_res = read_fixations(folder / "fixations.csv")
    transcript = read_words(folder / "timestamps_transcription.csv")
    gaze, gaze_res = read_gaze(root / "gaze_data" / row.id / "gaze.csv") if samples else (None, None)
    px_per_deg = gaze_res or fixation_res
    if gaze is not None:
        gaze.px_per_deg = px_per_deg
    match = _READER_IN_ID.match(row.id)
    study = _STUDY_IN_PATH.search(row.image)
    text_file = folder / "transcription.txt"
    return ReflacxCase(
        reading=Reading(reading_id=row.id, reader_id=f"reflacx-{match.group(1)}" if match else "reflacx",
                        source="reflacx", transcript=transcript, samples=gaze, fixations=fixations),
        dicom_id=row.dicom_id, subject_id=str(row.subject_id), study_id=study.group(1) if study else "",
        image=row.image, image_size=(int(row.image_size_y), int(row.image_size_x)), split=row.split,
        transcription=text_file.read_text(encoding="utf-8") if text_file.is_file() else transcript.text,
        boxes=read_boxes(folder), listed_at=(Path(row.source_file), int(row.source_row)))


def read_fixations(path: Path) -> tuple[FixationTable, tuple[float, float] | None]:
    table = read_table(path, FIXATION_COLUMNS, numeric=FIXATION_COLUMNS + ANGULAR_COLUMNS,
                       not_null=FIXATION_COLUMNS[:2], optional=ANGULAR_COLUMNS)
    check_non_decreasing(path, table, "timestamp_start_fixation")
    check_not_before(path, table, "timestamp_start_fixation", "timestamp_end_fixation")
    fixations = FixationTable(t_start=table["timestamp_start_fixation"].to_numpy(),
                              t_end=table["timestamp_end_fixation"].to_numpy(),
                              x=table["x_position"].to_numpy(), y=table["y_position"].to_numpy())
    return fixations, angular_resolution(table)


def read_gaze(path: Path) -> tuple[GazeSamples, tuple[float, float] | None]:
    table = read_table(path, GAZE_COLUMNS, numeric=GAZE_COLUMNS + ANGULAR_COLUMNS,
                       not_null=("timestamp_sample",), optional=ANGULAR_COLUMNS)
    check_non_decreasing(path, table, "timestamp_sample")
    samples = GazeSamples(t=table["timestamp_sample"].to_numpy(), x=table["x_position"].to_numpy(),
                          y=table["y_position"].to_numpy(), rate_hz=SAMPLE_RATE_HZ)
    return samples, angular_resolution(table)


def angular_resolution(table: pd.DataFrame) -> tuple[float, float] | None:
    """Median image pixels per degree over the rows (x, y); None when the columns are absent/empty."""
    if not all(c in table for c in ANGULAR_COLUMNS):
        return None
    x, y = (table[c].to_numpy(dtype=float) for c in ANGULAR_COLUMNS)
    if np.isnan(x).all() or np.isnan(y).all():
        return None
    return float(np.nanmedian(x)), float(np.nanmedian(y))


def read_words(path: Path) -> Transcript:
    table = read_table(path, WORD_COLUMNS, numeric=WORD_COLUMNS[1:], not_null=WORD_COLUMNS)
    check_non_decreasing(path, table, "timestamp_start_word")
    check_not_before(path, table, "timestamp_start_word", "timestamp_end_word")
    return Transcript(tokens=table["word"].str.strip().tolist(),
                      t_start=table["timestamp_start_word"].to_numpy(),
                      t_end=table["timestamp_end_word"].to_numpy())


def read_boxes(folder: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """chest_bounding_box.csv -> "chest"; anomaly_location_ellipses.csv -> one entry per finding
    column that is True on the ellipse's row (the ellipse's bounding box)."""
    boxes: dict[str, list] = {}
    chest = folder / "chest_bounding_box.csv"
    if chest.is_file():
        table = read_table(chest, BOX_COLUMNS, numeric=BOX_COLUMNS, not_null=BOX_COLUMNS)
        boxes["chest"] = [tuple(map(float, r)) for r in table[list(BOX_COLUMNS)].to_numpy()]
    ellipses = folder / "anomaly_location_ellipses.csv"
    if ellipses.is_file():
        header = [c.strip() for c in pd.read_csv(ellipses, nrows=0).columns]
        findings = [c for c in header if c not in BOX_COLUMNS and c != "certainty"]
        table = read_table(ellipses, BOX_COLUMNS + tuple(findings), numeric=BOX_COLUMNS, not_null=BOX_COLUMNS)
        coords = table[list(BOX_COLUMNS)].to_numpy()
        for finding in findings:
            chosen = parse_bool(ellipses, table[finding], finding)
            if chosen.any():
                boxes.setdefault(finding, []).extend(tuple(map(float, r)) for r in coords[chosen])
    return boxes
