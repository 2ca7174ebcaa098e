"""Zero-shot classification: each image is scored against every prompt, the prompt scores are
aggregated per class (max, the paper's rule, or mean), and the class with the highest score wins.

Scoring:
- "global": cosine of the global image embedding with the prompt embedding.
- "filip": FILIP's instance scores (egma.losses.filip_scores) with the prompt as a one-sentence
  report: z_I = mean over patches of the patch-prompt cosine, z_T = max over patches;
  `filip_direction` picks "image" (z_I), "text" (z_T) or "mean" (their average, the default:
  the loss trains both).
Scores are cosines (logit scale 1): scaling does not change any ranking.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from egma.datasets.downstream import DownstreamSet
from egma.evaluation.bootstrap import (bootstrap_ci, estimate_record, majority_scores, random_baseline)
from egma.evaluation.encoding import ImageFeatures, encode_image_files, encode_texts
from egma.evaluation.metrics import SCORE_METRICS, confusion_matrix
from egma.losses import filip_scores
from egma.model import EGMAModel, build_tokenizer

FILIP_CHUNK = 256   # images per FILIP call: (chunk, prompts, patches) similarities stay small
# The scoring rules by name: (similarity, aggregate over a class's prompts). The paper's rule comes first.
SCORINGS = {"global, max": ("global", "max"), "global, mean": ("global", "mean"),
            "filip, max": ("filip", "max"), "filip, mean": ("filip", "mean")}


def flatten_prompts(prompts: Mapping[str, Sequence[str]]) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """All prompts in class order, the class index of each, and the class names."""
    empty = [c for c, p in prompts.items() if not p]
    if empty:
        raise ValueError(f"classes without prompts: {empty}")
    texts = [t for p in prompts.values() for t in p]
    prompt_class = np.repeat(np.arange(len(prompts)), [len(p) for p in prompts.values()])
    return texts, prompt_class, tuple(prompts)


def global_prompt_scores(image_emb: torch.Tensor, prompt_emb: torch.Tensor) -> torch.Tensor:
    """(N, P) cosines of global image embeddings with prompt embeddings (both L2-normalised)."""
    return image_emb.float() @ prompt_emb.float().T


def filip_prompt_scores(patches: torch.Tensor, prompt_emb: torch.Tensor, direction: str = "mean") -> torch.Tensor:
    """(N, P) FILIP scores of patch tokens (N, n, d) against one-sentence prompts (P, d)."""
    if direction not in ("image", "text", "mean"):
        raise ValueError(f"filip direction must be 'image', 'text' or 'mean', got {direction!r}")
    sentences = prompt_emb[:, None, :]
    mask = torch.ones(len(prompt_emb), 1, dtype=torch.bool)
    unit = torch.ones((), dtype=torch.float32)
    out = []
    for chunk in torch.split(patches, FILIP_CHUNK):
        z_image, z_text, _ = filip_scores(chunk, sentences, mask, unit)
        out.append({"image": z_image, "text": z_text, "mean": (z_image + z_text) / 2}[direction])
    return torch.cat(out)


def aggregate_by_class(scores, prompt_class, n_classes: int, how: str = "max") -> np.ndarray:
    """(N, P) prompt scores -> (N, C) class scores by max or mean over each class's prompts."""
    scores, prompt_class = np.asarray(scores, dtype=float), np.asarray(prompt_class)
    if how not in ("max", "mean"):
        raise ValueError(f"aggregate must be 'max' or 'mean', got {how!r}")
    counts = np.bincount(prompt_class, minlength=n_classes)
    if len(counts) > n_classes or (counts == 0).any():
        raise ValueError(f"every one of the {n_classes} classes needs at least one prompt; counts {counts.tolist()}")
    order = np.argsort(prompt_class, kind="stable")
    starts = np.cumsum(counts) - counts
    if how == "max":
        return np.maximum.reduceat(scores[:, order], starts, axis=1)
    return np.add.reduceat(scores[:, order], starts, axis=1) / counts


def zero_shot_targets(dataset: DownstreamSet, class_names: Sequence[str]) -> np.ndarray:
    """Class index (in `class_names` order) of each image.

    A multi-class set (5x200) must have exactly these classes; a one-column binary set (RSNA, SIIM)
    needs two names, its own class and the negative (e.g. "Normal"): label 1 -> its class.
    """
    names = list(class_names)
    if dataset.multiclass:
        if set(names) != set(dataset.class_names):
            raise ValueError(f"prompt classes {names} differ from {dataset.name}'s classes {list(dataset.class_names)}")
        return np.array([names.index(c) for c in dataset.class_names])[dataset.y]
    if len(dataset.class_names) != 1 or len(names) != 2 or dataset.class_names[0] not in names:
        raise ValueError(f"{dataset.name} ({list(dataset.class_names)}) needs two prompt classes, "
                         f"one of them {dataset.class_names[0]!r}; got {names}")
    positive = names.index(dataset.class_names[0])
    return np.where(dataset.labels[:, 0] == 1, positive, 1 - positive)


