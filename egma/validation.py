"""The validation score that picks the checkpoint, and the zero-shot scoring rule that goes with it, on the
pretraining corpus's "validate" split (never a test split).

Images: validate-split studies positive (label 1) for exactly one of the CheXpert 5x200 classes.
Each image is scored against every prompt of egma.prompts' 5x200 grammar in the four ways of
egma.evaluation.zero_shot (global or FILIP similarity; max, the paper's rule, or mean over a class's
prompts). The criterion is the balanced accuracy (the mean of the per-class recalls): the validate split is
unbalanced (one class can hold 40 % of it), the 5x200 test set is not, and plain accuracy rewards sending
every image to the largest class. A checkpoint's score is its best rule's; the rule is saved with it, and
the downstream chapters score that model with that rule.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from egma.datasets.study import Study
from egma.evaluation.encoding import encode_image_files, encode_texts
from egma.evaluation.metrics import SCORE_METRICS
from egma.evaluation.zero_shot import SCORINGS, flatten_prompts, prompt_class_scores
from egma.model import EGMAModel
from egma.prompts import chexpert_5x200_prompts


@dataclass
class ValidationSet:
    image_paths: list[Path]
    targets: np.ndarray            # (N,) class index
    class_names: tuple[str, ...]
    prompts: list[str]
    prompt_class: np.ndarray       # (P,) class index of each prompt

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def majority_accuracy(self) -> float:
        """Accuracy of always predicting the most frequent class of this set."""
        return float(np.bincount(self.targets, minlength=len(self.class_names)).max() / max(len(self), 1))


def validation_set(studies: Sequence[Study], prompts_per_class: int | None = None, seed: int = 0) -> ValidationSet:
    """The single-finding validate-split studies and the 5x200 prompts (see module doc)."""
    prompts = chexpert_5x200_prompts(prompts_per_class, seed)
    texts, prompt_class, names = flatten_prompts(prompts)
    paths, targets = [], []
    for study in studies:
        if study.split != "validate":
            continue
        positive = [i for i, name in enumerate(names) if study.labels.get(name) == 1]
        if len(positive) == 1:
            paths.append(study.image_path)
            targets.append(positive[0])
    if not paths:
        raise ValueError(f"no validate-split study is positive for exactly one of {list(names)}: "
                         "the corpus has nothing to choose a checkpoint on")
    return ValidationSet(paths, np.asarray(targets), names, texts, prompt_class)


def zero_shot_validation(model: EGMAModel, tokenizer: PreTrainedTokenizerBase, val: ValidationSet,
                         device: torch.device | str, batch_size: int = 64) -> dict:
    """The validation record of `model` (left in eval mode):
    "val_score": the best balanced accuracy over the scoring rules (the checkpoint criterion);
    "val_scoring": that rule, e.g. "filip, mean" (the first of SCORINGS on a tie);
    "val_accuracy", "val_per_class": that rule's accuracy and per-class recalls;
    "val_by_scoring": {rule: {"accuracy", "balanced_accuracy"}} for every rule; "val_n", "val_majority"."""
    features = encode_image_files(model, val.image_paths, device, batch_size=batch_size)
    prompt_emb = encode_texts(model, tokenizer, val.prompts, device)
    predictions, by_scoring = {}, {}
    for rule, (similarity, aggregate) in SCORINGS.items():
        scores = prompt_class_scores(features, prompt_emb, val.prompt_class, len(val.class_names),
                                     similarity, aggregate)
        predictions[rule] = scores.argmax(axis=1)
        by_scoring[rule] = {name: float(SCORE_METRICS[name](val.targets, scores))
                            for name in ("accuracy", "balanced_accuracy")}
    best = max(SCORINGS, key=lambda rule: by_scoring[rule]["balanced_accuracy"])  # max keeps the first of ties
    correct = predictions[best] == val.targets
    per_class = {name: float(correct[val.targets == c].mean()) for c, name in enumerate(val.class_names)
                 if (val.targets == c).any()}
    return {"val_score": by_scoring[best]["balanced_accuracy"], "val_scoring": best,
            "val_accuracy": by_scoring[best]["accuracy"], "val_per_class": per_class, "val_by_scoring": by_scoring,
            "val_n": len(val), "val_majority": val.majority_accuracy}
