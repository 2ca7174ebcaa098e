"""Frozen features for evaluation: images through `load_model_image` (the training geometry and
normalisation), texts tokenised one sentence each, in batches, under torch.no_grad with the model
in eval mode. The caller chooses the device; results come back on the CPU."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from egma.batch import load_model_image
from egma.model import EGMAModel


@dataclass
class ImageFeatures:
    """Normalised projected patch tokens (N, n, d) and global embeddings (N, d); optionally the
    pooled backbone features (N, C) before the projection, for linear probes."""
    patches: torch.Tensor
    global_emb: torch.Tensor
    backbone: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.global_emb)

    def rows(self, index: slice) -> "ImageFeatures":
        """The features of a slice of the images."""
        return ImageFeatures(self.patches[index], self.global_emb[index],
                             None if self.backbone is None else self.backbone[index])


def _batches(items: Sequence, batch_size: int):
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return (items[i:i + batch_size] for i in range(0, len(items), batch_size))


@torch.no_grad()
def encode_image_tensors(model: EGMAModel, images: torch.Tensor, device: torch.device | str, batch_size: int = 64,
                         backbone: bool = False) -> ImageFeatures:
    """Features of model-frame image tensors (N, 3, size, size)."""
    model.eval()
    patches, global_emb, pooled = [], [], []
    for chunk in _batches(images, batch_size):
        chunk = chunk.to(device)
        p, g = model.encode_images(chunk)
        patches.append(p.float().cpu())
        global_emb.append(g.float().cpu())
        if backbone:
            pooled.append(model.image(chunk)[1].float().cpu())
    return ImageFeatures(torch.cat(patches), torch.cat(global_emb), torch.cat(pooled) if backbone else None)


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str | Path], size: int):
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return load_model_image(self.paths[i], self.size)


@torch.no_grad()
def encode_image_files(model: EGMAModel, paths: Sequence[str | Path], device: torch.device | str,
                       batch_size: int = 64, backbone: bool = False, num_workers: int = 0,
                       progress: bool = False) -> ImageFeatures:
    """Features of image files; `num_workers` > 0 reads the next batches in worker processes while
    the model encodes the current one."""
    if not paths:
        raise ValueError("no images to encode")
    loader = torch.utils.data.DataLoader(_ImageFiles(paths, model.cfg.image_size), batch_size=batch_size,
                                         num_workers=num_workers)
    parts = [encode_image_tensors(model, images, device, batch_size, backbone)
             for images in tqdm(loader, desc="images", disable=not progress)]
    return ImageFeatures(torch.cat([f.patches for f in parts]), torch.cat([f.global_emb for f in parts]),
                         torch.cat([f.backbone for f in parts]) if backbone else None)


@torch.no_grad()
def encode_texts(model: EGMAModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                 device: torch.device | str, batch_size: int = 256) -> torch.Tensor:
    """Normalised embeddings (T, d) of sentences, each tokenised on its own (prompts, queries)."""
    model.eval()
    out = []
    for chunk in _batches(list(texts), batch_size):
        tokens = tokenizer(chunk, padding=True, truncation=True, max_length=model.cfg.max_tokens, return_tensors="pt")
        out.append(model.encode_sentences(tokens["input_ids"].to(device),
                                          tokens["attention_mask"].to(device)).float().cpu())
    return torch.cat(out)


DIFFERENT_FINDINGS = "two different findings (mean)"


def statement_similarities(model: EGMAModel, tokenizer: PreTrainedTokenizerBase,
                           pairs: Mapping[str, tuple[str, str]], device: torch.device | str) -> pd.Series:
    """How the text side places findings, cosines in the model's joint space: per finding, of its (affirmed,
    negated) statements; under DIFFERENT_FINDINGS, the mean over the affirmed statements of two different findings
    (the scale: a narrow cone of sentence embeddings puts everything close)."""
    affirmed, negated = (encode_texts(model, tokenizer, list(texts), device) for texts in zip(*pairs.values()))
    between = (affirmed @ affirmed.T)[~torch.eye(len(affirmed), dtype=torch.bool)].mean().item()
    return pd.Series((affirmed * negated).sum(dim=1).tolist() + [between], index=[*pairs, DIFFERENT_FINDINGS])
