"""Vectorised EGMA losses against the per-study loop references of the tests, forward + backward.

    python benchmarks/bench_losses.py [--batch 40 --patches 49 --max-sentences 12 --dim 512]

Prints, per term, the best-of-repeats wall time of each and the speed-up (target: >= 20x at the paper's batch 40,
7x7 patches, up to 12 sentences, d = 512).
"""
import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
import reference_losses as ref  # noqa: E402

from egma import losses  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Best-of-`repeats` seconds of fn(): the least disturbed by other work on the machine (as timeit advises)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--patches", type=int, default=49)
    parser.add_argument("--max-sentences", type=int, default=12)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 is steadier on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = torch.Generator().manual_seed(0)
    counts = torch.randint(1, args.max_sentences + 1, (args.batch,), generator=rng).tolist()
    has_gaze = (torch.rand(args.batch, generator=rng) < 0.8).tolist()
    batch = ref.random_batch(counts, has_gaze, n=args.patches, d=args.dim, dtype=torch.float32)
    P = batch["patches"].requires_grad_()
    padded = batch["sentences"].requires_grad_()
    mask, gaze, flags, s = batch["mask"], batch["gaze"], batch["has_gaze"], batch["scale"]

    def per_study():  # the references take views of the same leaf tensors, so backward reaches them too
        return ref.per_study({**batch, "sentences": padded})

    terms = {
        "filip": (lambda: losses.filip_loss(P, padded, mask, s),
                  lambda: ref.filip(P, per_study()[0], s)),
        "mlce": (lambda: losses.mlce_loss(P, padded, mask, gaze, flags, s),
                 lambda: ref.mlce_loss(P, *per_study(), has_gaze, s)),
        "egm": (lambda: losses.egm_loss(P, padded, mask, gaze, flags, s),
                lambda: ref.egm_loss(P, *per_study(), has_gaze, s)),
    }
    print(f"batch {args.batch}, {args.patches} patches, sentences per report {min(counts)}-{max(counts)} "
          f"(mean {sum(counts) / len(counts):.1f}), d {args.dim}, {sum(has_gaze)} studies with gaze, "
          f"{torch.get_num_threads()} threads; forward + backward, best of {args.repeats}")
    print(f"{'term':8s} {'vectorised ms':>14s} {'reference ms':>13s} {'speed-up':>9s}")
    total_fast = total_slow = 0.0
    for name, (fast, slow) in terms.items():
        t_fast = timed(lambda: fast().backward(), args.repeats)
        t_slow = timed(lambda: slow().backward(), max(1, args.repeats // 2))
        total_fast, total_slow = total_fast + t_fast, total_slow + t_slow
        print(f"{name:8s} {1e3 * t_fast:14.1f} {1e3 * t_slow:13.1f} {t_slow / t_fast:8.1f}x")
    print(f"{'egma':8s} {1e3 * total_fast:14.1f} {1e3 * total_slow:13.1f} {total_slow / total_fast:8.1f}x")


if __name__ == "__main__":
    main()
