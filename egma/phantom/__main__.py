"""python -m egma.phantom --out data/phantom-ci --preset ci [--n-studies N] [--seed S] [--workers 2]"""
from __future__ import annotations

import argparse
from dataclasses import replace

from egma.config import get_preset
from egma.phantom.generate import generate_phantom


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m egma.phantom", description=__doc__)
    parser.add_argument("--out", required=True, help="output root (built in <out>.partial, renamed when complete)")
    parser.add_argument("--preset", default="ci", help="preset whose PhantomConfig is used: ci, small, paper")
    parser.add_argument("--n-studies", type=int, help="override the number of MIMIC-Eye images")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (output does not depend on it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing tree at --out")
    args = parser.parse_args(argv)
    cfg = get_preset(args.preset).phantom
    overrides = {k: v for k, v in (("n_studies", args.n_studies), ("seed", args.seed)) if v is not None}
    generate_phantom(args.out, replace(cfg, **overrides), workers=args.workers, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
