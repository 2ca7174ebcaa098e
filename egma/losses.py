"""EGMA's losses (DESIGN section 3): CLIP, FILIP, MLCE, the EGF gaze term, the EGM mapping, and their sums.

Batches are padded: patches (b, n, d), sentences (b, m_max, d) with `sentence_mask` (b, m_max) True on
real sentences, sentence gaze heatmaps pooled to the patch grid `gaze` (b, m_max, n) with `has_gaze` (b,).
Features are expected L2-normalised; `logit_scale` is s = exp(t), a 0-d tensor.

Every function is vectorised over the batch (no per-study loops). Each runs in float32 even inside a
bf16/fp16 autocast region (float64 inputs stay float64, for gradcheck). The `*_loss` functions are
distributed-aware (see `egma.distributed`): contrastive terms gather the features of all processes with
gradients; in-study terms (MLCE, EGM) are computed locally and only their per-study values are gathered,
so their mean is over the studies with gaze of the GLOBAL batch and every process returns the same loss.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from egma.config import LossConfig
from egma.distributed import gather_cat

# Which terms each training objective sums (DESIGN: ablations switch terms off).
ABLATIONS: dict[str, tuple[str, ...]] = {
    "clip": ("clip",),
    "medclip": ("semantic",),  # the init stage's stand-in for MedCLIP (not an EGMA ablation)
    "filip": ("filip",),
    "mlce": ("mlce",),
    "egf": ("filip", "mlce"),
    "egm": ("egm",),
    "egma": ("filip", "mlce", "egm"),
}
_EPS = 1e-6  # min-max and row-normalisation guard


@dataclass
class EncodedBatch:
    """What the model hands the losses (all features L2-normalised, padded per study)."""
    patches: torch.Tensor          # (b, n, d)
    image_emb: torch.Tensor        # (b, d) pooled image
    sentences: torch.Tensor        # (b, m_max, d), zeros at padding
    sentence_mask: torch.Tensor    # (b, m_max) bool
    text_emb: torch.Tensor         # (b, d) mean of a study's sentences
    logit_scale: torch.Tensor      # 0-d, s = exp(t) clamped


# ---------------------------------------------------------------- precision and masking helpers

def _full_precision(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Half-precision tensors upcast to float32; float32/float64 left as they are."""
    return tuple(t.float() if t.is_floating_point() and t.element_size() < 4 else t for t in tensors)


def _no_autocast(fn):
    """Run `fn` with autocast off on the device of its first tensor argument, so matmuls stay float32."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next(a.device.type for a in args if isinstance(a, torch.Tensor))
        ctx = torch.autocast(device_type=device, enabled=False) if device in ("cpu", "cuda") \
            else contextlib.nullcontext()
        with ctx:
            return fn(*args, **kwargs)
    return wrapper


def _neg(x: torch.Tensor) -> float:
    """A finite 'minus infinity' for x's dtype: exp() of it is 0, and 0 * it stays finite."""
    return torch.finfo(x.dtype).min


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1)


def _check_sentences(sentence_mask: torch.Tensor) -> None:
    empty = (~sentence_mask.any(dim=1)).nonzero().flatten()
    if len(empty):
        raise ValueError(f"studies {empty.tolist()} have no sentences; every study needs at least one")


# ---------------------------------------------------------------- similarities and CLIP / FILIP

