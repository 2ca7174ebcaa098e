"""Write phantom studies in the real MIMIC-Eye on-disk formats (REFLACX, EGD-CXR, MIMIC-CXR-JPG parts).

The writers take the same in-memory `Study` the readers return, so a round trip writer -> reader
must give back what went in. Everything is written deterministically: fixed float formats, sorted
rows, no timestamps of the writing itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from egma.datasets.study import CHEXPERT_LABELS, Reading, Study

# REFLACX phase-3 finding columns that the phantom findings map onto (certainty 0-5 in metadata).
REFLACX_FINDING_COLUMNS = {
    "atelectasis": "Atelectasis",
    "consolidation": "Consolidation",
    "pneumonia": "Consolidation",
    "cardiomegaly": "Enlarged cardiac silhouette",
    "nodule": "Lung nodule or mass",
    "pleural_effusion": "Pleural abnormality",
    "pneumothorax": "Pneumothorax",
    "edema": "Pulmonary edema",
    "support_devices": "Support devices",
    "fracture": "Acute fracture",
    "opacity": "Groundglass opacity",
}
REFLACX_FINDINGS = tuple(dict.fromkeys(REFLACX_FINDING_COLUMNS.values()))

EGD_GAZE_COLUMNS = (
    "SESSION_ID", "MEDIA_ID", "DICOM_ID", "CNT", "Time (in secs)", "TIMETICK(f=10000000)",
    "FPOGX", "FPOGY", "FPOGS", "FPOGD", "FPOGID", "FPOGV", "BPOGX", "BPOGY", "BPOGV",
    "LPCX", "LPCY", "LPD", "LPS", "LPV", "RPCX", "RPCY", "RPD", "RPS", "RPV",
    "BKID", "BKDUR", "BKPMIN", "LPMM", "LPMMV", "RPMM", "RPMMV", "SACCADE_MAG", "SACCADE_DIR",
    "VID_FRAME", "X_ORIGINAL", "Y_ORIGINAL",
)


@dataclass(frozen=True)
class Display:
    """How an image sat on the reading screen: scaled to fit, centred, padded to the screen's aspect."""
    screen_w: int
    screen_h: int
    screen_px_per_deg: float
    image_w: int
    image_h: int

    @property
    def scale(self) -> float:  # screen pixels per image pixel
        return min(self.screen_w / self.image_w, self.screen_h / self.image_h)

    @property
    def image_px_per_deg(self) -> float:
        return self.screen_px_per_deg / self.scale

    @property
    def pads(self) -> tuple[float, float, float, float]:
        """(top, bottom, left, right) screen pixels around the image (EGD-CXR master sheet's pads)."""
        left = (self.screen_w - self.image_w * self.scale) / 2
        top = (self.screen_h - self.image_h * self.scale) / 2
        return round(top, 2), round(top, 2), round(left, 2), round(left, 2)

    def to_screen_fraction(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top, _, left, _ = self.pads
        return (x * self.scale + left) / self.screen_w, (y * self.scale + top) / self.screen_h

    def screen_box(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the image in screen pixels."""
        w, h = self.image_w * self.scale, self.image_h * self.scale
        x0, y0 = (self.screen_w - w) / 2, (self.screen_h - h) / 2
        return x0, y0, x0 + w, y0 + h


def patient_dir(root: Path, study: Study) -> Path:
    return Path(root) / f"patient_{study.subject_id}"


def image_relpath(study: Study) -> Path:
    return Path("CXR-JPG") / f"s{study.study_id}" / f"{study.dicom_id}.jpg"


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=92)


def mimic_report_text(sentences_findings: list[str], sentences_impression: list[str]) -> str:
    """A free-text report laid out like MIMIC-CXR's: header, FINDINGS and IMPRESSION sections."""
    lines = ["                                 FINAL REPORT", " EXAMINATION:  CHEST (PA AND LAT)", ""]
    if sentences_findings:
        lines += [" FINDINGS:", " " + " ".join(sentences_findings), ""]
    if sentences_impression:
        lines += [" IMPRESSION:", " " + " ".join(sentences_impression), ""]
    return "\n".join(lines)


def _csv(frame: pd.DataFrame, path: Path, float_format: str = "%.6g") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format=float_format, lineterminator="\n")


def _reflacx_display_columns(display: Display, n: int) -> dict[str, np.ndarray | float]:
    x0, y0, x1, y1 = display.screen_box()
    return {
        "angular_resolution_x_pixels_per_degree": np.full(n, round(display.image_px_per_deg, 4)),
        "angular_resolution_y_pixels_per_degree": np.full(n, round(display.image_px_per_deg, 4)),
        "window_width": np.full(n, 256), "window_level": np.full(n, 128),
        "xmin_shown_from_image": np.zeros(n, int), "ymin_shown_from_image": np.zeros(n, int),
        "xmax_shown_from_image": np.full(n, display.image_w), "ymax_shown_from_image": np.full(n, display.image_h),
        "xmin_in_screen_coordinates": np.full(n, round(x0, 2)), "ymin_in_screen_coordinates": np.full(n, round(y0, 2)),
        "xmax_in_screen_coordinates": np.full(n, round(x1, 2)), "ymax_in_screen_coordinates": np.full(n, round(y1, 2)),
    }


def write_reflacx_reading(reflacx_dir: Path, study: Study, reading: Reading, display: Display,
                          pupil: np.ndarray, boxes: dict[str, tuple[float, float, float, float]],
                          chest_box: tuple[float, float, float, float]) -> None:
    """main_data/<id>/{fixations,timestamps_transcription,chest_bounding_box,anomaly_location_ellipses}.csv,
    transcription.txt and gaze_data/<id>/gaze.csv. `pupil` holds one normalised pupil area per sample."""
    main = reflacx_dir / "main_data" / reading.reading_id
    fx = reading.fixations
    fix = pd.DataFrame({
        "timestamp_start_fixation": fx.t_start, "timestamp_end_fixation": fx.t_end,
        "x_position": fx.x, "y_position": fx.y,
        "pupil_area_normalized": np.interp(fx.t_start, reading.samples.t, np.nan_to_num(pupil, nan=0.0)),
        **_reflacx_display_columns(display, len(fx)),
    })
    _csv(fix, main / "fixations.csv", "%.4f")
    tr = reading.transcript
    _csv(pd.DataFrame({"word": tr.tokens, "timestamp_start_word": tr.t_start, "timestamp_end_word": tr.t_end}),
         main / "timestamps_transcription.csv", "%.3f")
    (main / "transcription.txt").write_text(tr.text + "\n")
    _csv(pd.DataFrame([dict(zip(("xmin", "ymin", "xmax", "ymax"), chest_box))]), main / "chest_bounding_box.csv", "%.1f")
    rows = []
    for name, box in sorted(boxes.items()):
        row = dict(zip(("xmin", "ymin", "xmax", "ymax"), box), certainty=5)
        row.update({col: col == REFLACX_FINDING_COLUMNS.get(name) for col in REFLACX_FINDINGS})
        rows.append(row)
    _csv(pd.DataFrame(rows, columns=["xmin", "ymin", "xmax", "ymax", "certainty", *REFLACX_FINDINGS]),
         main / "anomaly_location_ellipses.csv", "%.1f")
    s = reading.samples
    gaze = pd.DataFrame({"timestamp_sample": s.t, "x_position": s.x, "y_position": s.y,
                         "pupil_area_normalized": pupil, **_reflacx_display_columns(display, len(s))})
    _csv(gaze, reflacx_dir / "gaze_data" / reading.reading_id / "gaze.csv", "%.3f")


def reflacx_metadata_row(study: Study, reading: Reading, positive: set[str]) -> dict:
    h, w = study.image_size
    row = {
        "id": reading.reading_id, "split": study.split, "eye_tracking_data_discarded": False,
        "image": f"physionet.org/files/mimic-cxr/2.0.0/files/p{study.subject_id[:2]}/p{study.subject_id}/"
                 f"s{study.study_id}/{study.dicom_id}.dcm",
        "dicom_id": study.dicom_id, "subject_id": study.subject_id, "image_size_x": w, "image_size_y": h,
    }
    present = {REFLACX_FINDING_COLUMNS[f] for f in positive if f in REFLACX_FINDING_COLUMNS}
    row.update({col: (5 if col in present else 0) for col in REFLACX_FINDINGS})
    return row


def egd_gaze_rows(study: Study, reading: Reading, display: Display, session_id: int) -> pd.DataFrame:
    """eye_gaze.csv rows (Gazepoint columns): BPOG = raw sample, FPOG = the tracker's current fixation,
    X/Y_ORIGINAL = that fixation in original image pixels (as EGD-CXR derives them from FPOG)."""
    s, fx = reading.samples, reading.fixations
    n = len(s)
    bx, by = display.to_screen_fraction(s.x, s.y)
    valid = np.isfinite(s.x) & np.isfinite(s.y)
    # index of the fixation each sample falls in (-1 when none)
    k = np.searchsorted(fx.t_start, s.t, side="right") - 1
    inside = (k >= 0) & (s.t <= fx.t_end[np.clip(k, 0, None)])
    kk = np.where(inside, k, 0)
    fxs, fys = display.to_screen_fraction(fx.x, fx.y)
    fpogx = np.where(inside, fxs[kk], np.nan)
    fpogy = np.where(inside, fys[kk], np.nan)
    frame = pd.DataFrame({c: np.zeros(n) for c in EGD_GAZE_COLUMNS})
    frame["SESSION_ID"] = session_id
    frame["MEDIA_ID"] = 0
    frame["DICOM_ID"] = study.dicom_id
    frame["CNT"] = np.arange(n)
    frame["Time (in secs)"] = s.t
    frame["TIMETICK(f=10000000)"] = np.round(s.t * 1e7).astype(np.int64)
    frame["FPOGX"], frame["FPOGY"] = fpogx, fpogy
    frame["FPOGS"] = np.where(inside, fx.t_start[kk], np.nan)
    frame["FPOGD"] = np.where(inside, s.t - fx.t_start[kk], np.nan)
    frame["FPOGID"] = np.where(inside, kk + 1, 0)
    frame["FPOGV"] = inside.astype(int)
    frame["BPOGX"], frame["BPOGY"] = np.where(valid, bx, np.nan), np.where(valid, by, np.nan)
    frame["BPOGV"] = valid.astype(int)
    for eye in ("LPV", "RPV", "LPMMV", "RPMMV"):
        frame[eye] = valid.astype(int)
    for col in ("LPD", "RPD"):
        frame[col] = np.where(valid, 30.0, 0.0)
    for col in ("LPMM", "RPMM"):
        frame[col] = np.where(valid, 3.5, 0.0)
    frame["X_ORIGINAL"] = np.where(inside, fx.x[kk], np.nan)
    frame["Y_ORIGINAL"] = np.where(inside, fx.y[kk], np.nan)
    return frame


def egd_fixation_rows(study: Study, reading: Reading, display: Display, session_id: int) -> pd.DataFrame:
    """fixations.csv rows: one per fixation, at its end, in the same Gazepoint columns."""
    fx = reading.fixations
    n = len(fx)
    fxs, fys = display.to_screen_fraction(fx.x, fx.y)
    frame = pd.DataFrame({c: np.zeros(n) for c in EGD_GAZE_COLUMNS})
    frame["SESSION_ID"], frame["MEDIA_ID"], frame["DICOM_ID"] = session_id, 0, study.dicom_id
    frame["CNT"] = np.arange(n)
    frame["Time (in secs)"] = fx.t_end
    frame["TIMETICK(f=10000000)"] = np.round(fx.t_end * 1e7).astype(np.int64)
    frame["FPOGX"], frame["FPOGY"] = fxs, fys
    frame["FPOGS"], frame["FPOGD"] = fx.t_start, fx.t_end - fx.t_start
    frame["FPOGID"], frame["FPOGV"] = np.arange(1, n + 1), 1
    frame["BPOGX"], frame["BPOGY"], frame["BPOGV"] = fxs, fys, 1
    frame["X_ORIGINAL"], frame["Y_ORIGINAL"] = fx.x, fx.y
    return frame


def write_egd_transcript(eyegaze_dir: Path, study: Study, reading: Reading) -> None:
    tr = reading.transcript
    doc = {"full_text": " ".join(tr.tokens),
           "time_stamped_text": [{"phrase": p, "begin_time": round(float(b), 3), "end_time": round(float(e), 3)}
                                 for p, b, e in zip(tr.tokens, tr.t_start, tr.t_end)]}
    path = eyegaze_dir / "audio_segmentation_transcripts" / study.dicom_id / "transcript.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def master_sheet_row(study: Study, display: Display) -> dict:
    top, bottom, left, right = display.pads
    row = {"dicom_id": study.dicom_id, "path": f"files/p{study.subject_id[:2]}/p{study.subject_id}/s{study.study_id}/"
           f"{study.dicom_id}.dcm", "study_id": study.study_id, "patient_id": study.subject_id,
           "image_top_pad": top, "image_bottom_pad": bottom, "image_left_pad": left, "image_right_pad": right}
    row.update({label: study.labels.get(label, np.nan) for label in CHEXPERT_LABELS})
    return row


def cxr_tables(studies: list[Study]) -> dict[str, pd.DataFrame]:
    """The per-patient CXR-JPG tables: cxr_chexpert.csv (= cxr_negbio.csv here), cxr_meta.csv, cxr_split.csv."""
    chexpert = pd.DataFrame([{"subject_id": s.subject_id, "study_id": s.study_id,
                              **{k: s.labels.get(k, np.nan) for k in CHEXPERT_LABELS}} for s in studies])
    meta = pd.DataFrame([{"dicom_id": s.dicom_id, "subject_id": s.subject_id, "study_id": s.study_id,
                          "PerformedProcedureStepDescription": "CHEST (PA AND LAT)", "ViewPosition": "PA",
                          "Rows": s.image_size[0], "Columns": s.image_size[1]} for s in studies])
    split = pd.DataFrame([{"dicom_id": s.dicom_id, "study_id": s.study_id, "subject_id": s.subject_id,
                           "split": s.split} for s in studies])
    return {"cxr_chexpert.csv": chexpert, "cxr_negbio.csv": chexpert, "cxr_meta.csv": meta, "cxr_split.csv": split}


def write_csv(frame: pd.DataFrame, path: Path, float_format: str = "%.6g") -> None:
    _csv(frame, path, float_format)
