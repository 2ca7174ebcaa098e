"""EGD-CXR (PhysioNet egd-cxr 1.0.0), standalone or as MIMIC-Eye's EyeGaze part.

Tree: master_sheet.csv, eye_gaze.csv (60 Hz Gazepoint GP3 samples), fixations.csv,
bounding_boxes.csv, audio_segmentation_transcripts/<dicom_id>/transcript.json.

- Positions: X_ORIGINAL/Y_ORIGINAL are EGD-CXR's mapping of the *fixation* point of gaze
  (FPOGX*1920, FPOGY*1080 through the master sheet's pads; off-image points are negative, read
  as NaN) and give the fixation table. Raw samples are the unfiltered best point of gaze
  (BPOGX, BPOGY, fractions of the screen) mapped to image pixels through the same pads, so that
  fixations can be detected from them like from REFLACX's samples.
- Validity: a sample is NaN when BPOGV is 0 (blink, track loss) or its point is off the image.
- Times: "Time (in secs)" (samples) and FPOGS/FPOGD (fixation start/duration) are used as
  written. Gazepoint's clock starts at initialisation/calibration; EGD-CXR's own tools treat the
  last Time of an image as its duration, i.e. the clock starts with the image, as do the
  transcript's begin_time/end_time.
- px_per_deg: the image is scaled to fit a 1920 x 1080 screen, leaving the master sheet's pads
  (screen pixels); one degree spans distance*tan(1 deg)/pixel_pitch screen pixels, divided by
  the screen-pixels-per-image-pixel scale. Screen width and viewing distance are not published
  with the data: GazeConfig.egd_screen_width_mm / egd_viewing_distance_mm hold our assumptions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from egma.config import GazeConfig
from egma.datasets.errors import DataFormatError
from egma.datasets.problems import ProblemLog, StudyList
from egma.datasets.sentences import split_report
from egma.datasets.study import FixationTable, GazeSamples, Reading, Study, Transcript
from egma.datasets.tables import check_non_decreasing, check_not_before, read_json, read_table, to_float

MASTER_COLUMNS = ("dicom_id", "path", "study_id", "patient_id",
                  "image_top_pad", "image_bottom_pad", "image_left_pad", "image_right_pad")
PADS = MASTER_COLUMNS[4:]
TIME = "Time (in secs)"
GAZE_COLUMNS = ("DICOM_ID", TIME, "BPOGV", "BPOGX", "BPOGY")
FIXATION_COLUMNS = ("DICOM_ID", "FPOGS", "FPOGD", "X_ORIGINAL", "Y_ORIGINAL")
BOX_COLUMNS = ("dicom_id", "bbox_name", "x1", "x2", "y1", "y2")
SAMPLE_RATE_HZ = 60.0
READER_ID = "egd-cxr"   # EGD-CXR was read by one radiologist


@dataclass
class EgdCase:
    """One EGD-CXR reading with its master-sheet row."""
    reading: Reading
    dicom_id: str
    subject_id: str
    study_id: str
    pads: tuple[float, float, float, float]   # top, bottom, left, right (screen pixels)
    full_text: str
    boxes: dict[str, list[tuple[float, float, float, float]]]
    listed_at: tuple[Path, int]                # master_sheet.csv and 1-based data row of this image


def px_per_deg(image_size: tuple[int, int], pads: tuple[float, float, float, float],
               gaze: GazeConfig = GazeConfig()) -> tuple[float, float]:
    """Original-image pixels per degree of visual angle, (x, y), for an image shown with `pads`."""
    screen_w, screen_h = gaze.egd_screen_px
    screen_px_per_deg = gaze.egd_screen_px_per_deg
    top, bottom, left, right = pads
    height, width = image_size
    scale_x = (screen_w - left - right) / width       # screen pixels per image pixel
    scale_y = (screen_h - top - bottom) / height
    return float(screen_px_per_deg / scale_x), float(screen_px_per_deg / scale_y)


def read_cases(root: str | Path, *, samples: bool = True, problems: ProblemLog) -> list[EgdCase]:
    """Every master-sheet image of an EGD-CXR tree with its gaze; incomplete ones go to `problems`."""
    root = Path(root)
    master = read_table(root / "master_sheet.csv", MASTER_COLUMNS, numeric=PADS, not_null=MASTER_COLUMNS)
    fixations = _grouped(root / "fixations.csv", FIXATION_COLUMNS, "FPOGS")
    gaze = _grouped(root / "eye_gaze.csv", GAZE_COLUMNS, TIME) if samples else None
    boxes = _read_boxes(root / "bounding_boxes.csv")
    cases = []
    for number, row in enumerate(master.itertuples(index=False), start=1):
        transcript_path = root / "audio_segmentation_transcripts" / row.dicom_id / "transcript.json"
        missing = []
        if row.dicom_id not in fixations[1]:
            missing.append((root / "fixations.csv", "no fixation rows"))
        if gaze is not None and row.dicom_id not in gaze[1]:
            missing.append((root / "eye_gaze.csv", "no eye-gaze rows"))
        if not transcript_path.is_file():
            missing.append((transcript_path, "file missing"))
        for path, what in missing:
            problems.add(path, f"{what} for EGD-CXR image {row.dicom_id} (master_sheet.csv row {number})",
                         column="DICOM_ID")
        if missing:
            continue
        transcript, full_text = read_transcript(transcript_path)
        cases.append(EgdCase(
            reading=Reading(reading_id=row.dicom_id, reader_id=READER_ID, source="egd-cxr", transcript=transcript,
                            samples=_samples(gaze, row.dicom_id) if gaze is not None else None,
                            fixations=_fixations(fixations, row.dicom_id)),
            dicom_id=row.dicom_id, subject_id=row.patient_id, study_id=row.study_id,
            pads=tuple(float(getattr(row, p)) for p in PADS), full_text=full_text,
            boxes=boxes.get(row.dicom_id, {}), listed_at=(root / "master_sheet.csv", number)))
    return cases


def read_egd_cxr(root: str | Path, images_root: str | Path, *, samples: bool = True,
                 allow_partial: bool = False, gaze_config: GazeConfig = GazeConfig()) -> StudyList:
    """Studies of a standalone EGD-CXR tree; images come from a MIMIC-CXR-JPG root.

    The image size (for px_per_deg) is read from each JPEG's header. The report sentences are the
    transcript's full_text (EGD-CXR ships no MIMIC report). samples=False skips eye_gaze.csv.
    """
    from PIL import Image

    from egma.datasets.mimic_cxr import jpg_path

    problems = ProblemLog(root)
    studies = []
    for case in read_cases(root, samples=samples, problems=problems):
        image_path = jpg_path(images_root, case.subject_id, case.study_id, case.dicom_id)
        if not image_path.is_file():
            problems.add(case.listed_at[0], f"image file {image_path} not found", row=case.listed_at[1],
                         column="dicom_id")
            continue
        with Image.open(image_path) as image:
            size = (image.height, image.width)
        studies.append(case_study(case, image_path, size, split_report(case.full_text), gaze_config))
    problems.finish(allow_partial)
    return StudyList(studies, problems)


def case_study(case: EgdCase, image_path: Path, image_size: tuple[int, int], sentences: list[str],
               gaze_config: GazeConfig) -> Study:
    """The Study of one standalone EGD-CXR reading."""
    set_display(case, image_size, gaze_config)
    return Study(study_id=case.study_id, subject_id=case.subject_id, dicom_id=case.dicom_id,
                 image_path=image_path, image_size=image_size, report_sentences=sentences,
                 readings=[case.reading], boxes={k: list(v) for k, v in case.boxes.items()})


def set_display(case: EgdCase, image_size: tuple[int, int], gaze_config: GazeConfig) -> None:
    """Map the reading's samples from screen fractions to image pixels and give them the angular
    resolution of the image as it was displayed."""
    samples = case.reading.samples
    if samples is None:
        return
    screen_w, screen_h = gaze_config.egd_screen_px
    top, bottom, left, right = case.pads
    height, width = image_size
    x = (samples.x * screen_w - left) * width / (screen_w - left - right)
    y = (samples.y * screen_h - top) * height / (screen_h - top - bottom)
    off_image = (x < 0) | (y < 0) | (x > width) | (y > height)
    samples.x, samples.y = np.where(off_image, np.nan, x), np.where(off_image, np.nan, y)
    samples.px_per_deg = px_per_deg(image_size, case.pads, gaze_config)


def read_transcript(path: Path) -> tuple[Transcript, str]:
    """transcript.json -> phrases with times; row = 1-based index into time_stamped_text."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("time_stamped_text"), list):
        raise DataFormatError(path, "missing or malformed key", column="time_stamped_text")
    phrases = pd.DataFrame(data["time_stamped_text"], columns=["phrase", "begin_time", "end_time"])
    for key in ("phrase", "begin_time", "end_time"):
        blank = phrases[key].isna().to_numpy()
        if blank.any():
            raise DataFormatError(path, "missing value in time_stamped_text", row=int(np.argmax(blank)) + 1, column=key)
    times = pd.DataFrame({key: to_float(path, phrases[key], key) for key in ("begin_time", "end_time")})
    check_non_decreasing(path, times, "begin_time")
    check_not_before(path, times, "begin_time", "end_time")
    transcript = Transcript(tokens=[str(p).strip() for p in phrases["phrase"]],
                            t_start=times["begin_time"].to_numpy(), t_end=times["end_time"].to_numpy())
    return transcript, str(data.get("full_text") or transcript.text)