def similarity(patches: torch.Tensor, sentences: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """X[k, l] = s * P_k S_l^T for every image k and report l: (b_img, b_txt, n, m).

    One (b_img n) x (b_txt m) matrix product; the result is a (k, n, l, m)-contiguous view.
    """
    (b_img, n, d), (b_txt, m, _) = patches.shape, sentences.shape
    x = patches.reshape(b_img * n, d) @ (logit_scale * sentences).reshape(b_txt * m, d).T
    return x.view(b_img, n, b_txt, m).transpose(1, 2)


def in_study_similarity(patches: torch.Tensor, sentences: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """X[k, k] = s * P_k S_k^T of each study with its own report: (b, n, m)."""
    return logit_scale * torch.einsum("knd,kmd->knm", patches, sentences)


def _symmetric_ce(logits_img_rows: torch.Tensor, logits_txt_rows: torch.Tensor) -> torch.Tensor:
    target = torch.arange(len(logits_img_rows), device=logits_img_rows.device)
    return 0.5 * (F.cross_entropy(logits_img_rows, target) + F.cross_entropy(logits_txt_rows, target))


@_no_autocast
def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Global InfoNCE of pooled images against mean sentence embeddings, both directions averaged."""
    image_emb, text_emb, logit_scale = _full_precision(gather_cat(image_emb), gather_cat(text_emb), logit_scale)
    logits = logit_scale * image_emb @ text_emb.T
    return _symmetric_ce(logits, logits.T)


def label_targets(labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """MedCLIP's soft targets (b, b): row k is the softmax over the batch of cos(labels_k, labels_l) / temperature.

    `labels` (b, c) are 0/1 finding vectors; a study with none is similar only to itself (cosine 1 on the
    diagonal), so it falls back to CLIP's one-hot target."""
    unit = F.normalize(labels, dim=1)
    cosine = unit @ unit.T
    cosine = cosine.masked_fill(torch.eye(len(labels), dtype=torch.bool, device=labels.device), 1.0)
    return (cosine / temperature).softmax(dim=1)


@_no_autocast
def semantic_matching_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, labels: torch.Tensor,
                           logit_scale: torch.Tensor, temperature: float) -> torch.Tensor:
    """MedCLIP's semantic matching: image-text logits against label_targets instead of the identity, both
    directions averaged. Reports that state the same findings are positives of each other, so the global
    embedding learns findings rather than which report came with which image."""
    image_emb, text_emb, labels, logit_scale = _full_precision(gather_cat(image_emb), gather_cat(text_emb),
                                                               gather_cat(labels.to(image_emb.dtype)), logit_scale)
    logits = logit_scale * image_emb @ text_emb.T
    targets = label_targets(labels, temperature)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))  # cosine is symmetric


