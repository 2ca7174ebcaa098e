"""How the image embeddings of a labelled set arrange themselves: a UMAP picture and two numbers.

- UMAP (umap-learn, cosine metric) draws the embeddings in 2-D for the eye only. With a fixed
  `random_state` umap-learn runs single-threaded and gives the same layout on every run of the same
  versions; the numbers below never use the layout (UMAP distorts distances and densities).
- Silhouette (cosine distance, in the embedding space itself; sklearn's definition, batched here
  so that hundreds of label shufflings cost one matrix product): per image
  (b - a) / max(a, b), a = mean distance to its own class, b = to the nearest other class; the
  score is the mean. Its interval resamples images with their silhouettes held fixed (recomputing
  silhouettes on a resample with duplicates would put zero distances into a). Its no-structure
  reference is the silhouette of the same embeddings with the labels shuffled.
- kNN accuracy: k nearest neighbours (cosine, majority vote) predict each image's class from the
  other folds of a stratified, seeded k-fold split; the out-of-fold correctness per image gives the
  accuracy and its bootstrap interval. Reference: always answering the majority class.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

from egma.evaluation.bootstrap import Estimate, bootstrap_ci, estimate_record, majority_class, percentile_interval
from egma.evaluation.report import verdict

METRIC = "cosine"
SHUFFLED = "shuffled labels"
MAJORITY = "majority"


def umap_coordinates(x, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """(N, 2) seeded UMAP layout of the rows of x (cosine metric)."""
    import umap   # imported here: numba compiles on first import, which only the figure needs

    x = np.asarray(x, dtype=np.float32)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist,
                        metric=METRIC, random_state=seed, n_jobs=1)
    return reducer.fit_transform(x)


def cosine_distances(x) -> np.ndarray:
    """(N, N) 1 - cosine similarity of the rows of x (0 on the diagonal)."""
    unit = np.asarray(x, dtype=float)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    distances = np.clip(1.0 - unit @ unit.T, 0.0, None)
    np.fill_diagonal(distances, 0.0)
    return distances


def silhouette_from_distances(distances: np.ndarray, labels) -> np.ndarray:
    """(..., N) silhouettes for label vectors (..., N) of class codes 0..C-1 over one (N, N) distance
    matrix, so many relabellings go through one batched product. An item alone in its class scores 0."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1
    onehot = (labels[..., None] == np.arange(n_classes)).astype(float)         # (..., N, C)
    sums = distances @ onehot                                                   # (..., N, C) distance to each class
    counts = onehot.sum(axis=-2)[..., None, :]                                  # (..., 1, C)
    own = np.take_along_axis(sums, labels[..., None], axis=-1)[..., 0]
    own_count = np.take_along_axis(np.broadcast_to(counts, sums.shape), labels[..., None], axis=-1)[..., 0]
    a = own / np.maximum(own_count - 1, 1)
    mean_to = np.divide(sums, counts, out=np.full(sums.shape, np.inf), where=counts > 0)   # absent class: inf
    b = np.where(onehot > 0, np.inf, mean_to).min(axis=-1)
    denominator = np.maximum(a, b)
    return np.where((own_count > 1) & (denominator > 0), (b - a) / np.where(denominator > 0, denominator, 1), 0.0)


def silhouette_values(x, y) -> np.ndarray:
    """(N,) cosine silhouette of every item; their mean is the silhouette score."""
    return silhouette_from_distances(cosine_distances(x), pd.factorize(np.asarray(y), sort=True)[0])


def knn_predictions(x, y, k: int = 5, folds: int = 5, seed: int = 0) -> np.ndarray:
    """(N,) out-of-fold kNN class predictions (cosine distance, uniform vote) over a stratified seeded split."""
    y = np.asarray(y)
    smallest = int(np.bincount(pd.factorize(y)[0]).min())
    if not 2 <= folds <= smallest:
        raise ValueError(f"{folds}-fold cross-validation needs 2 <= folds <= the smallest class ({smallest} items)")
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(KNeighborsClassifier(n_neighbors=k, metric=METRIC), np.asarray(x, dtype=float), y,
                             cv=split)


