"""Generate the phantom MIMIC-Eye (+ downstream sets) on disk, in the real formats.

    python -m egma.phantom --out data/phantom-ci --preset ci

Layout of the output root:
    mimic-eye/patient_<subject_id>/...   MIMIC-Eye: CXR-JPG, CXR-DICOM reports, REFLACX, EyeGaze
    chexpert/CheXpert-v1.0-small/...     train.csv, valid.csv, chexpert_5x200.csv, chexpert_8x200.csv
    rsna/                                stage_2_train_labels.csv, stage_2_train_images/
    siim/                                train-rle.csv, dicom-images-train/
    phantom_truth/                       the generator's ground truth; only tests and evaluation read it

The tree is built in `<out>.partial` and renamed when complete, so an interrupted run never leaves
a tree that looks finished. Per-study randomness comes from SeedSequence((seed, index)), so the
output is byte-identical for a seed whatever the number of workers.
"""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from egma.config import GazeConfig, PhantomConfig
from egma.datasets.study import FixationTable, GazeSamples, Reading, Study, Transcript
from egma.phantom import downstream, truth
from egma.phantom.render import region_mask, render_radiograph
from egma.phantom.dictation import dictate, phrases
from egma.phantom.gaze_sim import dataset_fixations, simulate_reading
from egma.phantom.render_pool import save_image
from egma.phantom.reports import PhantomReport, sample_reports
from egma.phantom.writers import (Display, cxr_tables, egd_fixation_rows, egd_gaze_rows, image_relpath,
                                  master_sheet_row, mimic_report_text, patient_dir, reflacx_metadata_row,
                                  write_csv, write_egd_transcript, write_reflacx_reading)

SPLITS = ("train", "validate", "test")
SPLIT_P = (0.85, 0.10, 0.05)
N_REFLACX_READERS = 5   # REFLACX had five radiologists; EGD-CXR one


@dataclass(frozen=True)
class ReadingPlan:
    reading_id: str
    reader_id: str
    source: str            # "reflacx" (1000 Hz) or "egd-cxr" (60 Hz)


@dataclass(frozen=True)
class StudyJob:
    index: int
    subject_id: str
    study_id: str
    dicom_id: str
    split: str
    report: PhantomReport
    readings: tuple[ReadingPlan, ...]


def _hex(rng: np.random.Generator, n: int) -> str:
    return rng.bytes(n).hex()


def plan_studies(cfg: PhantomConfig) -> list[StudyJob]:
    """Who, which report, which readings: everything decided up front from the seed."""
    rng = np.random.default_rng([cfg.seed, 0])
    reports = sample_reports(rng, cfg.n_studies)
    jobs, subject, reflacx_n = [], 10_000_000 + int(rng.integers(0, 9_000_000)), 100_000
    for i, report in enumerate(reports):
        if i == 0 or rng.random() > 0.1:   # about one patient in ten has a second study
            subject += int(rng.integers(1, 2000))
        n_readings = int(rng.choice((2, 3))) if rng.random() < cfg.multi_reader_fraction else 1
        dicom = "-".join(_hex(rng, 4) for _ in range(5))
        plans = []
        for r in range(n_readings):
            if r == 0 and rng.random() < cfg.egd_fraction:
                plans.append(ReadingPlan(dicom, "egd-cxr", "egd-cxr"))  # EGD-CXR names a reading by its image
            else:
                reflacx_n += int(rng.integers(1, 50))
                plans.append(ReadingPlan(f"P300R{reflacx_n:06d}", f"reflacx-radiologist-{int(rng.integers(1, N_REFLACX_READERS + 1))}",
                                         "reflacx"))
        jobs.append(StudyJob(i, str(subject), str(50_000_000 + 7 * i + int(rng.integers(0, 7))), dicom,
                             str(rng.choice(SPLITS, p=SPLIT_P)), report, tuple(plans)))
    return jobs