@_no_autocast
def filip_scores(patches: torch.Tensor, sentences: torch.Tensor, sentence_mask: torch.Tensor,
                 logit_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FILIP instance scores z_I, z_T (b_img, b_txt) and the token similarities X (b_img, b_txt, n, m).

    z_I(k, l) = mean over patches of the max over report l's real sentences of X[k, l];
    z_T(k, l) = mean over report l's real sentences of the max over patches of X[k, l].
    """
    _check_sentences(sentence_mask)
    patches, sentences, logit_scale = _full_precision(patches, sentences, logit_scale)
    x = similarity(patches, sentences, logit_scale)
    by_patch = x.transpose(1, 2)  # (k, n, l, m), the memory order: reductions over m and n stay cheap
    z_image = by_patch.masked_fill(~sentence_mask, _neg(x)).amax(dim=-1).mean(dim=1)
    z_text = _masked_mean(by_patch.amax(dim=1), sentence_mask, dim=-1)
    return z_image, z_text, x


@_no_autocast
def filip_loss(patches: torch.Tensor, sentences: torch.Tensor, sentence_mask: torch.Tensor,
               logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of CE(z_I, rows = images) and CE(z_T^T, rows = texts), over the global batch."""
    z_image, z_text, _ = filip_scores(gather_cat(patches), gather_cat(sentences), gather_cat(sentence_mask, False),
                                      logit_scale)
    return _symmetric_ce(z_image, z_text.T)


# ---------------------------------------------------------------- MLCE and the EGF gaze term

@_no_autocast
def mlce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-label categorical cross-entropy (Su 2020) of each row of the last dim: shape logits.shape[:-1].

    log(1 + sum_{y=0} exp(x)) + log(1 + sum_{y=1} exp(-x)), over the entries where `mask` is True.
    """
    (logits,) = _full_precision(logits)
    labels = labels.bool()
    valid = torch.ones_like(labels) if mask is None else mask.expand_as(labels)
    negatives = logits.masked_fill(~(valid & ~labels), _neg(logits))
    positives = (-logits).masked_fill(~(valid & labels), _neg(logits))
    zero = logits.new_zeros(logits.shape[:-1] + (1,))
    return (torch.logsumexp(torch.cat([zero, negatives], dim=-1), dim=-1)
            + torch.logsumexp(torch.cat([zero, positives], dim=-1), dim=-1))


def gaze_labels(gaze: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """GL = GS > threshold, (b, m, n) bool."""
    return gaze > threshold


@_no_autocast
def gaze_mlce_per_study(x_in_study: torch.Tensor, labels: torch.Tensor, sentence_mask: torch.Tensor,
                        direction_weight: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EGF gaze term of each study: (term (b,), sentence-row MLCE (b, m), patch-row MLCE (b, n)).

    term = a * mean over real sentences of MLCE(X_kk^T row, GL row)            (sentences over patches)
         + (1 - a) * mean over patches of MLCE(X_kk row, GL^T row, real sentences)  (patches over sentences)
    """
    (x_in_study,) = _full_precision(x_in_study)
    sentence_rows = mlce(x_in_study.transpose(1, 2), labels)
    patch_rows = mlce(x_in_study, labels.transpose(1, 2), sentence_mask[:, None, :])
    term = (direction_weight * _masked_mean(sentence_rows, sentence_mask, dim=1)
            + (1 - direction_weight) * patch_rows.mean(dim=1))
    return term, sentence_rows, patch_rows


def _mean_over_studies(per_study: torch.Tensor, include: torch.Tensor) -> torch.Tensor:
    """Mean of per-study values over the included studies of the global batch (0 when there are none)."""
    values, keep = gather_cat(per_study), gather_cat(include, False)
    return torch.where(keep, values, 0).sum() / keep.sum().clamp_min(1)


@_no_autocast
def mlce_loss(patches: torch.Tensor, sentences: torch.Tensor, sentence_mask: torch.Tensor, gaze: torch.Tensor,
              has_gaze: torch.Tensor, logit_scale: torch.Tensor, direction_weight: float = 0.5,
              label_threshold: float = 0.0) -> torch.Tensor:
    """The EGF gaze term alone ("MLCE only"), averaged over the studies that have gaze."""
    _check_sentences(sentence_mask)
    patches, sentences, logit_scale = _full_precision(patches, sentences, logit_scale)
    x = in_study_similarity(patches, sentences, logit_scale)
    term, _, _ = gaze_mlce_per_study(x, gaze_labels(gaze, label_threshold), sentence_mask, direction_weight)
    return _mean_over_studies(term, has_gaze)


def egf_loss(patches: torch.Tensor, sentences: torch.Tensor, sentence_mask: torch.Tensor, gaze: torch.Tensor,
             has_gaze: torch.Tensor, logit_scale: torch.Tensor, direction_weight: float = 0.5,
             label_threshold: float = 0.0) -> torch.Tensor:
    """EGF = FILIP contrastive term + gaze MLCE term."""
    return (filip_loss(patches, sentences, sentence_mask, logit_scale)
            + mlce_loss(patches, sentences, sentence_mask, gaze, has_gaze, logit_scale, direction_weight,
                        label_threshold))


# ---------------------------------------------------------------- EGM: eye-gaze guided cross-modality mapping

def _minmax_rows(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    low = x.masked_fill(~valid, torch.finfo(x.dtype).max).amin(dim=-1, keepdim=True)
    high = x.masked_fill(~valid, _neg(x)).amax(dim=-1, keepdim=True)
    return ((x - low) / (high - low + _EPS)).masked_fill(~valid, 0)


def _rownorm(w: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    w = (w + _EPS).masked_fill(~valid, 0)
    return w / w.sum(dim=-1, keepdim=True)


@_no_autocast
def egm_weights(x_in_study: torch.Tensor, gaze: torch.Tensor, sentence_mask: torch.Tensor,
                sparsity: float = 2 / 7) -> tuple[torch.Tensor, torch.Tensor]:
    """EGM mapping weights W_T2I (b, m, n; sentences over patches) and W_I2T (b, n, m; patches over sentences).

    W = rownorm(omega(minmax_rows(X)) + GS), omega zeroing entries below `sparsity`; padded sentences get
    zero rows (W_T2I) and zero columns (W_I2T). Pass gaze = 0 for a study without gaze.
    """
    x_in_study, gaze = _full_precision(x_in_study, gaze)
    all_patches = torch.ones_like(gaze, dtype=torch.bool)
    real_cols = sentence_mask[:, None, :].expand_as(x_in_study)

    def omega(w: torch.Tensor) -> torch.Tensor:
        return torch.where(w >= sparsity, w, 0)

    text_to_image = _rownorm(omega(_minmax_rows(x_in_study.transpose(1, 2), all_patches)) + gaze, all_patches)
    text_to_image = text_to_image.masked_fill(~sentence_mask[:, :, None], 0)
    image_to_text = _rownorm(omega(_minmax_rows(x_in_study, real_cols)) + gaze.transpose(1, 2), real_cols)
    return text_to_image, image_to_text


def _in_study_ce(queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor,
                 logit_scale: torch.Tensor) -> torch.Tensor:
    """Row-wise CE of s * normalise(query_i) . key_j over real keys, target j = i: (b, rows), 0 on padded rows."""
    logits = logit_scale * F.normalize(queries, dim=-1) @ keys.transpose(1, 2)
    logits = logits.masked_fill(~key_mask[:, None, :], _neg(logits))
    ce = torch.logsumexp(logits, dim=-1) - logits.diagonal(dim1=1, dim2=2)
    return ce.masked_fill(~key_mask, 0)


@_no_autocast
def egm_per_study(patches: torch.Tensor, sentences: torch.Tensor, sentence_mask: torch.Tensor, gaze: torch.Tensor,
                  logit_scale: torch.Tensor, sparsity: float = 2 / 7) -> torch.Tensor:
    """EGM loss of each study (b,).

    Mapped sentences S~ = W_T2I P and mapped patches P~ = W_I2T S are contrasted, inside the study, with
    the real sentences (m x m) and patches (n x n): logits s * normalise(mapped) . real, target = own index.
    The study's value is the mean of the text-side and image-side CE. A one-sentence report has no text-side
    negative (the CE over one candidate is identically 0 with no gradient), so its text side is left out and
    its value is the image-side CE alone (the released code used an MSE here, on an incomparable scale).
    """
    patches, sentences, gaze, logit_scale = _full_precision(patches, sentences, gaze, logit_scale)
    x = in_study_similarity(patches, sentences, logit_scale)
    text_to_image, image_to_text = egm_weights(x, gaze, sentence_mask, sparsity)
    all_patches = torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)
    text_side = _masked_mean(_in_study_ce(text_to_image @ patches, sentences, sentence_mask, logit_scale),
                             sentence_mask, dim=1)
    image_side = _in_study_ce(image_to_text @ sentences, patches, all_patches, logit_scale).mean(dim=1)
    several_sentences = sentence_mask.sum(dim=1) >= 2
    return torch.where(several_sentences, 0.5 * (text_side + image_side), image_side)


@_no_autocast
def egm_loss(patches: torch.Tensor, sentences: torch.Tensor, sentence_mask: torch.Tensor, gaze: torch.Tensor,
             has_gaze: torch.Tensor, logit_scale: torch.Tensor, sparsity: float = 2 / 7,
             include_without_gaze: bool = False) -> torch.Tensor:
    """EGM averaged over the studies with gaze (or over all studies, GS dropped where absent)."""
    _check_sentences(sentence_mask)
    gaze = gaze * has_gaze[:, None, None].to(gaze.dtype)
    per_study = egm_per_study(patches, sentences, sentence_mask, gaze, logit_scale, sparsity)
    include = torch.ones_like(has_gaze) if include_without_gaze else has_gaze
    return _mean_over_studies(per_study, include)


# ---------------------------------------------------------------- the training objective

class LossBundle:
    """The sum of the terms of one objective (ABLATIONS[cfg.name]); returns every term and the total."""

    def __init__(self, cfg: LossConfig, label_threshold: float = 0.0):
        if cfg.name not in ABLATIONS:
            raise KeyError(f"unknown loss {cfg.name!r}; choose one of {sorted(ABLATIONS)}")
        self.cfg, self.terms, self.label_threshold = cfg, ABLATIONS[cfg.name], label_threshold

    def __call__(self, batch: EncodedBatch, gaze: torch.Tensor, has_gaze: torch.Tensor,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        b, s, cfg = batch, batch.logit_scale, self.cfg
        if "semantic" in self.terms and labels is None:
            raise ValueError(f"the {cfg.name!r} objective needs the studies' labels (StudyBatch.labels)")
        compute = {
            "clip": lambda: clip_loss(b.image_emb, b.text_emb, s),
            "semantic": lambda: semantic_matching_loss(b.image_emb, b.text_emb, labels, s, cfg.label_temperature),
            "filip": lambda: filip_loss(b.patches, b.sentences, b.sentence_mask, s),
            "mlce": lambda: mlce_loss(b.patches, b.sentences, b.sentence_mask, gaze, has_gaze, s,
                                      cfg.gaze_direction_weight, self.label_threshold),
            "egm": lambda: egm_loss(b.patches, b.sentences, b.sentence_mask, gaze, has_gaze, s,
                                    cfg.egm_sparsity, cfg.egm_without_gaze),
        }
        values = {name: compute[name]() for name in self.terms}
        values["total"] = sum(values.values())
        return values
