"""egma.ablation_tasks: localisation scores on constructed maps, model-frame regions of a constructed set,
and the prompt encoder's shared text tower (equal to encode_texts, reused across models)."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from egma.ablation_tasks import PromptEncoder, localisation_scores, localisation_set
from egma.config import get_preset
from egma.datasets.downstream import DownstreamSet
from egma.evaluation.encoding import encode_texts
from egma.model import build_model, build_tokenizer


def test_localisation_scores_hit_and_miss():
    regions = np.zeros((2, 8, 8), bool)
    regions[:, :4, :4] = True                               # the top-left patch of a 2 x 2 grid
    patches = np.zeros((2, 4, 2))
    patches[0, 0] = [1, 0]                                  # image 0: the class direction in the top-left patch
    patches[1, 3] = [1, 0]                                  # image 1: in the bottom-right patch
    patches[:, :, 1] = 0.1
    valid = np.ones_like(regions)
    scores = localisation_scores(patches, np.array([1.0, 0.0]), regions, valid)
    assert scores["pointing_game"] == pytest.approx(0.5)
    one = localisation_scores(patches[:1], np.array([1.0, 0.0]), regions[:1], valid[:1])
    assert one == {"pointing_game": 1.0, "map_auroc": pytest.approx(1.0, abs=0.05)}
    assert localisation_scores(patches[1:], np.array([1.0, 0.0]), regions[1:], valid[1:])["map_auroc"] < 0.5


def test_localisation_set_keeps_positives_and_frames_their_regions(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.zeros((10, 20), np.uint8)).save(paths[-1])   # landscape: padded above and below
    table = pd.DataFrame({"path": [str(p) for p in paths], "split": "test", "Pneumonia": [1.0, 0.0, 1.0],
                          "key": ["a", "b", "c"]})
    dataset = DownstreamSet("rsna", table, ("Pneumonia",), False, box_table={"a": [(0, 0, 10, 10)],
                                                                             "c": [(10, 0, 20, 5)]})
    loc = localisation_set(dataset, ["pneumonia"], 20)
    assert [p.name for p in loc.paths] == ["0.png", "2.png"]
    assert loc.regions.shape == (2, 20, 20) and loc.valid.shape == (2, 20, 20)
    assert not loc.valid[:, :5].any() and loc.valid[:, 5:15].all() and not loc.valid[:, 15:].any()
    assert loc.regions[0, 5:15, :10].all() and loc.regions[0].sum() == 100
    assert loc.regions[1, 5:10, 10:].all() and loc.regions[1].sum() == 50
    none = DownstreamSet("rsna", table.assign(Pneumonia=0.0), ("Pneumonia",), False)
    with pytest.raises(ValueError, match="no positive image"):
        localisation_set(none, ["pneumonia"], 20)


def test_prompt_encoder_equals_encode_texts_and_reuses_the_frozen_tower():
    cfg = get_preset("ci").model
    tokenizer = build_tokenizer(cfg)
    texts = ["Pleural effusion is present.", "mild cardiomegaly", "The lungs are clear."]
    encoder = PromptEncoder(tokenizer)
    for seed in (0, 1):                                     # same frozen tower, different projections
        torch.manual_seed(seed)
        model = build_model(cfg, tokenizer).eval()
        assert torch.allclose(encoder(model, texts, "cpu"), encode_texts(model, tokenizer, texts, "cpu"), atol=1e-5)
        assert len(encoder._pooled) == len(texts)
    with torch.no_grad():
        next(model.text.parameters()).add_(1.0)             # another tower: the memory must start afresh
    assert torch.allclose(encoder(model, texts[:1], "cpu"), encode_texts(model, tokenizer, texts[:1], "cpu"), atol=1e-5)
    assert list(encoder._pooled) == texts[:1]
    trainable = build_model(dataclasses.replace(cfg, freeze_text=False), tokenizer).eval()
    assert torch.allclose(encoder(trainable, texts, "cpu"), encode_texts(trainable, tokenizer, texts, "cpu"), atol=1e-6)
