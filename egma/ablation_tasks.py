"""The tasks every ablation cell is scored on, each computed from one encoding of the sets per model.

| task | metrics | how |
|---|---|---|
| chexpert_5x200 | accuracy, macro_f1, auroc | zero-shot with the model's scoring rule (below) |
| retrieval_8x200_image_to_text / _text_to_image | precision_at_5 | egma.evaluation.retrieval's rule, the rule's similarity |
| localisation_rsna / localisation_siim | pointing_game, map_auroc | patch-similarity map of the positive class |

The scoring rule (egma.evaluation.zero_shot.SCORINGS: global or FILIP similarity, max or mean over a
class's prompts) is the one the model's checkpoint was chosen with on the validate split (egma.validation).

Localisation: for every positive image (RSNA: pneumonia boxes, SIIM: pneumothorax masks) the map is the
cosine of each patch with the *class embedding* (the normalised mean of the class's prompt embeddings,
prompt ensembling as in CLIP), scored against the region in the model frame (egma.evaluation.localisation);
the AUROC counts only pixels on the image, not its padding. Values are means over the images.

Baselines (they depend only on the items): majority class and uniform random scores for zero-shot and
retrieval (egma.evaluation's tables, with their bootstrap or draw intervals), and uniform random patch maps
for localisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from egma.batch import load_model_image

from egma.config import Preset
from egma.datasets import read_chexpert_5x200, read_chexpert_8x200, read_rsna, read_siim
from egma.datasets.downstream import DownstreamSet
from egma.evaluation.encoding import encode_image_tensors, encode_texts
from egma.evaluation.localisation import boxes_to_mask, map_auroc, pointing_game, region_in_model_frame
from egma.evaluation.metrics import SCORE_METRICS, precision_at_k, relevance
from egma.evaluation.retrieval import retrieval_table
from egma.evaluation.zero_shot import (SCORINGS, classification_table, flatten_prompts, prompt_class_scores,
                                       prompt_similarity, zero_shot_targets)
from egma.gaze.geometry import image_extent_in_model
from egma.prompts import chexpert_5x200_prompts, chexpert_8x200_queries, rsna_prompts, siim_prompts

ZERO_SHOT_METRICS = ("accuracy", "macro_f1", "auroc")
RETRIEVAL_K = 5


@dataclass
class LocalisationSet:
    """Positive images of one finding, their true regions and the image (not padding) pixels, model frame."""
    paths: list[Path]
    regions: np.ndarray     # (N, size, size) bool
    valid: np.ndarray       # (N, size, size) bool
    prompts: list[str]      # the finding's prompts


@dataclass
class AblationSets:
    zero_shot: DownstreamSet
    zero_shot_prompts: dict[str, list[str]]
    retrieval: DownstreamSet
    queries: dict[str, list[str]]
    localisation: dict[str, LocalisationSet]   # task name -> set
    _images: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    def all_paths(self) -> list[Path]:
        """Every image once per set, in a fixed order (the features are sliced back per set)."""
        return [*self.zero_shot.paths, *self.retrieval.paths, *(p for s in self.localisation.values() for p in s.paths)]

    def images(self, size: int) -> torch.Tensor:
        """(N, 1, size, size) model-frame images of all_paths(), read once (one channel; the model takes 3 equal)."""
        if size not in self._images:
            self._images[size] = torch.stack([load_model_image(p, size)[:1] for p in self.all_paths()])
        return self._images[size]


class PromptEncoder:
    """Prompt and query embeddings for many models of one preset.

    With a frozen text tower (`freeze_text`) every model carries the same transformer weights and differs
    only in its projection, so each text's pooled transformer output is computed once and reused; the
    tower's weights are fingerprinted, and a model with other weights starts the memory afresh.
    """

    def __init__(self, tokenizer, batch_size: int = 256):
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self._pooled: dict[str, torch.Tensor] = {}
        self._tower: tuple | None = None

    @staticmethod
    def _fingerprint(model) -> tuple:
        return tuple((p.numel(), float(p.double().sum()), float(p.double().square().sum()))
                     for p in model.text.parameters())

    @torch.no_grad()
    def __call__(self, model, texts: list[str], device) -> torch.Tensor:
        if not model.cfg.freeze_text:
            return encode_texts(model, self.tokenizer, texts, device, self.batch_size)
        fingerprint = self._fingerprint(model)
        if fingerprint != self._tower:
            self._pooled, self._tower = {}, fingerprint
        missing = [t for t in dict.fromkeys(texts) if t not in self._pooled]
        model.eval()
        for i in range(0, len(missing), self.batch_size):
            chunk = missing[i:i + self.batch_size]
            tokens = self.tokenizer(chunk, padding=True, truncation=True, max_length=model.cfg.max_tokens,
                                    return_tensors="pt")
            pooled = model.text(tokens["input_ids"].to(device), tokens["attention_mask"].to(device)).float().cpu()
            self._pooled.update(zip(chunk, pooled))
        pooled = torch.stack([self._pooled[t] for t in texts]).to(device)
        return F.normalize(model.text_proj(pooled), dim=-1).float().cpu()


def _image_shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.height, image.width


def localisation_set(dataset: DownstreamSet, prompts: list[str], size: int) -> LocalisationSet:
    """The positive images of a binary RSNA (boxes) or SIIM (masks) set with their model-frame regions."""
    positive = np.flatnonzero(dataset.labels[:, 0] == 1)
    if positive.size == 0:
        raise ValueError(f"{dataset.name}: no positive image to localise")
    regions, valid = [], []
    for i in positive:
        shape = _image_shape(dataset.paths[i])
        mask = dataset.mask(i) if dataset.rle_table else boxes_to_mask(dataset.boxes(i), shape)
        regions.append(region_in_model_frame(mask, size))
        rows, cols = image_extent_in_model(shape, size)
        valid.append(np.outer(rows, cols) > 0)
    return LocalisationSet([dataset.paths[i] for i in positive], np.stack(regions), np.stack(valid), prompts)


def load_sets(cfg: Preset, data_root: str | Path, chexpert_root: str | Path | None = None,
              rsna_root: str | Path | None = None, siim_root: str | Path | None = None,
              chexpert_8x200_csv: str = "chexpert_8x200.csv") -> AblationSets:
    """The ablation's evaluation sets; the roots default to the phantom layout under data_root."""
    data_root = Path(data_root)
    chexpert_root = Path(chexpert_root) if chexpert_root else data_root / "chexpert" / "CheXpert-v1.0-small"
    rsna = read_rsna(Path(rsna_root) if rsna_root else data_root / "rsna")
    siim = read_siim(Path(siim_root) if siim_root else data_root / "siim")
    size = cfg.model.image_size
    return AblationSets(
        read_chexpert_5x200(chexpert_root, "chexpert_5x200.csv", n_per_class=cfg.phantom.n_per_class_5x200),
        chexpert_5x200_prompts(),
        read_chexpert_8x200(chexpert_root, chexpert_8x200_csv, n_per_class=cfg.phantom.n_per_class_8x200),
        chexpert_8x200_queries(),
        {"localisation_rsna": localisation_set(rsna, rsna_prompts()[rsna.class_names[0]], size),
         "localisation_siim": localisation_set(siim, siim_prompts()[siim.class_names[0]], size)})


