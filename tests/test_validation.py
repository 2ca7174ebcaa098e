"""The checkpoint criterion: every scoring rule on the validate split, the best balanced accuracy wins."""
import numpy as np
import pytest
import torch

import egma.validation as validation
from egma.evaluation.encoding import ImageFeatures
from egma.evaluation.zero_shot import SCORINGS

CLASSES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


def _unit(index: int, dim: int = 8) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(index), dim).float()


@pytest.fixture
def crafted(monkeypatch):
    """Ten images, six of class 0. The global embeddings all point at class 0 (accuracy 0.6, balanced 0.2); the
    patches point at the true class except for five class-0 images sent to class 1 (accuracy 0.5, balanced 0.83)."""
    targets = np.array([0] * 6 + [1, 2, 3, 4])
    patch_class = np.array([0, 1, 1, 1, 1, 1, 1, 2, 3, 4])
    features = ImageFeatures(patches=torch.stack([_unit(c).expand(4, -1) for c in patch_class]),
                             global_emb=_unit(0).expand(len(targets), -1).clone())
    prompt_class = np.repeat(np.arange(5), 2)       # two prompts per class, both on the class's axis
    prompts = [f"prompt {i}" for i in range(len(prompt_class))]
    monkeypatch.setattr(validation, "encode_image_files", lambda model, paths, device, batch_size: features)
    monkeypatch.setattr(validation, "encode_texts", lambda model, tokenizer, texts, device:
                        torch.stack([_unit(int(c)) for c in prompt_class]))
    return validation.ValidationSet([f"image{i}.jpg" for i in range(len(targets))], targets, CLASSES, prompts,
                                    prompt_class)


def test_the_rule_with_the_best_balanced_accuracy_is_chosen_not_the_most_accurate(crafted):
    record = validation.zero_shot_validation(None, None, crafted, "cpu")
    assert set(record["val_by_scoring"]) == set(SCORINGS)
    assert record["val_by_scoring"]["global, max"] == pytest.approx({"accuracy": 0.6, "balanced_accuracy": 0.2})
    assert record["val_by_scoring"]["filip, mean"] == pytest.approx({"accuracy": 0.5,
                                                                     "balanced_accuracy": (1 / 6 + 4) / 5})
    assert record["val_scoring"] == "filip, max"   # the FILIP rules tie; the first in SCORINGS is kept
    assert record["val_score"] == pytest.approx((1 / 6 + 4) / 5) and record["val_accuracy"] == pytest.approx(0.5)
    assert record["val_per_class"] == pytest.approx({"Atelectasis": 1 / 6, "Cardiomegaly": 1.0, "Consolidation": 1.0,
                                                     "Edema": 1.0, "Pleural Effusion": 1.0})
    assert record["val_majority"] == pytest.approx(0.6) and record["val_n"] == 10
