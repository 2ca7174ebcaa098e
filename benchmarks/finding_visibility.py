"""Can a finding be seen at a preset's image size at all? A supervised reference for chapter 6's probes.

    python benchmarks/finding_visibility.py --data-root data/phantom/small [--preset small] [--epochs 12]
        [--sets rsna siim] [--image-size N]

For each binary downstream set (RSNA pneumonia, SIIM pneumothorax) the preset's image tower is trained from
scratch with a linear head on the set's train split (class-weighted binary cross-entropy, AdamW), at the
preset's image size unless --image-size says otherwise. The epoch is chosen on the valid split; the test split
is scored once, with that epoch's weights: AUROC with a 95 % bootstrap interval over the test images.
A linear probe on frozen pretrained features that stays near 0.5 where this reference is well above it
points at the pretraining; a reference near 0.5 too says the finding is not learnable from these images, at
this size and with this many labels.
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from egma.batch import load_model_image  # noqa: E402
from egma.config import get_preset  # noqa: E402
from egma.datasets import read_rsna, read_siim  # noqa: E402
from egma.evaluation.bootstrap import bootstrap_ci  # noqa: E402
from egma.evaluation.metrics import binary_auroc  # noqa: E402
from egma.model import ImageEncoder  # noqa: E402

READERS = {"rsna": read_rsna, "siim": read_siim}   # each reads <data_root>/<its name>


def load_split(dataset, name: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    part = dataset.split(name)
    images = torch.stack([load_model_image(p, size) for p in part.paths])
    return images, torch.as_tensor(part.labels[:, 0] > 0, dtype=torch.float32)


@torch.no_grad()
def scores(model: nn.Module, images: torch.Tensor, batch: int = 128) -> np.ndarray:
    model.eval()
    return torch.cat([model(images[i:i + batch]).squeeze(1) for i in range(0, len(images), batch)]).numpy()


def train_reference(cfg, splits: dict, epochs: int, batch: int, lr: float, seed: int) -> tuple[nn.Module, list]:
    torch.manual_seed(seed)
    encoder = ImageEncoder(cfg.model)
    model = nn.Sequential(encoder, _Pooled(), nn.Linear(encoder.width, 1))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    (x, y), (vx, vy) = splits["train"], splits["valid"]
    pos_weight = (len(y) - y.sum()) / y.sum().clamp_min(1)
    best, history = (-1.0, None), []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            rows = order[i:i + batch]
            loss = F.binary_cross_entropy_with_logits(model(x[rows]).squeeze(1), y[rows], pos_weight=pos_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        valid_auroc = float(binary_auroc(vy.numpy() > 0, scores(model, vx)))
        history.append(valid_auroc)
        if valid_auroc > best[0]:
            best = (valid_auroc, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[1])
    return model, history


class _Pooled(nn.Module):
    """ImageEncoder's (tokens, pooled) -> pooled: the features chapter 6's probe reads."""

    def forward(self, outputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return outputs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--sets", nargs="+", default=["rsna", "siim"], choices=sorted(READERS))
    parser.add_argument("--image-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = get_preset(args.preset)
    size = args.image_size or cfg.model.image_size
    print(f"preset {args.preset}, image tower {cfg.model.image_encoder} from scratch at {size} px, "
          f"{args.epochs} epochs, {torch.get_num_threads()} threads")
    print(f"{'set':<6} {'train':>6} {'pos':>5} {'test':>5} {'pos':>5}  valid AUROC by epoch -> test AUROC [95 % CI]")
    for name in args.sets:
        started = time.perf_counter()
        dataset = READERS[name](args.data_root / name)
        splits = {part: load_split(dataset, part, size) for part in ("train", "valid", "test")}
        model, history = train_reference(cfg, splits, args.epochs, args.batch, args.lr, args.seed)
        tx, ty = splits["test"]
        test = bootstrap_ci(binary_auroc, ty.numpy() > 0, scores(model, tx), rng=np.random.default_rng(0))
        print(f"{name:<6} {len(splits['train'][1]):>6} {int(splits['train'][1].sum()):>5} {len(ty):>5} "
              f"{int(ty.sum()):>5}  {' '.join(f'{v:.2f}' for v in history)} -> epoch {int(np.argmax(history))}: "
              f"{100 * test.value:.1f} [{100 * test.low:.1f}, {100 * test.high:.1f}]  "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
