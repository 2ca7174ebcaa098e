"""Readers of the real formats, on tiny trees this file writes in those formats."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from egma.config import GazeConfig
from egma.datasets import (DataFormatError, IncompleteDatasetError, read_chexpert, read_chexpert_5x200,
                           read_chexpert_8x200, read_egd_cxr, read_mimic_cxr_jpg, read_mimic_eye, read_reflacx,
                           read_rsna, read_siim, rle_decode, rle_encode)
from egma.datasets.study import CHEXPERT_LABELS
from egma.datasets.tables import parse_bool

# ------------------------------------------------------------------------------ fixture writers

SUBJECT_R, STUDY_R, DICOM_R = "10000032", "50414267", "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
SUBJECT_E, STUDY_E, DICOM_E = "10000764", "57375967", "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4"
IMAGE_HW = (40, 30)
READINGS = {"P102R108387": 0.0, "P300R000001": 100.0}   # reading id -> x offset of its gaze
DISCARDED = "P109R167865"
FIX_EXTRA = ["pupil_area_normalized", "angular_resolution_x_pixels_per_degree",
             "angular_resolution_y_pixels_per_degree", "window_width", "window_level",
             "xmin_shown_from_image", "ymin_shown_from_image", "xmax_shown_from_image", "ymax_shown_from_image",
             "xmin_in_screen_coordinates", "ymin_in_screen_coordinates", "xmax_in_screen_coordinates",
             "ymax_in_screen_coordinates"]
EGD_COLUMNS = ["SESSION_ID", "MEDIA_ID", "DICOM_ID", "CNT", "Time (in secs)", "TIMETICK(f=10000000)", "FPOGX",
               "FPOGY", "FPOGS", "FPOGD", "FPOGID", "FPOGV", "BPOGX", "BPOGY", "BPOGV", "LPCX", "LPCY", "LPD",
               "LPS", "LPV", "RPCX", "RPCY", "RPD", "RPS", "RPV", "BKID", "BKDUR", "BKPMIN", "LPMM", "LPMMV",
               "RPMM", "RPMMV", "SACCADE_MAG", "SACCADE_DIR", "VID_FRAME", "X_ORIGINAL", "Y_ORIGINAL"]
WORDS = [("No", 0.5, 0.7), ("pneumothorax", 0.7, 1.3), (".", 1.3, 1.3), ("Heart", 2.0, 2.3),
         ("is", 2.3, 2.4), ("normal", 2.4, 2.9), (".", 2.9, 2.9)]
PADS = (0.0, 0.0, 555.0, 555.0)   # top, bottom, left, right screen pixels around a 30x40 image on 1920x1080


def write_jpg(path: Path, hw=IMAGE_HW) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(hw, 128, np.uint8)).save(path)


def reflacx_gaze(offset: float) -> pd.DataFrame:
    t = np.arange(50) / 1000.0
    gaze = pd.DataFrame({"timestamp_sample": t, "x_position": 5.0 + offset + np.arange(50),
                         "y_position": 7.0 + 0 * t})
    gaze.loc[10, ["x_position", "y_position"]] = np.nan           # a lost sample
    for c in FIX_EXTRA:
        gaze[c] = 1.0
    gaze["angular_resolution_x_pixels_per_degree"] = 30.0 + (np.arange(50) % 3)   # median 31
    gaze["angular_resolution_y_pixels_per_degree"] = 29.0
    return gaze


def write_reflacx(root: Path, metadata: Path, subject=SUBJECT_R, study=STUDY_R, dicom=DICOM_R) -> None:
    """REFLACX readings of one image (+ one discarded), metadata written to `metadata`."""
    rows = []
    for rid, offset in [*READINGS.items(), (DISCARDED, 0.0)]:
        rows.append({"id": rid, "split": "train", "eye_tracking_data_discarded": rid == DISCARDED,
                     "image": f"physionet.org/files/mimic-cxr/2.0.0/files/p{subject[:2]}/p{subject}/s{study}/{dicom}.dcm",
                     "dicom_id": dicom, "subject_id": subject, "image_size_x": IMAGE_HW[1],
                     "image_size_y": IMAGE_HW[0], "Airway wall thickening": 0, "Atelectasis": 3})
        if rid == DISCARDED:
            continue
        folder = root / "main_data" / rid
        folder.mkdir(parents=True)
        fix = pd.DataFrame({"timestamp_start_fixation": [0.1, 0.5], "timestamp_end_fixation": [0.4, 0.9],
                            "x_position": [3.0 + offset, 20.0], "y_position": [4.0, 30.0]})
        for c in FIX_EXTRA:
            fix[c] = 1.0
        fix["angular_resolution_x_pixels_per_degree"] = 50.0
        fix["angular_resolution_y_pixels_per_degree"] = 50.0
        fix.to_csv(folder / "fixations.csv", index=False)
        pd.DataFrame(WORDS, columns=["word", "timestamp_start_word", "timestamp_end_word"]).to_csv(
            folder / "timestamps_transcription.csv", index=False)
        (folder / "transcription.txt").write_text("No pneumothorax. Heart is normal.")
        pd.DataFrame({"xmin": [1], "ymin": [2], "xmax": [28], "ymax": [38]}).to_csv(
            folder / "chest_bounding_box.csv", index=False)
        pd.DataFrame({"xmin": [5.0], "ymin": [6.0], "xmax": [9.0], "ymax": [12.0], "certainty": [4],
                      "Atelectasis": [True], "Consolidation": [False]}).to_csv(
            folder / "anomaly_location_ellipses.csv", index=False)
        (root / "gaze_data" / rid).mkdir(parents=True)
        reflacx_gaze(offset).to_csv(root / "gaze_data" / rid / "gaze.csv", index=False)
    metadata.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(metadata, index=False)


def egd_frame(n: int, dicom=DICOM_E, t0=0.0) -> pd.DataFrame:
    frame = pd.DataFrame(0.0, index=range(n), columns=EGD_COLUMNS)
    frame["SESSION_ID"], frame["MEDIA_ID"], frame["DICOM_ID"] = 1, 3, dicom
    frame["Time (in secs)"] = t0 + np.arange(n) / 60.0
    frame["FPOGV"], frame["BPOGV"] = 1, 1
    frame["FPOGS"], frame["FPOGD"] = t0 + np.arange(n) * 0.3, 0.25
    frame["X_ORIGINAL"], frame["Y_ORIGINAL"] = 10.0 + np.arange(n), 20.0
    # the raw point of gaze, as screen fractions, that lands on the same image pixels (scale 27 px/px)
    frame["BPOGX"], frame["BPOGY"] = (PADS[2] + 27.0 * frame["X_ORIGINAL"]) / 1920, 27.0 * 20.0 / 1080
    return frame


def write_egd(root: Path, subject=SUBJECT_E, study=STUDY_E, dicom=DICOM_E) -> None:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"dicom_id": dicom, "path": f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.dcm",
                   "study_id": study, "patient_id": subject, "image_top_pad": PADS[0], "image_bottom_pad": PADS[1],
                   "image_left_pad": PADS[2], "image_right_pad": PADS[3], "Normal": 1}]).to_csv(
        root / "master_sheet.csv", index=False)
    gaze = egd_frame(12)
    gaze.loc[3, "BPOGV"] = 0                 # blink
    gaze.loc[5, "BPOGX"] = 0.1               # off the image (left of it on the screen)
    calibration = egd_frame(3, dicom="calibration", t0=50.0)   # rows of an image not in the sheet
    pd.concat([gaze, calibration]).to_csv(root / "eye_gaze.csv", index=False)
    egd_frame(3).to_csv(root / "fixations.csv", index=False)
    pd.DataFrame({"dicom_id": [dicom], "bbox_name": ["right lung"], "x1": [2], "x2": [14], "y1": [3],
                  "y2": [35]}).to_csv(root / "bounding_boxes.csv", index=False)
    folder = root / "audio_segmentation_transcripts" / dicom
    folder.mkdir(parents=True)
    (folder / "transcript.json").write_text(json.dumps({
        "full_text": "the heart is normal. lungs are clear.",
        "time_stamped_text": [{"phrase": "the heart is normal.", "begin_time": 0.2, "end_time": 1.4},
                              {"phrase": "lungs are clear.", "begin_time": 1.9, "end_time": 2.6}]}))


def write_cxr_tables(folder: Path, subject: str, study: str, dicom: str, suffix: str = ".csv",
                     names=("cxr_meta", "cxr_chexpert", "cxr_split")) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    labels = {name: np.nan for name in CHEXPERT_LABELS}
    labels.update({"Cardiomegaly": 1.0, "Edema": -1.0, "No Finding": 0.0})
    tables = [
        pd.DataFrame([{"dicom_id": dicom, "subject_id": subject, "study_id": study, "ViewPosition": "PA",
                       "Rows": IMAGE_HW[0], "Columns": IMAGE_HW[1]}]),
        pd.DataFrame([{"subject_id": subject, "study_id": study, **labels}]),
        pd.DataFrame([{"dicom_id": dicom, "study_id": study, "subject_id": subject, "split": "validate"}]),
    ]
    for name, table in zip(names, tables):
        table.to_csv(folder / f"{name}{suffix}", index=False)


def write_mimic_eye(root: Path) -> Path:
    patient = root / f"patient_{SUBJECT_R}"
    write_jpg(patient / "CXR-JPG" / f"s{STUDY_R}" / f"{DICOM_R}.jpg")
    write_cxr_tables(patient / "CXR-JPG", SUBJECT_R, STUDY_R, DICOM_R)
    (patient / "CXR-DICOM").mkdir(parents=True)
    (patient / "CXR-DICOM" / f"s{STUDY_R}.txt").write_text(
        "EXAMINATION: CHEST (PA AND LAT)\n\nFINDINGS: No pneumothorax. Heart is normal.\n\nIMPRESSION: Normal chest.\n")
    write_reflacx(patient / "REFLACX", patient / "REFLACX" / "metadata.csv")
    patient = root / f"patient_{SUBJECT_E}"
    write_jpg(patient / "CXR-JPG" / f"s{STUDY_E}" / f"{DICOM_E}.jpg")
    write_cxr_tables(patient / "CXR-JPG", SUBJECT_E, STUDY_E, DICOM_E)
    (patient / "CXR-DICOM").mkdir(parents=True)
    (patient / "CXR-DICOM" / f"s{STUDY_E}.txt").write_text("FINDINGS: The heart is normal. Lungs are clear.")
    write_egd(patient / "EyeGaze")
    return root


@pytest.fixture
def mimic_eye(tmp_path) -> Path:
    return write_mimic_eye(tmp_path / "mimic-eye")


def assert_names(err: DataFormatError, file: str, row: int | None, column: str | None) -> None:
    message = str(err.value)
    assert file in message
    if row is not None:
        assert f"row {row}" in message and err.value.row == row
    if column is not None:
        assert f"'{column}'" in message and err.value.column == column


# ------------------------------------------------------------------------------ happy paths

def test_mimic_eye_returns_every_part_of_both_formats(mimic_eye):
    studies = read_mimic_eye(mimic_eye)
    assert len(studies) == 2 and studies.skipped == {"REFLACX eye_tracking_data_discarded=True": 1}
    by_id = {s.dicom_id: s for s in studies}
    ref = by_id[DICOM_R]
    assert (ref.subject_id, ref.study_id, ref.image_size, ref.split) == (SUBJECT_R, STUDY_R, IMAGE_HW, "validate")
    assert ref.image_path.is_file()
    assert ref.report_sentences == ["No pneumothorax.", "Heart is normal.", "Normal chest."]
    assert ref.labels["Cardiomegaly"] == 1.0 and ref.labels["Edema"] == -1.0 and np.isnan(ref.labels["Fracture"])
    assert sorted(r.reading_id for r in ref.readings) == sorted(READINGS)
    assert {r.reader_id for r in ref.readings} == {"reflacx-02", "reflacx-00"}
    reading = next(r for r in ref.readings if r.reading_id == "P300R000001")
    expected = reflacx_gaze(100.0)
    np.testing.assert_array_equal(reading.samples.t, expected["timestamp_sample"])
    np.testing.assert_array_equal(reading.samples.x, expected["x_position"])   # NaN sample kept as NaN
    assert reading.samples.rate_hz == 1000 and reading.samples.px_per_deg == (31.0, 29.0)
    assert reading.transcript.tokens == [w for w, _, _ in WORDS]
    assert reading.transcript.text == "No pneumothorax. Heart is normal."
    np.testing.assert_array_equal(reading.transcript.t_start, [w[1] for w in WORDS])
    np.testing.assert_array_equal(reading.fixations.x, [103.0, 20.0])
    np.testing.assert_allclose(reading.fixations.duration, [0.3, 0.4])
    assert ref.boxes["chest"] == [(1, 2, 28, 38)] * 2 and ref.boxes["Atelectasis"] == [(5, 6, 9, 12)] * 2
    assert "Consolidation" not in ref.boxes

    egd = by_id[DICOM_E]
    (reading,) = egd.readings
    assert (reading.source, reading.reader_id, reading.samples.rate_hz) == ("egd-cxr", "egd-cxr", 60)
    assert len(reading.samples) == 12                      # the calibration image's rows are not mixed in
    invalid = np.isnan(reading.samples.x)
    assert invalid.tolist() == [i in (3, 5) for i in range(12)]
    np.testing.assert_allclose(reading.samples.t, np.arange(12) / 60)
    np.testing.assert_allclose(reading.fixations.t_end - reading.fixations.t_start, 0.25)
    assert reading.transcript.tokens == ["the heart is normal.", "lungs are clear."]
    np.testing.assert_array_equal(reading.transcript.t_end, [1.4, 2.6])
    # 30x40 image shown 1080 px tall: 27 screen px per image px; GP3 geometry from GazeConfig.
    cfg = GazeConfig()
    screen_ppd = cfg.egd_viewing_distance_mm * np.tan(np.pi / 180) * 1920 / cfg.egd_screen_width_mm
    np.testing.assert_allclose(reading.samples.px_per_deg, (screen_ppd / 27, screen_ppd / 27))
    assert egd.boxes == {"right lung": [(2, 3, 14, 35)]}
    assert egd.report_sentences == ["The heart is normal.", "Lungs are clear."]


def test_samples_false_skips_raw_gaze_but_keeps_fixations(mimic_eye):
    (mimic_eye / f"patient_{SUBJECT_E}" / "EyeGaze" / "eye_gaze.csv").unlink()   # not even needed
    studies = read_mimic_eye(mimic_eye, samples=False)
    assert all(r.samples is None and len(r.fixations) for s in studies for r in s.readings)


def test_standalone_reflacx_and_egd_trees_with_a_mimic_cxr_jpg_root(tmp_path):
    write_reflacx(tmp_path / "reflacx", tmp_path / "reflacx" / "main_data" / "metadata_phase_3.csv")
    write_egd(tmp_path / "egd")
    images = tmp_path / "mimic-cxr-jpg"
    for subject, study, dicom in [(SUBJECT_R, STUDY_R, DICOM_R), (SUBJECT_E, STUDY_E, DICOM_E)]:
        write_jpg(images / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg")
    (ref,) = read_reflacx(tmp_path / "reflacx", images)
    assert ref.study_id == STUDY_R and len(ref.readings) == 2 and ref.image_path.parent.name == f"s{STUDY_R}"
    assert ref.report_sentences == ["No pneumothorax.", "Heart is normal."]
    (unresolved,) = read_reflacx(tmp_path / "reflacx", samples=False)
    assert unresolved.image_path.suffix == ".dcm" and unresolved.readings[0].samples is None
    (egd,) = read_egd_cxr(tmp_path / "egd", images)
    assert egd.image_size == IMAGE_HW and egd.readings[0].samples.px_per_deg is not None


def test_mimic_cxr_jpg_reader_with_reports(tmp_path):
    root = tmp_path / "mimic-cxr-jpg"
    names = ("mimic-cxr-2.0.0-metadata", "mimic-cxr-2.0.0-chexpert", "mimic-cxr-2.0.0-split")
    write_cxr_tables(root, SUBJECT_R, STUDY_R, DICOM_R, suffix=".csv", names=names)
    for name in names:   # the real tables are gzip-compressed
        path = root / f"{name}.csv"
        (root / f"{name}.csv.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    write_jpg(root / "files" / "p10" / f"p{SUBJECT_R}" / f"s{STUDY_R}" / f"{DICOM_R}.jpg")
    reports = tmp_path / "mimic-cxr"
    (reports / "files" / "p10" / f"p{SUBJECT_R}").mkdir(parents=True)
    (reports / "files" / "p10" / f"p{SUBJECT_R}" / f"s{STUDY_R}.txt").write_text("IMPRESSION: No acute process.")
    (study,) = read_mimic_cxr_jpg(root, reports)
    assert study.report_sentences == ["No acute process."] and study.labels["Cardiomegaly"] == 1.0
    assert study.readings == [] and study.split == "validate"


# ------------------------------------------------------------------------------ bad input

def edit_csv(path: Path, edit) -> None:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(table)
    table.to_csv(path, index=False)


def test_missing_column_names_file_and_column(mimic_eye):
    path = mimic_eye / f"patient_{SUBJECT_R}" / "REFLACX" / "main_data" / "P102R108387" / "fixations.csv"
    edit_csv(path, lambda t: t.pop("timestamp_end_fixation"))
    with pytest.raises(DataFormatError) as err:
        read_mimic_eye(mimic_eye)
    assert_names(err, str(path), None, "timestamp_end_fixation")


def test_non_numeric_value_names_file_row_and_column(mimic_eye):
    path = mimic_eye / f"patient_{SUBJECT_R}" / "REFLACX" / "gaze_data" / "P300R000001" / "gaze.csv"
    edit_csv(path, lambda t: t.__setitem__("y_position", t["y_position"].where(t.index != 6, "7,5")))
    with pytest.raises(DataFormatError) as err:
        read_mimic_eye(mimic_eye)
    assert_names(err, "gaze.csv", 7, "y_position")
    assert "P300R000001" in str(err.value)


def test_egd_non_numeric_pad_and_json_times(mimic_eye):
    egd = mimic_eye / f"patient_{SUBJECT_E}" / "EyeGaze"
    edit_csv(egd / "master_sheet.csv", lambda t: t.__setitem__("image_left_pad", ["wide"]))
    with pytest.raises(DataFormatError) as err:
        read_mimic_eye(mimic_eye)
    assert_names(err, "master_sheet.csv", 1, "image_left_pad")


def test_backwards_time_names_file_row_and_column(mimic_eye):
    path = mimic_eye / f"patient_{SUBJECT_R}" / "REFLACX" / "main_data" / "P102R108387" / "timestamps_transcription.csv"
    edit_csv(path, lambda t: t.__setitem__("timestamp_start_word", t["timestamp_start_word"].where(t.index != 4, "0.1")))
    with pytest.raises(DataFormatError) as err:
        read_mimic_eye(mimic_eye)
    assert_names(err, "timestamps_transcription.csv", 5, "timestamp_start_word")


def test_backwards_time_in_egd_eye_gaze_and_transcript(mimic_eye):
    egd = mimic_eye / f"patient_{SUBJECT_E}" / "EyeGaze"
    transcript = egd / "audio_segmentation_transcripts" / DICOM_E / "transcript.json"
    data = json.loads(transcript.read_text())
    data["time_stamped_text"][1]["begin_time"] = 0.1
    transcript.write_text(json.dumps(data))
    with pytest.raises(DataFormatError) as err:
        read_mimic_eye(mimic_eye, samples=False)
    assert_names(err, "transcript.json", 2, "begin_time")
    edit_csv(egd / "eye_gaze.csv", lambda t: t.__setitem__("Time (in secs)", t["Time (in secs)"].where(t.index != 8, "0.0")))
    with pytest.raises(DataFormatError) as err:
        read_mimic_eye(mimic_eye)
    assert_names(err, "eye_gaze.csv", 9, "Time (in secs)")


def test_image_id_without_image_names_file_row_and_column(mimic_eye):
    (mimic_eye / f"patient_{SUBJECT_R}" / "CXR-JPG" / f"s{STUDY_R}" / f"{DICOM_R}.jpg").unlink()
    with pytest.raises(DataFormatError) as err:
        read_mimic_eye(mimic_eye)
    assert_names(err, "metadata.csv", 1, "dicom_id")      # the first reading's metadata row
    assert isinstance(err.value, IncompleteDatasetError) and len(err.value.problems) == 1


# ------------------------------------------------------------------------------ partial trees

def test_partial_tree_is_reported_or_read_with_allow_partial(mimic_eye):
    (mimic_eye / f"patient_{SUBJECT_R}" / "REFLACX" / "gaze_data" / "P102R108387" / "gaze.csv").unlink()
    (mimic_eye / f"patient_{SUBJECT_E}" / "CXR-DICOM" / f"s{STUDY_E}.txt").unlink()
    with pytest.raises(IncompleteDatasetError) as err:
        read_mimic_eye(mimic_eye)
    assert len(err.value.problems) == 2
    assert any("gaze.csv" in p for p in err.value.problems) and any(f"s{STUDY_E}.txt" in p for p in err.value.problems)
    with pytest.warns(UserWarning, match="2 incomplete"):
        studies = read_mimic_eye(mimic_eye, allow_partial=True)
    (study,) = studies
    assert [r.reading_id for r in study.readings] == ["P300R000001"] and len(studies.problems) == 2


# ------------------------------------------------------------------------------ RLE

def test_rle_round_trips_and_is_column_major():
    rng = np.random.default_rng(0)
    for shape in [(1024, 1024), (7, 5), (1, 9)]:
        for density in (0.0, 0.02, 0.5, 1.0):
            mask = rng.random(shape) < density
            code = rle_encode(mask)
            assert (code == "-1") == (not mask.any())
            np.testing.assert_array_equal(rle_decode(code, shape), mask)
    # Column-major and relative: pixels 3-4 (run of 2), then 1 gap pixel, then pixel 6; pixel = col * 4 + row.
    mask = rle_decode("3 2 1 1", (4, 3))
    assert {(int(r), int(c)) for r, c in zip(*np.nonzero(mask))} == {(3, 0), (0, 1), (2, 1)}
    with pytest.raises(ValueError):
        rle_decode("5 2 3", (4, 4))


def test_rle_round_trips_the_real_siim_codes():
    import torchxrayvision as xrv
    path = Path(xrv.datasets.__file__).parent / "data" / "siim-pneumothorax-train-rle.csv.gz"
    table = pd.read_csv(path)
    codes = table.iloc[:, 1].str.strip()
    positive = codes[codes != "-1"].iloc[:25]
    for code in positive:
        mask = rle_decode(code)
        assert 0 < mask.sum() < mask.size // 4
        assert rle_encode(mask) == code


# ------------------------------------------------------------------------------ downstream sets

def write_chexpert(root: Path) -> None:
    """10 frontal images per 5x200 class, exclusive, plus distractors."""
    rows = []
    def add(labels: dict, view="Frontal"):
        i = len(rows)
        path = f"CheXpert-v1.0-small/train/patient{i:05d}/study1/view1_{view.lower()}.jpg"
        write_jpg(root.joinpath(*Path(path).parts[1:]), (8, 8))
        rows.append({"Path": path, "Sex": "Female", "Age": 60, "Frontal/Lateral": view, "AP/PA": "AP", **labels})
    for cls in ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion", "Pneumothorax",
                "Fracture", "Pneumonia", "No Finding"):
        for _ in range(3):
            add({cls: 1.0, "Support Devices": 0.0})
    add({"Atelectasis": 1.0, "Edema": 1.0})            # two of the five: never chosen
    add({"Atelectasis": 1.0, "Lung Opacity": -1.0})    # uncertain other label: not chosen by GLoRIA's rule
    add({"Cardiomegaly": 1.0}, view="Lateral")         # lateral: never chosen
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).reindex(columns=["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding",
                                        "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                                        "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
                                        "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]).to_csv(
        root / "train.csv", index=False)


def test_chexpert_5x200_and_8x200_rules(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    write_chexpert(root)
    five = read_chexpert_5x200(root, n_per_class=2, seed=1)
    assert len(five) == 10 and np.bincount(five.y).tolist() == [2] * 5
    assert all(p.is_file() for p in five.paths)
    raw = read_chexpert(root, "train.csv")
    by_path = raw.table.set_index("path")
    for path, y in zip(five.table["path"], five.y):
        row = by_path.loc[path]
        assert row[five.class_names[y]] == 1 and row["Frontal/Lateral"] == "Frontal"
        others = row[[c for c in raw.class_names if c != five.class_names[y]]].fillna(0)
        assert (others == 0).all()
    assert read_chexpert_5x200(root, n_per_class=2, seed=1).table["path"].tolist() == five.table["path"].tolist()
    with pytest.warns(UserWarning, match="only 3 images qualify"):
        eight = read_chexpert_8x200(root, n_per_class=4)
    # Atelectasis gains the image whose other label is an uncertain Lung Opacity (not one of the 8).
    assert len(eight) == 25 and np.bincount(eight.y).tolist() == [3, 3, 3, 3, 4, 3, 3, 3]


def test_chexpert_bad_label_and_missing_image(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    write_chexpert(root)
    edit_csv(root / "train.csv", lambda t: t.__setitem__("Edema", t["Edema"].where(t.index != 2, "2")))
    with pytest.raises(DataFormatError) as err:
        read_chexpert(root, "train.csv")
    assert_names(err, "train.csv", 3, "Edema")
    write_chexpert(root)
    missing = root / "train" / "patient00004" / "study1" / "view1_frontal.jpg"
    missing.unlink()
    with pytest.raises(DataFormatError) as err:
        read_chexpert(root, "train.csv")
    assert_names(err, "train.csv", 5, "Path")
    with pytest.warns(UserWarning):
        assert len(read_chexpert(root, "train.csv", allow_partial=True)) == 29


def test_rsna_boxes_split_and_missing_image(tmp_path):
    root = tmp_path / "rsna"
    (root / "stage_2_train_images").mkdir(parents=True)
    rows = [("a", 10, 20, 30, 40, 1), ("a", 50, 60, 5, 5, 1), ("b", "", "", "", "", 0)]
    rows += [(f"n{i}", "", "", "", "", 0) for i in range(17)]
    pd.DataFrame(rows, columns=["patientId", "x", "y", "width", "height", "Target"]).to_csv(
        root / "stage_2_train_labels.csv", index=False)
    for pid in {r[0] for r in rows}:
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "stage_2_train_images" / f"{pid}.png")
    data = read_rsna(root)
    assert len(data) == 19 and data.labels.sum() == 1
    assert data.boxes(int(np.flatnonzero(data.table["key"] == "a")[0])) == [(10, 20, 40, 60), (50, 60, 55, 65)]
    assert pd.Series(data.table["split"]).value_counts().to_dict() == {"train": 13, "valid": 3, "test": 3}
    (root / "stage_2_train_images" / "b.png").unlink()
    with pytest.raises(DataFormatError) as err:
        read_rsna(root)
    assert_names(err, "stage_2_train_labels.csv", 3, "patientId")
    edit_csv(root / "stage_2_train_labels.csv", lambda t: t.__setitem__("width", t["width"].where(t.index != 1, "")))
    with pytest.raises(DataFormatError) as err:
        read_rsna(root)
    assert_names(err, "stage_2_train_labels.csv", 2, "width")


def test_siim_masks_union_and_bad_code(tmp_path):
    root = tmp_path / "siim"
    shape = (1024, 1024)
    first = np.zeros(shape, bool); first[100:120, 200:230] = True
    second = np.zeros(shape, bool); second[500:510, 10:12] = True
    rows = [("img1", rle_encode(first)), ("img1", rle_encode(second)), ("img2", "-1")]
    (root / "dicom-images-train" / "study" / "series").mkdir(parents=True)
    for key in ("img1", "img2"):   # the masks take the image's own size
        Image.new("L", (shape[1], shape[0])).save(root / "dicom-images-train" / "study" / "series" / f"{key}.png")
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\n" + "".join(f"{k},{c}\n" for k, c in rows))
    data = read_siim(root)
    assert data.table["key"].tolist() == ["img1", "img2"] and data.labels[:, 0].tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(data.mask(0), first | second)
    assert not data.mask(1).any()
    (root / "test_ids.txt").write_text("img2\n")
    assert read_siim(root, test_ids=root / "test_ids.txt").split("test").table["key"].tolist() == ["img2"]
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\nimg1,12 x 3\n")
    with pytest.raises(DataFormatError) as err:
        read_siim(root)
    assert_names(err, "train-rle.csv", 1, "EncodedPixels")


def test_boolean_columns_accept_every_spelling_and_name_a_bad_value(tmp_path):
    path = tmp_path / "flags.csv"
    # the usual spellings alone (looked up directly), then with other numbers (the validating path)
    spellings = pd.Series(["True", "false", " TRUE ", "1", "0", "1.0", "", float("nan"), "0.0", "FALSE"])
    expected = [True, False, True, True, False, True, False, False, False, False]
    assert parse_bool(path, spellings, "flag").tolist() == expected
    with_numbers = pd.concat([spellings, pd.Series(["2", "-0.5"])], ignore_index=True)
    assert parse_bool(path, with_numbers, "flag").tolist() == expected + [True, True]
    with pytest.raises(DataFormatError) as err:
        parse_bool(path, pd.Series(["True", "yes"]), "Atelectasis")
    assert "flags.csv" in str(err.value) and "row 2" in str(err.value) and "Atelectasis" in str(err.value)