def item_scores(x, y, k: int = 5, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Per item: its silhouette and whether its out-of-fold kNN prediction is right."""
    return pd.DataFrame({"silhouette": silhouette_values(x, y),
                         "knn_correct": (knn_predictions(x, y, k, folds, seed) == np.asarray(y)).astype(float)})


def _mean(values: np.ndarray) -> np.ndarray:
    return np.mean(values, axis=-1)


def shuffled_silhouette(x, y, rng: np.random.Generator, n_permutations: int = 200, level: float = 0.95) -> Estimate:
    """Mean and spread of the silhouette with the labels randomly permuted (no class structure)."""
    codes = pd.factorize(np.asarray(y), sort=True)[0]
    shuffled = rng.permuted(np.broadcast_to(codes, (n_permutations, len(codes))), axis=1)
    values = silhouette_from_distances(cosine_distances(x), shuffled).mean(axis=-1)
    return Estimate(float(values.mean()), *percentile_interval(values, level))


def embedding_table(x, y, items: pd.DataFrame, rng: np.random.Generator, n_resamples: int = 1000,
                    n_permutations: int = 200) -> pd.DataFrame:
    """Tidy estimates (metric, predictor, value, ci_low, ci_high) of one model's item scores and the references."""
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    majority_right = codes == majority_class(codes, len(classes))
    rows = [estimate_record(bootstrap_ci(_mean, items["silhouette"].to_numpy(), rng=rng, n_resamples=n_resamples),
                            metric="silhouette", predictor="model"),
            estimate_record(shuffled_silhouette(x, y, rng, n_permutations), metric="silhouette", predictor=SHUFFLED),
            estimate_record(bootstrap_ci(_mean, items["knn_correct"].to_numpy(), rng=rng, n_resamples=n_resamples),
                            metric="knn_accuracy", predictor="model"),
            estimate_record(bootstrap_ci(_mean, majority_right.astype(float), rng=rng, n_resamples=n_resamples),
                            metric="knn_accuracy", predictor=MAJORITY)]
    return pd.DataFrame(rows)


def embedding_differences(items_a: pd.DataFrame, items_b: pd.DataFrame, rng: np.random.Generator,
                          n_resamples: int = 1000) -> pd.DataFrame:
    """Paired bootstrap of a - b for silhouette and kNN accuracy over the same items, with verdicts."""
    if len(items_a) != len(items_b):
        raise ValueError(f"the two models were scored on {len(items_a)} and {len(items_b)} items")
    rows = []
    for metric, column in (("silhouette", "silhouette"), ("knn_accuracy", "knn_correct")):
        estimate = bootstrap_ci(_mean, items_a[column].to_numpy() - items_b[column].to_numpy(), rng=rng,
                                n_resamples=n_resamples)
        rows.append({**estimate_record(estimate, metric=metric), "verdict": verdict(estimate)})
    return pd.DataFrame(rows)


def umap_figure(layouts: Mapping[str, np.ndarray], labels: Sequence[str], title: str = "",
                cols: int = 3) -> go.Figure:
    """One scatter panel per model (name -> (N, 2) layout), points coloured by class, one shared legend."""
    labels = np.asarray(labels)
    classes = list(dict.fromkeys(labels))
    palette = ("#e6194b", "#4363d8", "#f58231", "#3cb44b", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
    names = list(layouts)
    rows = -(-len(names) // cols)
    fig = make_subplots(rows=rows, cols=min(cols, len(names)), subplot_titles=names, horizontal_spacing=0.03,
                        vertical_spacing=0.08)
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        for j, cls in enumerate(classes):
            at = labels == cls
            fig.add_trace(go.Scattergl(x=layouts[name][at, 0], y=layouts[name][at, 1], mode="markers", name=str(cls),
                                       legendgroup=str(cls), showlegend=i == 0,
                                       marker=dict(size=5, color=palette[j % len(palette)], opacity=0.8),
                                       hovertemplate=f"{cls}<extra>{name}</extra>"), row=r, col=c)
        fig.update_xaxes(showticklabels=False, row=r, col=c)
        fig.update_yaxes(showticklabels=False, row=r, col=c)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title, height=330 * rows + 60, margin=dict(l=10, r=10, t=60, b=10))
    return fig