def class_embedding(prompt_emb: torch.Tensor) -> np.ndarray:
    """The normalised mean of a class's (normalised) prompt embeddings."""
    mean = prompt_emb.float().mean(dim=0)
    return (mean / mean.norm().clamp_min(1e-12)).numpy()


def localisation_scores(patches: np.ndarray, class_emb: np.ndarray, regions: np.ndarray, valid: np.ndarray) -> dict:
    """Mean pointing game and map AUROC of the patch maps (N, g*g, d) @ class_emb against the regions."""
    grid = int(round(np.sqrt(patches.shape[1])))
    maps = (np.asarray(patches, dtype=float) @ class_emb).reshape(len(patches), grid, grid)
    return {"pointing_game": float(np.mean([pointing_game(m, r) for m, r in zip(maps, regions)])),
            "map_auroc": float(np.nanmean([map_auroc(m, r, v) for m, r, v in zip(maps, regions, valid)]))}


def _rows(task: str, values: dict) -> list[dict]:
    return [{"task": task, "metric": metric, "value": float(value)} for metric, value in values.items()]


@torch.no_grad()
def score_model(model, prompts: PromptEncoder, sets: AblationSets, device: str | torch.device = "cpu",
                scoring: str = "global, max") -> pd.DataFrame:
    """Every task's metrics of one model (columns task, metric, value) with the named scoring rule; its images
    are encoded once."""
    similarity_kind, aggregate = SCORINGS[scoring]
    images = sets.images(model.cfg.image_size)
    features = encode_image_tensors(model, images.expand(-1, 3, -1, -1), device)
    n_zs, n_ret = len(sets.zero_shot), len(sets.retrieval)
    zs = slice(0, n_zs)
    ret = slice(n_zs, n_zs + n_ret)

    texts, prompt_class, names = flatten_prompts(sets.zero_shot_prompts)
    y = zero_shot_targets(sets.zero_shot, names)
    scores = prompt_class_scores(features.rows(zs), prompts(model, texts, device), prompt_class, len(names),
                                 similarity_kind, aggregate)
    rows = _rows("chexpert_5x200", {m: SCORE_METRICS[m](y, scores) for m in ZERO_SHOT_METRICS})

    texts, query_class, names = flatten_prompts(sets.queries)
    image_class = zero_shot_targets(sets.retrieval, names)
    similarity = prompt_similarity(features.rows(ret), prompts(model, texts, device), similarity_kind).numpy()
    rows += _rows("retrieval_8x200_image_to_text", {f"precision_at_{RETRIEVAL_K}": precision_at_k(
        similarity, relevance(image_class, query_class), RETRIEVAL_K).mean()})
    rows += _rows("retrieval_8x200_text_to_image", {f"precision_at_{RETRIEVAL_K}": precision_at_k(
        similarity.T, relevance(query_class, image_class), RETRIEVAL_K).mean()})

    start = n_zs + n_ret
    for task, loc in sets.localisation.items():
        patches = features.patches[start:start + len(loc.paths)].numpy()
        start += len(loc.paths)
        emb = class_embedding(prompts(model, loc.prompts, device))
        rows += _rows(task, localisation_scores(patches, emb, loc.regions, loc.valid))
    return pd.DataFrame(rows)


