"""Classification and retrieval metrics, vectorised over any leading (e.g. bootstrap) axes.

Conventions (each matches scikit-learn where it has the metric, and the tests check that):
- Labels are class indices 0..C-1; the last axis is the items (n). Leading axes are independent
  evaluations, so a (B, n) array of resampled labels gives B values in one call.
- macro-F1 averages the classes that occur in y_true or y_pred; a class with neither has no F1
  (NaN, sklearn's zero_division=np.nan), so a bootstrap resample that happens to miss a class is
  not punished for it. A class that occurs but is never predicted correctly has F1 0.
- Balanced accuracy is the mean recall over the classes present in y_true (sklearn's rule).
- AUROC is the Mann-Whitney statistic with tied scores counted one half (average ranks), as
  sklearn's roc_auc_score. A class with no positives (or no negatives) has no AUROC: it is NaN
  and left out of the macro mean; the macro mean is NaN only when every class is.
- Precision@K with tied similarities: ties="expected" (default) gives the expected precision
  when ties are broken uniformly at random (so a constant scorer scores exactly the chance
  level); ties="index" breaks them by item index (a stable sort), as a plain argsort would.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _as_labels(y: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must hold class indices in [0, {n_classes}); got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def nan_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over the non-NaN entries; NaN (without a warning) where all are NaN."""
    finite = ~np.isnan(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(..., C, C) counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.broadcast_arrays(_as_labels(y_true, n_classes, "y_true"),
                                         _as_labels(y_pred, n_classes, "y_pred"))
    lead = y_true.shape[:-1]
    batch = np.arange(int(np.prod(lead, dtype=np.int64))).reshape(lead + (1,)) * n_classes * n_classes
    cells = (batch + y_true * n_classes + y_pred).ravel()
    counts = np.bincount(cells, minlength=max(1, int(np.prod(lead, dtype=np.int64))) * n_classes * n_classes)
    return counts.reshape(lead + (n_classes, n_classes))


def accuracy(y_true, y_pred) -> np.ndarray:
    return (np.asarray(y_true) == np.asarray(y_pred)).mean(axis=-1)


def per_class_f1(y_true, y_pred, n_classes: int) -> np.ndarray:
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    denominator = cm.sum(axis=-1) + cm.sum(axis=-2)   # 2 tp + fn + fp
    return np.divide(2 * tp, denominator, out=np.full(tp.shape, np.nan), where=denominator > 0)


def macro_f1(y_true, y_pred, n_classes: int) -> np.ndarray:
    return nan_mean(per_class_f1(y_true, y_pred, n_classes))


def balanced_accuracy(y_true, y_pred, n_classes: int) -> np.ndarray:
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=-1)
    recall = np.divide(np.diagonal(cm, axis1=-2, axis2=-1), support, out=np.zeros(support.shape), where=support > 0)
    return (recall * (support > 0)).sum(axis=-1) / (support > 0).sum(axis=-1)


def binary_auroc(positive, scores) -> np.ndarray:
    """AUROC of `scores` (..., n) for the boolean `positive` (..., n); NaN without positives or negatives."""
    positive = np.asarray(positive, dtype=bool)
    ranks = rankdata(np.asarray(scores, dtype=float), axis=-1)   # average ranks: ties count one half
    n_pos = positive.sum(axis=-1)
    n_neg = positive.shape[-1] - n_pos
    u = (ranks * positive).sum(axis=-1) - n_pos * (n_pos + 1) / 2
    defined = (n_pos > 0) & (n_neg > 0)
    return np.divide(u, n_pos * n_neg, out=np.full(u.shape, np.nan), where=defined)


def per_class_auroc(y_true, scores) -> np.ndarray:
    """One-vs-rest AUROC of each class: y_true (..., n) indices, scores (..., n, C) -> (..., C)."""
    scores = np.asarray(scores, dtype=float)
    n_classes = scores.shape[-1]
    y_true = _as_labels(y_true, n_classes, "y_true")
    positive = y_true[..., None, :] == np.arange(n_classes)[:, None]   # (..., C, n)
    return binary_auroc(positive, np.swapaxes(scores, -1, -2))


def macro_auroc(y_true, scores) -> np.ndarray:
    """Mean one-vs-rest AUROC over the classes that have positives and negatives."""
    return nan_mean(per_class_auroc(y_true, scores))


# ---------------------------------------------------------------- retrieval

def relevance(query_class, item_class) -> np.ndarray:
    """(Q, I) True where query q and item i share a class."""
    return np.asarray(query_class)[:, None] == np.asarray(item_class)[None, :]


def precision_at_k(similarity, relevant, k: int, ties: str = "expected") -> np.ndarray:
    """Per-query precision of the k most similar items: similarity and relevant (Q, I) -> (Q,).

    Image->text: rows are images, columns the queries. Text->image: rows are queries, columns images.
    """
    similarity, relevant = np.asarray(similarity, dtype=float), np.asarray(relevant, dtype=bool)
    if similarity.shape != relevant.shape:
        raise ValueError(f"similarity {similarity.shape} and relevant {relevant.shape} differ in shape")
    if not 1 <= k <= similarity.shape[-1]:
        raise ValueError(f"k={k} must be in [1, {similarity.shape[-1]}] (the number of ranked items)")
    if ties == "index":
        top = np.argsort(-similarity, axis=-1, kind="stable")[..., :k]
        return np.take_along_axis(relevant, top, axis=-1).mean(axis=-1)
    if ties != "expected":
        raise ValueError(f"ties must be 'expected' or 'index', got {ties!r}")
    return (top_k_weights(similarity, k) * relevant).sum(axis=-1) / k


def top_k_weights(similarity, k: int) -> np.ndarray:
    """(Q, I) -> (Q, I): each item's chance of being among its row's k most similar when ties are ordered at
    random (1 above the k-th value, 0 below it, the free places shared evenly among items tied with it)."""
    similarity = np.asarray(similarity, dtype=float)
    kth = -np.partition(-similarity, k - 1, axis=-1)[..., k - 1:k]   # the k-th largest value per row
    above, tied = similarity > kth, similarity == kth
    free = k - above.sum(axis=-1, keepdims=True)
    return above + tied * (free / tied.sum(axis=-1, keepdims=True))


# ---------------------------------------------------------------- metrics of class scores

def _binary_or_macro_auroc(y_true, scores) -> np.ndarray:
    """Two classes: AUROC of s1 - s0 for class 1 (the score argmax decides on); more: macro one-vs-rest."""
    scores = np.asarray(scores, dtype=float)
    if scores.shape[-1] == 2:
        return binary_auroc(np.asarray(y_true) == 1, scores[..., 1] - scores[..., 0])
    return macro_auroc(y_true, scores)


# name -> metric(y_true (..., n), scores (..., n, C)); the predicted class is the argmax (ties: lowest index).
SCORE_METRICS = {
    "accuracy": lambda y, s: accuracy(y, np.argmax(s, axis=-1)),
    "macro_f1": lambda y, s: macro_f1(y, np.argmax(s, axis=-1), np.shape(s)[-1]),
    "balanced_accuracy": lambda y, s: balanced_accuracy(y, np.argmax(s, axis=-1), np.shape(s)[-1]),
    "auroc": _binary_or_macro_auroc,
}
