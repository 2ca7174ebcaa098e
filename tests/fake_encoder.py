"""A stand-in for EGMAModel whose right answers are known, for the evaluation tests.

Images are flat grey PNGs: class c has grey level 40 + 40 c. The fake image encoder reads the
level back from the normalised model-frame pixel and returns patch 0 = e_c and the other patches
e_background; the global embedding is e_c. The fake tokenizer maps each known text to its class,
and the text encoder returns e_class. So every scorer must put each image in its own class.
"""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from egma.batch import IMAGE_MEAN, IMAGE_STD
from egma.datasets.downstream import DownstreamSet

N_PATCHES = 4


def grey_level(c: int) -> int:
    return 40 + 40 * c


class FakeTokenizer:
    def __init__(self, text_class: dict[str, int]):
        self.text_class = text_class

    def __call__(self, texts, padding=True, truncation=True, max_length=8, return_tensors="pt"):
        ids = torch.tensor([[self.text_class[t]] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class FakeModel(nn.Module):
    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.cfg = SimpleNamespace(image_size=16, max_tokens=8)
        self.anchor = nn.Parameter(torch.zeros(()))   # so .eval()/.to() behave like a module with weights

    def _dim(self) -> int:
        return self.n_classes + 1   # the last dimension is the background

    def encode_images(self, images):
        level = (images[:, 0, 8, 8] * IMAGE_STD + IMAGE_MEAN) * 255
        cls = ((level - 40) / 40).round().long()
        patches = torch.zeros(len(images), N_PATCHES, self._dim())
        patches[:, 1:, -1] = 1.0
        patches[torch.arange(len(images)), 0, cls] = 1.0
        return patches, F.one_hot(cls, self._dim()).float()

    def image(self, images):
        _, global_emb = self.encode_images(images)
        return None, global_emb

    def encode_sentences(self, input_ids, attention_mask):
        return F.one_hot(input_ids[:, 0], self._dim()).float()


def write_images(folder: Path, classes) -> list[str]:
    paths = []
    for i, c in enumerate(classes):
        path = folder / f"img{i:04d}.png"
        Image.fromarray(np.full((20, 14), grey_level(int(c)), np.uint8)).save(path)
        paths.append(str(path))
    return paths


def multiclass_set(folder: Path, class_names, per_class: int) -> DownstreamSet:
    y = np.repeat(np.arange(len(class_names)), per_class)
    table = pd.DataFrame({"path": write_images(folder, y), "split": "test", "key": [str(i) for i in range(len(y))]})
    for c, name in enumerate(class_names):
        table[name] = (y == c).astype(float)
    return DownstreamSet("fake", table, tuple(class_names), True)
