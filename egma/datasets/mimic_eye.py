"""MIMIC-Eye (PhysioNet mimic-eye-multimodal-datasets 1.0.0): MIMIC-CXR, REFLACX and EGD-CXR per patient.

  patient_<subject_id>/
    CXR-JPG/s<study_id>/<dicom_id>.jpg, CXR-JPG/cxr_meta.csv, cxr_chexpert.csv, cxr_split.csv
    CXR-DICOM/s<study_id>.txt            the MIMIC-CXR report
    REFLACX/metadata.csv, main_data/<id>/..., gaze_data/<id>/gaze.csv
    EyeGaze/master_sheet.csv, eye_gaze.csv, fixations.csv, bounding_boxes.csv,
            audio_segmentation_transcripts/<dicom_id>/transcript.json

One Study per image that has at least one reading (REFLACX and/or EGD-CXR), with all of them.
The cxr_*.csv tables may also sit in the patient folder itself instead of CXR-JPG/.
"""
from __future__ import annotations

from pathlib import Path

from egma.config import GazeConfig
from egma.datasets import egd_cxr, reflacx
from egma.datasets.mimic_cxr import image_table, label_dicts
from egma.datasets.problems import ProblemLog, StudyList
from egma.datasets.sentences import split_report
from egma.datasets.study import Study

CXR_TABLES = ("cxr_meta.csv", "cxr_chexpert.csv", "cxr_split.csv")


def patient_folders(root: str | Path) -> list[Path]:
    return sorted(p for p in Path(root).glob("patient_*") if p.is_dir())


def read_mimic_eye(root: str | Path, *, samples: bool = True, allow_partial: bool = False,
                   gaze_config: GazeConfig = GazeConfig()) -> StudyList:
    """All images of a MIMIC-Eye tree that carry gaze, each with all its readings.

    Format errors (missing column, non-numeric value, time going backwards) raise DataFormatError
    at once. Incomplete items (a reading without gaze.csv, an image id with no JPEG, a study
    without its report, ...) are collected: IncompleteTreeError (a DataFormatError and an
    IncompleteDatasetError) lists them, or with allow_partial=True a warning gives their count
    and the complete studies are returned. samples=False leaves out the raw gaze samples
    (REFLACX gaze.csv at 1000 Hz, EGD-CXR eye_gaze.csv): much faster when only fixations are used.
    """
    problems = ProblemLog(root)
    studies: list[Study] = []
    folders = patient_folders(root)
    if not folders:
        problems.add(root, "no patient_<subject_id> folders")
    for folder in folders:
        studies.extend(_read_patient(folder, samples, problems, gaze_config))
    problems.finish(allow_partial)
    return StudyList(studies, problems)


def _read_patient(folder: Path, samples: bool, problems: ProblemLog, gaze_config: GazeConfig) -> list[Study]:
    reflacx_cases = reflacx.read_cases(folder / "REFLACX", samples=samples, problems=problems) \
        if reflacx.metadata_files(folder / "REFLACX") else []
    egd_cases = egd_cxr.read_cases(folder / "EyeGaze", samples=samples, problems=problems) \
        if (folder / "EyeGaze" / "master_sheet.csv").is_file() else []
    if not reflacx_cases and not egd_cases:
        problems.skip("MIMIC-Eye patients without readings")
        return []
    tables = [_cxr_table(folder, name) for name in CXR_TABLES]
    missing_tables = [t for t in tables if not t.is_file()]
    for path in missing_tables:
        problems.add(path, "file missing")
    if missing_tables:
        return []
    images = image_table(*tables).set_index("dicom_id", drop=False)
    labels = dict(zip(images.index, label_dicts(images)))
    studies: dict[str, Study | None] = {}
    for case in [*reflacx_cases, *egd_cases]:
        if case.dicom_id not in studies:   # None marks an image already reported incomplete
            studies[case.dicom_id] = _new_study(folder, case, images, labels, tables[0], problems)
        study = studies[case.dicom_id]
        if study is None:
            continue
        if isinstance(case, egd_cxr.EgdCase):
            egd_cxr.set_display(case, study.image_size, gaze_config)
        study.readings.append(case.reading)
        reflacx.merge_boxes(study.boxes, case.boxes)
    return [s for s in studies.values() if s is not None]


def _new_study(folder: Path, case, images, labels, meta_path: Path, problems: ProblemLog) -> Study | None:
    """The Study of the image a reading refers to, or None (reported) when its parts are missing."""
    listed_in, row = case.listed_at
    if case.dicom_id not in images.index:
        problems.add(listed_in, f"image {case.dicom_id} is not in {meta_path}", row=row, column="dicom_id")
        return None
    image = images.loc[case.dicom_id]
    image_path = folder / "CXR-JPG" / f"s{image['study_id']}" / f"{case.dicom_id}.jpg"
    if not image_path.is_file():
        problems.add(listed_in, f"image file {image_path} not found", row=row, column="dicom_id")
        return None
    report = folder / "CXR-DICOM" / f"s{image['study_id']}.txt"
    if not report.is_file():
        problems.add(report, f"report of study {image['study_id']} (image {case.dicom_id}) not found")
        return None
    return Study(study_id=image["study_id"], subject_id=image["subject_id"], dicom_id=case.dicom_id,
                 image_path=image_path, image_size=(int(image["Rows"]), int(image["Columns"])),
                 report_sentences=split_report(report.read_text(encoding="utf-8")),
                 labels=labels[case.dicom_id], split=image["split"])


def _cxr_table(folder: Path, name: str) -> Path:
    inside = folder / "CXR-JPG" / name
    return inside if inside.is_file() else folder / name