def sentence_masks(rendered, regions) -> list[np.ndarray]:
    """Each sentence's region (a list of region keys) as one mask of the render: the union of its keys."""
    chest = rendered.anatomy_masks["chest"]
    masks = []
    for keys in regions:
        mask = np.zeros(chest.shape, dtype=bool)
        for key in keys:
            mask |= region_mask(rendered, key)
        # a region can vanish on a small render (e.g. a thin device cropped away): look at the chest
        masks.append(mask if mask.any() else chest)
    return masks


@dataclass
class SimulatedStudy:
    """A study as the generator knows it: what the readers must give back (`study`), and the truth."""
    job: StudyJob
    study: Study
    rendered: object                     # egma.phantom.render.Rendered
    timelines: list                      # one DictationTimeline per reading
    simulations: list                    # one SimulatedReading per reading
    display: Display


def simulate_study(job: StudyJob, cfg: PhantomConfig) -> SimulatedStudy:
    """Render the image and simulate every reading of one study, in memory."""
    seeds = np.random.SeedSequence([cfg.seed, 1, job.index]).spawn(1 + len(job.readings))
    rendered = render_radiograph(list(job.report.findings), cfg.image_size, int(seeds[0].generate_state(1)[0]))
    h, w = rendered.image.shape
    sentences = [s.text for s in job.report.sentences]
    study = Study(job.study_id, job.subject_id, job.dicom_id, Path(), (h, w), sentences,
                  labels=dict(job.report.labels), split=job.split)
    screen = GazeConfig()  # the phantom's readings are shown on the display the EGD-CXR reader assumes
    display = Display(*screen.egd_screen_px, screen.egd_screen_px_per_deg, w, h)
    masks = sentence_masks(rendered, [sentence.region for sentence in job.report.sentences])
    timelines, sims = [], []
    for plan, seed in zip(job.readings, seeds[1:]):
        rng = np.random.default_rng(seed)
        timeline = dictate(sentences, rng, start_s=float(rng.uniform(3.0, 8.0)))
        rate = 1000.0 if plan.source == "reflacx" else 60.0
        sim = simulate_reading(masks, timeline, (h, w), display.image_px_per_deg, rate, rng,
                               chest_mask=rendered.anatomy_masks["chest"])
        vendor = dataset_fixations(sim, rng)
        if plan.source == "reflacx":
            transcript = timeline.to_transcript()
        else:
            ph = phrases(timeline)
            transcript = Transcript([p for p, _, _ in ph], np.array([b for _, b, _ in ph]), np.array([e for _, _, e in ph]))
        study.readings.append(Reading(plan.reading_id, plan.reader_id, plan.source, transcript,
                                      GazeSamples(sim.t, sim.x, sim.y, rate, (display.image_px_per_deg,) * 2),
                                      FixationTable(vendor.t_start, vendor.t_end, vendor.x, vendor.y)))
        timelines.append(timeline)
        sims.append(sim)
    return SimulatedStudy(job, study, rendered, timelines, sims, display)


def _write_study(args) -> dict:
    """Simulate one study and write its own files; return the rows of the per-patient tables and its truth."""
    job, cfg, root = args
    sim_study = simulate_study(job, cfg)
    study, rendered, display = sim_study.study, sim_study.rendered, sim_study.display
    pdir = patient_dir(root / "mimic-eye", study)
    save_image(pdir / image_relpath(study), rendered.image)
    (pdir / "CXR-DICOM").mkdir(parents=True, exist_ok=True)
    (pdir / "CXR-DICOM" / f"s{study.study_id}.txt").write_text(mimic_report_text(study.report_sentences, []))
    boxes = {name: truth.mask_box(m) for name, m in rendered.finding_masks.items() if m.any()}
    chest_box = truth.mask_box(rendered.anatomy_masks["chest"])
    out = {"study": study, "reflacx_rows": [], "egd": []}
    readings_truth = {}
    for plan, reading, timeline, sim in zip(job.readings, study.readings, sim_study.timelines, sim_study.simulations):
        if plan.source == "reflacx":
            pupil = np.where(np.isfinite(sim.x), 0.5 + 0.05 * np.sin(sim.t / 3.0), np.nan)
            write_reflacx_reading(pdir / "REFLACX", study, reading, display, pupil, boxes, chest_box)
            out["reflacx_rows"].append(reflacx_metadata_row(study, reading, set(rendered.finding_masks)))
        else:
            write_egd_transcript(pdir / "EyeGaze", study, reading)
            session = job.index + 1
            out["egd"].append((egd_gaze_rows(study, reading, display, session),
                               egd_fixation_rows(study, reading, display, session),
                               master_sheet_row(study, display),
                               [{"dicom_id": study.dicom_id, "bbox_name": name, "x1": b[0], "x2": b[2], "y1": b[1], "y2": b[3]}
                                for name, b in truth.anatomy_boxes(rendered.anatomy_masks).items()]))
        readings_truth[plan.reading_id] = truth.reading_truth(plan, sim, timeline)
    truth.write_study_masks(root / "phantom_truth", study.dicom_id, rendered)
    out["truth"] = truth.study_truth(job, rendered, readings_truth)
    return out


