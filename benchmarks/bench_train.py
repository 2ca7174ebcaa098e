"""Training throughput per preset on this machine: images/s, the data loader's share of step time, peak memory.

    python benchmarks/bench_train.py --data-root data/phantom/ci [--presets ci small paper] [--steps 6]
        [--workers 2] [--batch N]

Each preset trains `--steps` optimiser steps of the real loop (egma.train, gaze cache included) in a
temporary run folder; the first step (loader start-up, allocator warm-up) is left out of the figures.
On a GPU the preset's mixed precision ("auto" = bf16) applies and the peak CUDA memory is reported.
"""
import argparse
import dataclasses
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from egma.config import get_preset  # noqa: E402
from egma.train import train  # noqa: E402


def bench(preset: str, data_root: Path, steps: int, workers: int, batch: int | None) -> str:
    cfg = get_preset(preset)
    train_cfg = dataclasses.replace(cfg.train, batch_size=batch or cfg.train.batch_size, epochs=1,
                                    checkpoint_every=10 ** 9)
    cfg = dataclasses.replace(cfg, train=train_cfg)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as run_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the paper preset's offline text-encoder fallback is expected here
        result = train(cfg, data_root, run_dir, workers=workers, max_steps=steps, progress_bar=False)
    records = result.frame("step").iloc[1:]
    data_s, compute_s = records["data_s"].sum(), records["compute_s"].sum()
    peak = f"{torch.cuda.max_memory_allocated() / 2 ** 30:.1f} GiB" if torch.cuda.is_available() else "-"
    return (f"{preset:<6} {train_cfg.batch_size:>5} {len(records):>5} {records['images_per_s'].median():>9.2f} "
            f"{(data_s + compute_s) / len(records):>8.2f} {data_s / (data_s + compute_s):>7.1%} {peak:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--presets", nargs="+", default=["ci", "small"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: the preset's)")
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"{device}; {args.workers} loader workers; steps 2..{args.steps}")
    print("preset batch steps  images/s   s/step    data  peak mem")
    for preset in args.presets:
        print(bench(preset, args.data_root, args.steps, args.workers, args.batch), flush=True)


if __name__ == "__main__":
    main()
