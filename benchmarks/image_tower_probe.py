"""Which image tower can learn the phantom's findings from scratch on a CPU? A supervised probe.

    python benchmarks/image_tower_probe.py --data-root data/phantom/ci [--epochs 15 --lr 1e-3 --seed 0]

Trains each tower (the CI Swin that the CPU presets used before, and the half-width dilated ResNet-18 of the
`ci` preset; both give the 7x7 patch grid at 112 px) with a linear head on the training split of the phantom
MIMIC-Eye, multi-label binary cross-entropy on the five CheXpert 5x200 findings, and prints after every epoch
the accuracy on the phantom CheXpert 5x200 set (chance 20 %). A diagnostic of learnability with labels, the
upper end of what contrastive pretraining can reach on the same images: it chooses no checkpoint and no
number of it enters the book.
"""
import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from egma.batch import load_model_image  # noqa: E402
from egma.config import CI_SWIN_IMAGE, get_preset  # noqa: E402
from egma.datasets import read_mimic_eye  # noqa: E402
from egma.datasets.downstream import CHEXPERT_5X200, read_chexpert_5x200  # noqa: E402
from egma.model import ImageEncoder  # noqa: E402


class Probe(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoder = ImageEncoder(cfg)
        self.head = torch.nn.Linear(self.encoder.width, len(CHEXPERT_5X200))

    def forward(self, images):
        return self.head(self.encoder(images)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default="data/phantom/ci")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = Path(args.data_root)
    cfg = get_preset("ci").model
    studies = [s for s in read_mimic_eye(root / "mimic-eye", samples=False) if s.split == "train"]
    labels = torch.tensor([[float(s.labels.get(c) == 1) for c in CHEXPERT_5X200] for s in studies])
    images = torch.stack([load_model_image(s.image_path, cfg.image_size) for s in studies])
    test = read_chexpert_5x200(root / "chexpert" / "CheXpert-v1.0-small", "chexpert_5x200.csv", n_per_class=200)
    test_images = torch.stack([load_model_image(p, cfg.image_size) for p in test.table["path"]])
    test_y = test.table[list(test.class_names)].to_numpy().argmax(1)
    print(f"{len(studies)} training images, positives per class {dict(zip(CHEXPERT_5X200, labels.sum(0).tolist()))}; "
          f"5x200 set {len(test_y)} images")
    towers = {"CI Swin (3 stages, 24 wide)": dataclasses.replace(cfg, **CI_SWIN_IMAGE),
              "ResNet-18 half width, output stride 16 (the ci preset)": cfg}
    for name, tower in towers.items():
        torch.manual_seed(args.seed)
        model = Probe(tower)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        print(f"\n{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
        for epoch in range(args.epochs):
            start, model = time.perf_counter(), model.train()
            order, total = torch.randperm(len(images)), 0.0
            for i in range(0, len(images), args.batch):
                idx = order[i:i + args.batch]
                loss = F.binary_cross_entropy_with_logits(model(images[idx]), labels[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            with torch.no_grad():
                predicted = model.eval()(test_images).argmax(1).numpy()
            print(f"  epoch {epoch:2d}: train loss {total / len(images):.3f}, 5x200 accuracy "
                  f"{np.mean(predicted == test_y):.3f}, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