def _write_patient_tables(root: Path, results: list[dict]) -> None:
    by_patient: dict[str, list[dict]] = {}
    for r in results:
        by_patient.setdefault(r["study"].subject_id, []).append(r)
    for subject, rs in by_patient.items():
        studies = [r["study"] for r in rs]
        pdir = patient_dir(root / "mimic-eye", studies[0])
        for name, table in cxr_tables(studies).items():
            write_csv(table, pdir / "CXR-JPG" / name, "%.1f")
        reflacx = [row for r in rs for row in r["reflacx_rows"]]
        if reflacx:
            write_csv(pd.DataFrame(reflacx), pdir / "REFLACX" / "metadata.csv")
        egd = [e for r in rs for e in r["egd"]]
        if egd:
            eg = pdir / "EyeGaze"
            write_csv(pd.concat([e[0] for e in egd], ignore_index=True), eg / "eye_gaze.csv", "%.5f")
            write_csv(pd.concat([e[1] for e in egd], ignore_index=True), eg / "fixations.csv", "%.5f")
            write_csv(pd.DataFrame([e[2] for e in egd]), eg / "master_sheet.csv", "%.1f")
            write_csv(pd.DataFrame([b for e in egd for b in e[3]]), eg / "bounding_boxes.csv", "%.1f")


def generate_phantom(out: str | Path, cfg: PhantomConfig, workers: int = 1, overwrite: bool = False,
                     progress: bool = True) -> Path:
    """Write the whole phantom tree to `out` and return its path. Refuses to touch an existing tree
    unless `overwrite`; builds in `<out>.partial` and renames at the end."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    jobs = plan_studies(cfg)
    args = [(job, cfg, tmp) for job in jobs]
    bar = dict(total=len(jobs), desc="phantom MIMIC-Eye", disable=not progress)
    if workers <= 1:
        results = [_write_study(a) for a in tqdm(args, **bar)]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(tqdm(pool.map(_write_study, args, chunksize=4), **bar))
    _write_patient_tables(tmp, results)
    for name, writer in (("chexpert", downstream.write_chexpert), ("rsna", downstream.write_rsna),
                         ("siim", downstream.write_siim)):
        writer(tmp / name, cfg, np.random.default_rng([cfg.seed, 2, len(name)]), workers)
    truth.write_truth_index(tmp / "phantom_truth", cfg, [r["truth"] for r in results])
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    if progress:
        print(f"phantom: {len(jobs)} studies, {sum(len(r['study'].readings) for r in results)} readings "
              f"-> {out} in {time.perf_counter() - started:.1f} s")
    return out


def ensure_phantom(out: str | Path, cfg: PhantomConfig, workers: int = 1) -> Path:
    """The phantom tree at `out`, generated if missing; an existing tree made with other parameters is an error
    (it is never overwritten silently)."""
    out = Path(out)
    if not out.exists():
        return generate_phantom(out, cfg, workers)
    diff = truth.config_matches(out / "phantom_truth", cfg)
    if diff:
        raise ValueError(f"{out} was generated with other parameters {diff} (existing, requested); "
                         "choose another folder or regenerate it with --overwrite")
    return out
