"""Evaluation speed on a CheXpert 5x200-size set with the CI preset model (random images, this CPU).

    python benchmarks/bench_evaluation.py [--preset ci --images 1000 --batch 64 --threads N --workers 0]

Writes `--images` random grey PNGs (512 px, like the phantom) to a temporary folder and times:
reading + encoding them, encoding the 471 CheXpert 5x200 prompts, class scores (global and FILIP,
max), the metrics table with 1000 bootstrap resamples and baselines, and the 8x200 retrieval table.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from egma.config import get_preset  # noqa: E402
from egma.evaluation.encoding import encode_image_files, encode_texts  # noqa: E402
from egma.evaluation.retrieval import retrieval_table  # noqa: E402
from egma.evaluation.zero_shot import classification_table, flatten_prompts, prompt_class_scores  # noqa: E402
from egma.model import build_model, build_tokenizer  # noqa: E402
from egma.prompts import chexpert_5x200_prompts  # noqa: E402


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    print(f"{label:<44} {time.perf_counter() - start:7.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ci")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--image-px", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workers", type=int, default=0, help="image-reading worker processes")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_preset(args.preset).model
    tokenizer = build_tokenizer(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, tokenizer).eval()
    rng = np.random.default_rng(0)
    print(f"preset {args.preset}: {args.images} images of {args.image_px} px, batch {args.batch}, "
          f"{torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(args.images):
            paths.append(Path(folder) / f"{i:05d}.png")
            Image.fromarray(rng.integers(0, 256, (args.image_px, args.image_px), dtype=np.uint8)).save(paths[-1])
        features = timed(f"read + encode images ({args.workers} workers)",
                         lambda: encode_image_files(model, paths, "cpu", args.batch, num_workers=args.workers))
    texts, prompt_class, names = flatten_prompts(chexpert_5x200_prompts())
    prompt_emb = timed(f"encode {len(texts)} prompts", lambda: encode_texts(model, tokenizer, texts, "cpu"))
    for scoring in ("global", "filip"):
        scores = timed(f"class scores ({scoring}, max)",
                       lambda: prompt_class_scores(features, prompt_emb, prompt_class, len(names), scoring, "max"))
    y = np.repeat(np.arange(len(names)), -(-args.images // len(names)))[:args.images]
    timed("metrics + 1000 bootstrap + baselines", lambda: classification_table(y, scores, rng))
    image_class, query_class = np.repeat(np.arange(8), -(-args.images // 8))[:args.images], np.repeat(np.arange(8), 5)
    timed("retrieval table (1000 x 40, P@1/5/10)",
          lambda: retrieval_table(rng.random((args.images, 40)), image_class, query_class, rng=rng))


if __name__ == "__main__":
    main()