def _grouped(path: Path, columns: tuple[str, ...], time: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A per-image table with its row indices grouped by DICOM_ID; times checked per image."""
    table = read_table(path, columns, numeric=columns[1:], not_null=("DICOM_ID", time))
    check_non_decreasing(path, table, time, group="DICOM_ID")
    return table, table.groupby("DICOM_ID", sort=False).indices


def _positions(table: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = table["X_ORIGINAL"].to_numpy()[rows]
    y = table["Y_ORIGINAL"].to_numpy()[rows]
    off_image = (x < 0) | (y < 0)
    return np.where(off_image, np.nan, x), np.where(off_image, np.nan, y)


def _samples(grouped, dicom_id: str) -> GazeSamples:
    table, index = grouped
    rows = index[dicom_id]
    invalid = table["BPOGV"].to_numpy()[rows] == 0
    # screen fractions until set_display knows the image size
    x = np.where(invalid, np.nan, table["BPOGX"].to_numpy()[rows])
    y = np.where(invalid, np.nan, table["BPOGY"].to_numpy()[rows])
    return GazeSamples(t=table[TIME].to_numpy()[rows], x=x, y=y, rate_hz=SAMPLE_RATE_HZ)


def _fixations(grouped, dicom_id: str) -> FixationTable:
    table, index = grouped
    rows = index[dicom_id]
    start = table["FPOGS"].to_numpy()[rows]
    x, y = _positions(table, rows)
    return FixationTable(t_start=start, t_end=start + table["FPOGD"].to_numpy()[rows], x=x, y=y)


def _read_boxes(path: Path) -> dict[str, dict[str, list[tuple[float, float, float, float]]]]:
    """bounding_boxes.csv -> {dicom_id: {bbox_name: [(x1, y1, x2, y2), ...]}}; the file is optional."""
    if not path.is_file():
        return {}
    table = read_table(path, BOX_COLUMNS, numeric=BOX_COLUMNS[2:], not_null=BOX_COLUMNS)
    out: dict[str, dict[str, list]] = {}
    for dicom_id, name, x1, x2, y1, y2 in table[list(BOX_COLUMNS)].itertuples(index=False):
        out.setdefault(dicom_id, {}).setdefault(name, []).append((x1, y1, x2, y2))
    return out
