"""Gaze preprocessing speed: ms per reading (detection + sentence heatmaps + patch labels) at
1000 Hz and 60 Hz on simulated readings, projected totals for the CI and full-size corpora, and
the cache's load time per training batch.

    python benchmarks/bench_gaze.py [--readings 10] [--cache-studies 400] [--batch 40]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from egma.config import GazeConfig, ModelConfig, PhantomConfig, get_preset
from egma.datasets.study import Reading, Study
from egma.gaze.cache import build_gaze_cache, load_gaze_cache
from egma.gaze.fixations import detect_fixations, match_fixations
from egma.gaze.heatmaps import study_heatmaps
from egma.gaze.patch_labels import soft_labels
from egma.phantom.dictation import dictate
from egma.phantom.gaze_sim import simulate_reading

HW = (512, 440)
PX_PER_DEG = 21.0   # a 512-px image shown full height on a 1080p screen at ~44 px/deg
SENTENCES = ["The heart is enlarged.", "The right lung is clear.", "There is a small left pleural effusion.",
             "Both lungs are well expanded.", "A nodule in the right upper lobe.", "No acute osseous abnormality."]


def _masks():
    yy, xx = np.mgrid[0:HW[0], 0:HW[1]] / np.array(HW)[:, None, None]
    ellipse = lambda cx, cy, rx, ry: ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    return [ellipse(.55, .62, .17, .13), ellipse(.3, .5, .15, .3), ellipse(.7, .5, .15, .3),
            ellipse(.5, .5, .35, .3), ellipse(.3, .3, .06, .05), ellipse(.5, .5, .06, .4)]


def simulated_study(seed: int, rate: float):
    rng = np.random.default_rng(seed)
    timeline = dictate(SENTENCES, rng, start_s=float(rng.uniform(3, 8)))
    sim = simulate_reading(_masks(), timeline, HW, PX_PER_DEG, rate, rng)
    reading = Reading(f"r{seed}", "reader", "reflacx" if rate > 100 else "egd-cxr", timeline.to_transcript(),
                      sim.gaze_samples())
    return Study(f"s{seed}", "p", "d", Path("x.jpg"), HW, SENTENCES, readings=[reading]), sim


def per_reading_ms(rate: float, n: int, cfg: GazeConfig, size: int, grid: int) -> dict:
    studies = [simulated_study(seed, rate) for seed in range(n)]
    detect, total, precision, recall, seconds = [], [], [], [], []
    for study, sim in studies:
        t0 = time.perf_counter()
        fixations = detect_fixations(study.readings[0].samples, cfg, study.readings[0].reading_id, HW)
        t1 = time.perf_counter()
        soft_labels(study_heatmaps(study, cfg, size).maps, grid)
        t2 = time.perf_counter()
        detect.append(t1 - t0)
        total.append(t2 - t1)   # study_heatmaps runs detection itself
        match = match_fixations(fixations, sim.fixations)
        precision.append(match.precision)
        recall.append(match.recall)
        seconds.append(sim.t[-1])
    return {"detect_ms": 1e3 * np.median(detect), "total_ms": 1e3 * np.median(total),
            "precision": np.mean(precision), "recall": np.mean(recall), "reading_s": np.median(seconds)}


def cache_batch_ms(n_studies: int, batch: int, cfg: GazeConfig, size: int, grid: int) -> tuple[float, float, int]:
    base = [simulated_study(seed, 60.0)[0] for seed in range(8)]
    studies = [replace(base[k % 8], study_id=f"s{k}") for k in range(n_studies)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gaze.pt"
        t0 = time.perf_counter()
        build_gaze_cache(studies, path, replace(cfg, fixation_method="ivt"), size, grid, progress=False)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cache = load_gaze_cache(path, replace(cfg, fixation_method="ivt"), size, grid)
        open_ms = 1e3 * (time.perf_counter() - t0)
        rng = np.random.default_rng(0)
        times = []
        for _ in range(50):
            ids = [f"s{k}" for k in rng.choice(n_studies, batch, replace=False)]
            t0 = time.perf_counter()
            cache.batch(ids)
            times.append(time.perf_counter() - t0)
        return 1e3 * np.median(times), open_ms, build_s, path.stat().st_size if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=10)
    parser.add_argument("--cache-studies", type=int, default=400)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()
    cfg, model = GazeConfig(), ModelConfig()
    print(f"method {cfg.fixation_method}; heatmaps {model.image_size} px; grid {model.grid}")
    results = {}
    for rate in (1000.0, 60.0):
        r = results[rate] = per_reading_ms(rate, args.readings, cfg, model.image_size, model.grid)
        print(f"{rate:6.0f} Hz: detection {r['detect_ms']:.1f} ms, detection + heatmaps + labels {r['total_ms']:.1f} ms "
              f"per reading (median {r['reading_s']:.0f} s of gaze); P {r['precision']:.3f} R {r['recall']:.3f}")
    for name in ("ci", "paper"):
        phantom: PhantomConfig = get_preset(name).phantom
        readings = phantom.n_studies * (1 + phantom.multi_reader_fraction)
        ms = (1 - phantom.egd_fraction) * results[1000.0]["total_ms"] + phantom.egd_fraction * results[60.0]["total_ms"]
        print(f"corpus {name!r}: ~{readings:.0f} readings -> ~{readings * ms / 1e3:.0f} s on one core (projected)")
    batch_ms, open_ms, build_s, size_b = cache_batch_ms(args.cache_studies, args.batch, cfg, model.image_size, model.grid)
    print(f"cache of {args.cache_studies} studies: built in {build_s:.1f} s, {size_b / 1e6:.2f} MB, opened in {open_ms:.1f} ms, "
          f"{batch_ms:.3f} ms per batch of {args.batch}")


if __name__ == "__main__":
    main()