def classification_table(y_true, scores, rng: np.random.Generator, n_resamples: int = 1000,
                         n_draws: int = 1000) -> pd.DataFrame:
    """Every SCORE_METRICS metric for the model, the majority class and uniform random scores, with 95 % CIs.

    Columns: predictor, metric, value, ci_low, ci_high.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=float)
    majority = majority_scores(y_true, scores.shape[1])
    rows = []
    for name, metric in SCORE_METRICS.items():
        rows.append(estimate_record(bootstrap_ci(metric, y_true, scores, rng=rng, n_resamples=n_resamples),
                                    predictor="model", metric=name))
        rows.append(estimate_record(bootstrap_ci(metric, y_true, majority, rng=rng, n_resamples=n_resamples),
                                    predictor="majority", metric=name))
        rows.append(estimate_record(random_baseline(lambda s, m=metric: m(y_true, s), scores.shape, rng, n_draws),
                                    predictor="random", metric=name))
    return pd.DataFrame(rows)


@dataclass
class ZeroShotResult:
    predictions: pd.DataFrame   # path, y_true, y_pred, true_class, predicted_class
    scores: np.ndarray          # (N, C) class scores
    class_names: tuple[str, ...]
    metrics: pd.DataFrame       # predictor, metric, value, ci_low, ci_high
    confusion: pd.DataFrame     # rows true, columns predicted


def prompt_similarity(features: ImageFeatures, prompt_emb: torch.Tensor, scoring: str = "global",
                      filip_direction: str = "mean") -> torch.Tensor:
    """(N, P) "global" or "filip" scores of encoded images against encoded prompts."""
    if scoring == "global":
        return global_prompt_scores(features.global_emb, prompt_emb)
    if scoring == "filip":
        return filip_prompt_scores(features.patches, prompt_emb, filip_direction)
    raise ValueError(f"scoring must be 'global' or 'filip', got {scoring!r}")


def prompt_class_scores(features: ImageFeatures, prompt_emb: torch.Tensor, prompt_class, n_classes: int,
                        scoring: str = "global", aggregate: str = "max", filip_direction: str = "mean") -> np.ndarray:
    """(N, C) class scores of encoded images against encoded prompts."""
    per_prompt = prompt_similarity(features, prompt_emb, scoring, filip_direction)
    return aggregate_by_class(per_prompt.numpy(), prompt_class, n_classes, aggregate)


def evaluate_zero_shot(model: EGMAModel, dataset: DownstreamSet, prompts: Mapping[str, Sequence[str]],
                       device: torch.device | str, batch_size: int = 64, scoring: str = "global",
                       aggregate: str = "max", *, tokenizer=None, features: ImageFeatures | None = None,
                       filip_direction: str = "mean", n_resamples: int = 1000, n_draws: int = 1000,
                       seed: int = 0, progress: bool = False) -> ZeroShotResult:
    """Zero-shot classification of `dataset` with `prompts` ({class: [prompts]}).

    Pass `features` (from encode_image_files) to score the same images several ways without
    re-encoding them; `tokenizer` defaults to the model config's.
    """
    texts, prompt_class, class_names = flatten_prompts(prompts)
    y_true = zero_shot_targets(dataset, class_names)
    if features is None:
        features = encode_image_files(model, dataset.paths, device, batch_size, progress=progress)
    if len(features) != len(dataset):
        raise ValueError(f"{len(features)} encoded images for {len(dataset)} dataset rows")
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer(model.cfg)
    prompt_emb = encode_texts(model, tokenizer, texts, device)
    scores = prompt_class_scores(features, prompt_emb, prompt_class, len(class_names), scoring, aggregate,
                                 filip_direction)
    y_pred = scores.argmax(axis=1)
    predictions = pd.DataFrame({"path": [str(p) for p in dataset.paths], "y_true": y_true, "y_pred": y_pred,
                                "true_class": np.array(class_names)[y_true],
                                "predicted_class": np.array(class_names)[y_pred]})
    metrics = classification_table(y_true, scores, np.random.default_rng(seed), n_resamples, n_draws)
    confusion = pd.DataFrame(confusion_matrix(y_true, y_pred, len(class_names)),
                             index=pd.Index(class_names, name="true"), columns=pd.Index(class_names, name="predicted"))
    return ZeroShotResult(predictions, scores, class_names, metrics, confusion)
