"""The validation score that picks the checkpoint: zero-shot 5-class accuracy on the pretraining corpus's
"validate" split (never a test split).

Images: validate-split studies positive (label 1) for exactly one of the CheXpert 5x200 classes.
Score: cosine of the global image embedding with every prompt of egma.prompts' 5x200 grammar, the max
over each class's prompts (the paper's rule); the predicted class is the argmax.
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
from egma.evaluation.zero_shot import aggregate_by_class, flatten_prompts, global_prompt_scores
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


def zero_shot_accuracy(model: EGMAModel, tokenizer: PreTrainedTokenizerBase, val: ValidationSet,
                       device: torch.device | str, batch_size: int = 64) -> dict:
    """{"val_accuracy", "val_n", "val_majority", "val_per_class"} of `model` (left in eval mode)."""
    images = encode_image_files(model, val.image_paths, device, batch_size=batch_size)
    prompt_emb = encode_texts(model, tokenizer, val.prompts, device)
    scores = aggregate_by_class(global_prompt_scores(images.global_emb, prompt_emb).numpy(), val.prompt_class,
                                len(val.class_names), how="max")
    correct = scores.argmax(axis=1) == val.targets
    per_class = {name: float(correct[val.targets == c].mean()) for c, name in enumerate(val.class_names)
                 if (val.targets == c).any()}
    return {"val_accuracy": float(correct.mean()), "val_n": len(val), "val_majority": val.majority_accuracy,
            "val_per_class": per_class}
