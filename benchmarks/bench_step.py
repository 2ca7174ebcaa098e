"""Forward + backward time of one EGMA training step per preset on this machine, and the loss's share of it.

    python benchmarks/bench_step.py [--presets ci small paper] [--batch N] [--steps 3]

A step = encode a batch of random images and report sentences, the preset's loss (all EGMA terms),
backward. The loss share is the time of the loss's own forward + backward on the step's (detached)
features over the whole step's time. No optimiser: it is the same for every loss.
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from egma.config import get_preset  # noqa: E402
from egma.losses import EncodedBatch, LossBundle  # noqa: E402
from egma.model import build_model, build_tokenizer, tokenize_reports  # noqa: E402

SENTENCES = ["The heart size is normal.", "There is a small left pleural effusion.", "No pneumothorax is seen.",
             "Mild pulmonary vascular congestion.", "Patchy opacity at the right lung base may represent pneumonia.",
             "The mediastinal contours are unremarkable.", "Degenerative changes of the thoracic spine."]


def random_reports(n_studies: int, rng: torch.Generator) -> list[list[str]]:
    counts = torch.randint(1, len(SENTENCES) + 1, (n_studies,), generator=rng).tolist()
    return [[SENTENCES[(k + j) % len(SENTENCES)] for j in range(c)] for k, c in enumerate(counts)]


def best_time(fn, steps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(preset: str, batch: int | None, steps: int) -> str:
    cfg = get_preset(preset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the paper preset's offline fallback is expected here
        tokenizer = build_tokenizer(cfg.model)
        model = build_model(cfg.model, tokenizer).train()
    b = batch or cfg.train.batch_size
    rng = torch.Generator().manual_seed(0)
    images = torch.randn(b, 3, cfg.model.image_size, cfg.model.image_size, generator=rng)
    tokens = tokenize_reports(tokenizer, random_reports(b, rng), cfg.model.max_tokens)
    loss = LossBundle(cfg.loss)
    n, m = cfg.model.grid ** 2, int(torch.bincount(tokens["sentence_study"]).max())
    gaze = torch.rand(b, m, n, generator=rng)
    has_gaze = torch.ones(b, dtype=torch.bool)

    def step():
        model.zero_grad(set_to_none=True)
        out = model(images, **tokens)
        loss(out, gaze, has_gaze)["total"].backward()

    with torch.no_grad():
        out = model(images, **tokens)
    leaves = EncodedBatch(*(t.detach().requires_grad_(t.is_floating_point()) for t in vars(out).values()))

    def loss_only():
        loss(leaves, gaze, has_gaze)["total"].backward()

    t_step, t_loss = best_time(step, steps), best_time(loss_only, steps)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    return (f"{preset:6s} {b:5d} {len(tokens['sentence_study']):9d} {cfg.model.image_size:5d} {n_params:8.1f}M "
            f"{t_step:9.3f} {1e3 * t_loss:9.1f} {100 * t_loss / t_step:7.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["ci", "small", "paper"])
    parser.add_argument("--batch", type=int, default=None, help="studies per step (default: the preset's)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 is steadier on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{torch.get_num_threads()} threads; forward + backward, best of {args.steps} steps")
    print(f"{'preset':6s} {'batch':>5s} {'sentences':>9s} {'px':>5s} {'params':>9s} {'step s':>9s} "
          f"{'loss ms':>9s} {'loss %':>8s}")
    for preset in args.presets:
        print(bench(preset, args.batch, args.steps), flush=True)


if __name__ == "__main__":
    main()
