"""Image-text retrieval on CheXpert 8x200 (paper_facts.md): Precision@K in both directions.

image->text: each image ranks all queries; relevant = the queries of its class (5 of 40).
text->image: each query ranks all images; relevant = the images of its class.
Per-item precisions are averaged over images (image->text) or queries (text->image); the CIs
resample those items (only 40 queries, so the text->image intervals are wide).
Baselines: "random" = uniform random similarities (value = expected precision, interval = spread
over draws); "majority" = one fixed ranking for every item that puts the most frequent class first.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from egma.datasets.downstream import DownstreamSet
from egma.evaluation.bootstrap import bootstrap_ci, estimate_record, majority_class, random_baseline
from egma.evaluation.encoding import ImageFeatures, encode_image_files, encode_texts
from egma.evaluation.metrics import precision_at_k, relevance, top_k_weights
from egma.evaluation.zero_shot import flatten_prompts, prompt_similarity, zero_shot_targets
from egma.model import EGMAModel, build_tokenizer

DIRECTIONS = ("image_to_text", "text_to_image")


def _mean_items(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).mean(axis=-1)


def _majority_similarity(n_rows: int, column_class: np.ndarray) -> np.ndarray:
    """The same ranking for every row: columns of the most frequent class first, all others tied behind."""
    top = majority_class(column_class, int(column_class.max()) + 1)
    return np.broadcast_to((column_class == top).astype(float), (n_rows, len(column_class)))


def retrieval_table(similarity, image_class, query_class, ks: Sequence[int] = (1, 5, 10),
                    rng: np.random.Generator | None = None, n_resamples: int = 1000, n_draws: int = 200,
                    ties: str = "expected") -> pd.DataFrame:
    """Precision@K of an (images x queries) similarity, both directions, model and baselines.

    Columns: direction, k, predictor, value, ci_low, ci_high.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    similarity = np.asarray(similarity, dtype=float)
    image_class, query_class = np.asarray(image_class), np.asarray(query_class)
    rows = []
    for direction in DIRECTIONS:
        sim = similarity if direction == "image_to_text" else similarity.T
        row_class, column_class = (image_class, query_class) if direction == "image_to_text" \
            else (query_class, image_class)
        relevant = relevance(row_class, column_class)
        majority = _majority_similarity(len(row_class), column_class)
        for k in ks:
            def per_item(s, k=k):
                return precision_at_k(s, np.broadcast_to(relevant, np.shape(s)), k, ties)
            for predictor, scores in (("model", sim), ("majority", majority)):
                estimate = bootstrap_ci(_mean_items, per_item(scores), rng=rng, n_resamples=n_resamples)
                rows.append(estimate_record(estimate, direction=direction, k=k, predictor=predictor))
            estimate = random_baseline(lambda s, f=per_item: _mean_items(f(s)), sim.shape, rng, n_draws)
            rows.append(estimate_record(estimate, direction=direction, k=k, predictor="random"))
    return pd.DataFrame(rows)


@dataclass
class RetrievalResult:
    similarity: np.ndarray       # (N images, Q queries)
    image_class: np.ndarray      # (N,)
    query_class: np.ndarray      # (Q,)
    class_names: tuple[str, ...]
    table: pd.DataFrame          # direction, k, predictor, value, ci_low, ci_high


def evaluate_retrieval(model: EGMAModel, dataset: DownstreamSet, queries: Mapping[str, Sequence[str]],
                       device: torch.device | str, batch_size: int = 64, scoring: str = "global",
                       ks: Sequence[int] = (1, 5, 10), *, tokenizer=None, features: ImageFeatures | None = None,
                       filip_direction: str = "mean", n_resamples: int = 1000, n_draws: int = 200,
                       seed: int = 0, ties: str = "expected", progress: bool = False) -> RetrievalResult:
    """Retrieval between the images of a multi-class `dataset` and `queries` ({class: [queries]})."""
    texts, query_class, class_names = flatten_prompts(queries)
    image_class = zero_shot_targets(dataset, class_names)
    if features is None:
        features = encode_image_files(model, dataset.paths, device, batch_size, progress=progress)
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer(model.cfg)
    query_emb = encode_texts(model, tokenizer, texts, device)
    similarity = prompt_similarity(features, query_emb, scoring, filip_direction).numpy()
    table = retrieval_table(similarity, image_class, query_class, ks, np.random.default_rng(seed), n_resamples,
                            n_draws, ties)
    return RetrievalResult(similarity, image_class, query_class, class_names, table)


def top_k_class_counts(similarity, item_class, row_class, n_classes: int, k: int) -> np.ndarray:
    """Which classes fill the top k: (row classes, item classes), entry [c, j] = how many of the k best places of
    class c's rows hold items of class j, summed over those rows (ties shared as in Precision@K, so counts may
    be fractional). Row c sums to k x its rows, and its diagonal over that sum is the rows' mean Precision@K; a
    column that is large in every row is a hub that most rows retrieve whatever they ask.

    Text->image: `similarity` (queries, images), `item_class` the images' classes, `row_class` the queries'.
    """
    placed = top_k_weights(similarity, k) @ np.eye(n_classes)[np.asarray(item_class)]   # (rows, classes)
    return np.eye(n_classes)[np.asarray(row_class)].T @ placed