def baseline_scores(sets: AblationSets, grid: int, rng: np.random.Generator, n_resamples: int = 1000,
                    n_draws: int = 200, map_draws: int = 20) -> pd.DataFrame:
    """Majority-class and uniform-random scores of every task (columns predictor, task, metric, value,
    ci_low, ci_high): bootstrap intervals over items for majority, the spread over draws for random
    (`map_draws` random grid x grid maps per localisation image: each draw upsamples every map)."""
    _, _, names = flatten_prompts(sets.zero_shot_prompts)
    y = zero_shot_targets(sets.zero_shot, names)
    table = classification_table(y, np.zeros((len(y), len(names))), rng, n_resamples, n_draws)
    parts = [table[table.predictor.isin(["majority", "random"]) & table.metric.isin(ZERO_SHOT_METRICS)]
             .assign(task="chexpert_5x200")]

    _, query_class, names = flatten_prompts(sets.queries)
    image_class = zero_shot_targets(sets.retrieval, names)
    table = retrieval_table(np.zeros((len(image_class), len(query_class))), image_class, query_class,
                            (RETRIEVAL_K,), rng, n_resamples, n_draws)
    parts.append(table[table.predictor != "model"].assign(task="retrieval_8x200_" + table.direction,
                                                          metric=f"precision_at_{RETRIEVAL_K}"))

    rows = []
    for task, loc in sets.localisation.items():
        draws = [localisation_scores(rng.random((len(loc.paths), grid * grid, 1)), np.ones(1), loc.regions, loc.valid)
                 for _ in range(map_draws)]
        for metric in ("pointing_game", "map_auroc"):
            values = np.array([d[metric] for d in draws])
            low, high = np.percentile(values, [2.5, 97.5])
            rows.append({"predictor": "random", "task": task, "metric": metric, "value": float(values.mean()),
                         "ci_low": float(low), "ci_high": float(high)})
    parts.append(pd.DataFrame(rows))
    columns = ["predictor", "task", "metric", "value", "ci_low", "ci_high"]
    return pd.concat([p[columns] for p in parts], ignore_index=True)
