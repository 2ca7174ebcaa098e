"""The generator's ground truth, kept beside the tree in `phantom_truth/` for tests and evaluation.

    truth.json          config the tree was made with + per study: findings, report sentences with
                        their regions, per reading the true fixations, sentence windows, eye-voice leads
    masks/<dicom>.npz   finding and anatomy masks (bit-packed), written with fixed zip timestamps so
                        that the same seed gives byte-identical files

Readers never look here: real datasets have no such sidecar.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from egma.config import PhantomConfig

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of a mask's pixels, in pixel-edge coordinates."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def anatomy_boxes(anatomy_masks: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float, float]]:
    return {name: mask_box(m) for name, m in sorted(anatomy_masks.items()) if m.any()}


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in sorted(arrays.items()):
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(name + ".npy", date_time=ZIP_EPOCH), buf.getvalue(), zipfile.ZIP_DEFLATED)


def write_study_masks(truth_dir: Path, dicom_id: str, rendered) -> None:
    h, w = rendered.image.shape
    arrays = {f"finding/{k}": np.packbits(v) for k, v in rendered.finding_masks.items()}
    arrays.update({f"anatomy/{k}": np.packbits(v) for k, v in rendered.anatomy_masks.items()})
    arrays["shape"] = np.array([h, w])
    _save_npz(truth_dir / "masks" / f"{dicom_id}.npz", arrays)


def load_study_masks(truth_dir: str | Path, dicom_id: str) -> dict[str, np.ndarray]:
    """{"finding:<name>" | "anatomy:<name>": bool (H, W)} for one image."""
    with np.load(Path(truth_dir) / "masks" / f"{dicom_id}.npz") as z:
        h, w = z["shape"]
        return {k.replace("/", ":"): np.unpackbits(z[k])[: h * w].reshape(h, w).astype(bool)
                for k in z.files if k != "shape"}


def reading_truth(plan, sim, timeline) -> dict:
    f = sim.fixations
    return {
        "reader_id": plan.reader_id, "source": plan.source, "rate_hz": sim.rate_hz, "px_per_deg": sim.px_per_deg,
        "fixations": {"t_start": f.t_start.round(6).tolist(), "t_end": f.t_end.round(6).tolist(),
                      "x": f.x.round(3).tolist(), "y": f.y.round(3).tolist(),
                      "sentence": f.sentence.tolist(), "on_target": f.on_target.tolist()},
        "sentence_spans": timeline.sentence_spans.round(6).tolist(),
        "gaze_windows": sim.gaze_windows.round(6).tolist(),
        "eye_voice_lead_s": sim.eye_voice_lead_s.round(6).tolist(),
        "calibration_offset_px": sim.calibration_offset_px.round(4).tolist(),
    }


def study_truth(job, rendered, readings: dict) -> dict:
    return {
        "dicom_id": job.dicom_id, "study_id": job.study_id, "subject_id": job.subject_id, "split": job.split,
        "report_uid": job.report.uid,
        "findings": [asdict(f) for f in job.report.findings],
        "sentences": [{"text": s.text, "region": list(s.region), "positive": [asdict(f) for f in s.positive],
                       "negated": list(s.negated)} for s in job.report.sentences],
        "labels": {k: (None if v != v else v) for k, v in job.report.labels.items()},
        "image_size": list(rendered.image.shape),
        "readings": readings,
    }


def _normalised(config: dict) -> dict:
    return json.loads(json.dumps(config))


def write_truth_index(truth_dir: Path, cfg: PhantomConfig, studies: list[dict]) -> None:
    truth_dir.mkdir(parents=True, exist_ok=True)
    doc = {"config": _normalised(asdict(cfg)), "studies": {s["dicom_id"]: s for s in studies}}
    (truth_dir / "truth.json").write_text(json.dumps(doc, sort_keys=True) + "\n")


def load_truth(truth_dir: str | Path) -> dict:
    return json.loads((Path(truth_dir) / "truth.json").read_text())


def read_config(truth_dir: str | Path) -> dict:
    return load_truth(truth_dir)["config"]


def config_matches(truth_dir: str | Path, cfg: PhantomConfig) -> dict:
    """{field: (existing, requested)} for every field that differs; empty when the tree matches cfg."""
    made, wanted = read_config(truth_dir), _normalised(asdict(cfg))
    return {k: (made.get(k), v) for k, v in wanted.items() if made.get(k) != v}
