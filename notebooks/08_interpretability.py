# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. Interpretability: where a sentence looks, and how the images group
#
# EGMA's losses work on the similarity of every image patch with every report sentence,
# $X = s\,P S^\top$ (chapter 3). Read one column of $X$ as a distribution over the patches, the
# **softmax over the $n$ patches** of that sentence's scaled similarities, and it is the model's answer to
# "where in the image is this sentence about?". This chapter draws those **cross-modal attention maps** for
# three models trained in chapter 7 from the same start, with the same data and steps, differing only in the
# loss {cite}`ma2024egma`:
#
# | model | loss | uses patches? | uses gaze? |
# |---|---|---|---|
# | CLIP {cite}`radford2021clip` | global InfoNCE on the pooled image and the mean sentence | no | no |
# | FILIP {cite}`yao2022filip` | fine-grained patch-sentence contrastive | yes | no |
# | EGMA | FILIP + gaze-guided MLCE (EGF) + gaze-guided mapping (EGM) | yes | yes |
#
# and, as references, the chapter-4 pretrained model and the same architecture untrained. A map is scored
# in two ways, over **every finding sentence of the test split** (the paper shows a few pictures; it
# measures none of this):
#
# - against the **true region** of the sentence (the phantom's ground truth, which no reader and no
#   training step ever sees): the *pointing game* of {cite:t}`zhang2018pointing` (does the map's maximum fall inside the region?) and the
#   *map AUROC* (do the map's pixels rank region pixels above the others?);
# - against the **radiologist's gaze** on that sentence (chapter 2's heatmap): Pearson correlation (CC),
#   KL divergence of the gaze from the map (lower is better), and NSS, the map's standardised value at the
#   fixations inside the sentence's gaze window (the saliency-benchmark metrics of {cite:t}`bylinskii2019metrics`).
#
# Beside every score sit a **uniform map** (no localisation at all) and, against the true region, the
# **gaze map itself** (how well the radiologist's eyes localise the finding). The intervals resample
# **studies** (a report's sentences share one image and one reader, so they are not independent items).
#
# The second half looks at the global image embeddings of CheXpert 5x200: a UMAP picture per model,
# coloured by class ({cite:t}`mcinnes2018umap`), and two numbers that do not depend on the picture, the
# **silhouette** of the classes and the **cross-validated kNN accuracy**, with their no-structure
# references.
#
# On real data (MIMIC-Eye without a truth sidecar) every cell runs the same way; the true-region scores and
# outlines are left out, and the chapter says so.

# %% tags=["parameters"]
preset = "ci"
run_dir = "../runs/ci"
data_root = "../data/phantom/ci"
workers = 2               # common chapter parameter (the images here are few and read once)
split = "test"            # studies whose sentences are scored: the pretraining corpus's "test" split
truth_dir = None          # default: <data_root>/phantom_truth when it exists (phantom only)
chexpert_root = None      # default: <data_root>/chexpert/CheXpert-v1.0-small
ablation_seed = 0         # which of chapter 7's seeds to show
n_examples = 3            # studies drawn as figures
knn_k = 5
knn_folds = 5
n_resamples = 1000        # bootstrap resamples per interval
seed = 0

# %%
import time
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import display
from PIL import Image

from egma.batch import load_model_image
from egma.config import get_preset
from egma.datasets import read_chexpert_5x200
from egma.embedding_space import (MAJORITY, SHUFFLED, embedding_differences, embedding_table, item_scores,
                                  umap_coordinates, umap_figure)
from egma.evaluation.encoding import encode_image_tensors
from egma.evaluation.report import estimate_pivot
from egma.gaze.heatmaps import GazeFallbackWarning
from egma.interpretability import (GAZE_REFERENCE, UNIFORM, attention_figure,
                                   localisation_differences, localisation_scores, localisation_table,
                                   study_attention, study_cases)
from egma.model import build_model, build_tokenizer
from egma.train import TRAIN_FOLDER, read_corpus, trained_model
from egma.viz import setup_plotly

setup_plotly()
cfg = get_preset(preset)
data_root, run_dir = Path(data_root), Path(run_dir)
truth_dir = Path(truth_dir) if truth_dir else data_root / "phantom_truth"
chexpert_root = Path(chexpert_root) if chexpert_root else data_root / "chexpert" / "CheXpert-v1.0-small"
device = "cuda" if torch.cuda.is_available() else "cpu"
size = cfg.model.image_size
chapter_started = time.perf_counter()

# %% [markdown]
# ## The models
#
# Chapter 7 leaves each loss's run in `run_dir/ablations/<loss>/seed<k>/`; chapter 4 leaves its model in
# `run_dir/pretrain/`. Each is the checkpoint its run chose on the *validate* split. A missing run is an
# error naming the chapter that makes it: this chapter compares losses, and a comparison with one side
# silently left out would say something else.

# %%
ABLATIONS = {"EGMA": "egma", "FILIP": "filip", "CLIP": "clip"}


def model_folder(loss):
    return run_dir / "ablations" / loss / f"seed{ablation_seed}"


missing = [str(model_folder(loss) / TRAIN_FOLDER) for loss in ABLATIONS.values()
           if not (model_folder(loss) / TRAIN_FOLDER / "best").is_dir()]
if missing:
    raise FileNotFoundError("chapter 8 compares the losses trained by chapter 7 (07_ablations), and these runs are "
                            f"missing: {missing}. Run chapter 7 first: python -m egma.book run --preset {preset} "
                            "--chapters 7")
if not (run_dir / TRAIN_FOLDER / "best").is_dir():
    raise FileNotFoundError(f"{run_dir / TRAIN_FOLDER} holds no trained model; run chapter 4 (04_pretraining) first: "
                            f"python -m egma.book run --preset {preset} --chapters 4")

tokenizer = build_tokenizer(cfg.model)
models, chosen_by = {}, {}
for name, loss in ABLATIONS.items():
    models[name], chosen_by[name] = trained_model(cfg, model_folder(loss))
models["chapter 4"], chosen_by["chapter 4"] = trained_model(cfg, run_dir)
torch.manual_seed(cfg.train.seed)
models["untrained"] = build_model(cfg.model, tokenizer).eval()
models = {name: model.to(device) for name, model in models.items()}
display(pd.DataFrame({name: {"run": str(model_folder(ABLATIONS[name]) if name in ABLATIONS else run_dir),
                             "epoch": record.get("epoch"),
                             "validation zero-shot balanced accuracy": record.get("val_score"),
                             "rule": record.get("val_scoring"),
                             "logit scale s": models[name].logit_scale.item()}
                      for name, record in chosen_by.items()}).T)
state = {name: model.state_dict() for name, model in models.items()}
for a, b in combinations(models, 2):
    if all(torch.equal(state[a][key], state[b][key]) for key in state[a]):
        print(f"{a} and {b} have identical weights (the same configuration and seed chose the same checkpoint): "
              "their rows below coincide")

# %% [markdown]
# The logit scale $s$ matters here: it is the softmax's inverse temperature, so a model with a larger $s$
# draws sharper maps from the same similarities. The untrained model has $s = 1/0.07$ and random features.

# %% [markdown]
# ## The sentences and what they are compared with
#
# The studies of the `split` split of the pretraining corpus (none of them was trained on or used to choose a
# checkpoint). Each report sentence gets the gaze of the radiologists who dictated it (chapter 2: fixations in
# the sentence's gaze window, Gaussian heatmaps in the model frame; a sentence whose window holds no fixation
# falls back to the whole reading, and is flagged) and, on the phantom, its true region: the union of the
# masks the phantom drew it from. A **finding** sentence names a finding ("There is a small left pleural
# effusion."); a **normal** sentence describes anatomy ("The heart size is normal.").

# %%
studies = [s for s in read_corpus(data_root) if s.split == split]
if not studies:
    raise ValueError(f"{data_root}: no study is in the {split!r} split")
studies.sort(key=lambda s: s.study_id)
has_truth = (truth_dir / "truth.json").is_file()
if not has_truth:
    print(f"no ground-truth sidecar at {truth_dir}: this is real data. The attention maps are shown over the "
          "radiologists' gaze and scored against it; the true-region scores (pointing game, map AUROC) and "
          "outlines are left out.")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", GazeFallbackWarning)   # counted per sentence in the table below
    cases = study_cases(studies, cfg.gaze, size, truth_dir if has_truth else None)
sentence_table = pd.DataFrame([{"study": c.study.study_id, "kind": kind, "gaze fallback": bool(c.gaze.fallback[j])
                                if c.gaze is not None else None}
                               for c in cases for j, kind in enumerate(c.kinds())])
display(sentence_table.groupby("kind").agg(sentences=("study", "size"), studies=("study", "nunique"),
                                           gaze_fallbacks=("gaze fallback", "sum")))
print(f"{len(cases)} {split}-split studies, {sum(c.gaze is None for c in cases)} of them without any gaze")

# %% [markdown]
# ## The attention maps
#
# Each model encodes the images and the report sentences once; a study's maps are the softmax over its
# patches of $s\,P S^\top$, one per sentence ($g \times g$ = 7 x 7 here). To draw a map on the radiograph, it
# goes back through the **same geometry** as the model input, inverted: the grid tiles the padded square of
# the image, so it is resized (bilinearly, cell centres at the centres of their tiles) to the padded side and
# the padding is cut off (`egma.interpretability.map_to_image`; the tests check that a patch lands on exactly
# the pixels that the gaze labels assign to it, for a portrait image).

# %%
study_images = torch.stack([load_model_image(c.study.image_path, size) for c in cases])   # read once for all models
attention = {name: study_attention(model, tokenizer, study_images, [c.sentences for c in cases], device)
             for name, model in models.items()}
shown = {name: attention[name] for name in ABLATIONS}

# %% [markdown]
# ### Examples
#
# Drawn deterministically: the first studies (by id) that have finding sentences, and the first all-normal
# one. Slide through a study's sentences; the green line is the true region (phantom only), the first column
# the radiograph, then the radiologist's gaze on that sentence (scaled to its own peak), then each model's map.
# The attention maps share **one colour scale**: clear at the uniform level $1/n$ (a patch getting no more than
# its share), red at the highest attention any model gives on any sentence of the study (the panel titles say
# how many times the uniform level that is). A model whose softmax is nearly flat therefore looks nearly clear,
# rather than being stretched into a confident-looking picture.

# %%
with_findings = [k for k, c in enumerate(cases) if "finding" in c.kinds()]
all_normal = [k for k, c in enumerate(cases) if set(c.kinds()) == {"normal"}]
examples = (with_findings[:max(n_examples - 1, 1)] + all_normal[:1])[:n_examples] if has_truth \
    else list(range(min(n_examples, len(cases))))
for k in examples:
    case = cases[k]
    with Image.open(case.study.image_path) as image:
        pixels = np.asarray(image.convert("L"))
    attention_figure(pixels, case, {name: maps[k] for name, maps in shown.items()},
                     title=f"study {case.study.study_id}").show()

# %% [markdown]
# ## Localisation scores
#
# Every sentence of every `split` study, every model, the references. The table shows the **finding**
# sentences (the ones that point at something); normal sentences follow below. Values are means over
# sentences with a 95 % bootstrap interval over studies; `n` counts the scored sentences. Pointing game and
# AUROC: higher is better, uniform = the region's share of the frame and 0.5. CC and NSS: higher is better,
# uniform = undefined and 0. KL: lower is better.

# %%
scores = localisation_scores(cases, attention, size)
table = localisation_table(scores, np.random.default_rng(seed), n_resamples)
metric_order = [m for m in ("pointing_game", "map_auroc", "cc", "kl", "nss") if m in set(table.metric)]
model_order = [*models, UNIFORM, GAZE_REFERENCE]


def localisation_grid(kind):
    part = table[table.kind == kind].copy()
    part["model"] = pd.Categorical(part.model, [m for m in model_order if m in set(part.model)], ordered=True)
    part["metric"] = pd.Categorical(part.metric, metric_order, ordered=True)
    grid = estimate_pivot(part.sort_values(["model", "metric"]), "model", "metric", scale=1.0, digits=3)
    counts = part.groupby("metric", observed=True)["n"].max()
    return grid.rename(columns=lambda m: f"{m} (n={counts[m]})")


kinds_present = [k for k in ("finding", "normal", "all") if k in set(table.kind)]
for kind in kinds_present:
    display(localisation_grid(kind).style.set_caption(f"{kind} sentences of the {split} split: mean [95 % CI]"))

# %% [markdown]
# ### Differences
#
# Paired over the same sentences, intervals over studies. Each model against the uniform map answers "does
# it localise at all?"; EGMA against FILIP isolates what the gaze terms add to the fine-grained loss, and
# EGMA against CLIP what the whole fine-grained, gaze-guided objective adds. "better" means the 95 % interval
# of the difference excludes zero in the metric's good direction (for KL: below zero).

# %%
comparisons = [(m, UNIFORM) for m in models] + [("EGMA", "FILIP"), ("EGMA", "CLIP"), ("FILIP", "CLIP")]
differences = pd.concat([localisation_differences(scores, a, b, np.random.default_rng(seed), n_resamples)
                         for a, b in comparisons], ignore_index=True)
for kind in kinds_present:
    part = differences[differences.kind == kind]
    display(estimate_pivot(part, "comparison", "metric", scale=1.0, digits=3, note="verdict")
            .style.set_caption(f"{kind} sentences: first minus second [95 % CI] and verdict"))

# %% [markdown]
# ## The image embedding space
#
# The global image embeddings of the CheXpert 5x200 images (on the phantom, `n_per_class_5x200` per class),
# one UMAP layout per model (cosine metric, fixed seed; umap-learn is then single-threaded and repeatable).
# A layout is for the eye only: UMAP keeps neighbourhoods, not distances or cluster sizes. The numbers are
# computed in the embedding space itself:
#
# - **silhouette** (cosine): for each image, how much closer it is to its own class than to the nearest other
#   class, from -1 to 1; the mean over images. Interval: images resampled with their silhouettes fixed.
#   Reference: the same embeddings with the class labels shuffled (the mean and spread over permutations);
# - **kNN accuracy**: each image's class voted by its `knn_k` nearest neighbours (cosine) among the other
#   folds of a stratified, seeded `knn_folds`-fold split. Reference: always answering the majority class.

# %%
chexpert = read_chexpert_5x200(chexpert_root, "chexpert_5x200.csv", n_per_class=cfg.phantom.n_per_class_5x200)
class_names = np.asarray(chexpert.class_names)[chexpert.y]
chexpert_images = torch.stack([load_model_image(path, size) for path in chexpert.paths])
embeddings = {name: encode_image_tensors(model, chexpert_images, device).global_emb.numpy()
              for name, model in models.items()}
layouts = {name: umap_coordinates(x, seed=seed) for name, x in embeddings.items()}
umap_figure(layouts, class_names, title=f"UMAP of the CheXpert 5x200 image embeddings ({len(chexpert)} images)").show()

# %%
items = {name: item_scores(x, chexpert.y, knn_k, knn_folds, seed) for name, x in embeddings.items()}
parts = []
for i, (name, x) in enumerate(embeddings.items()):
    part = embedding_table(x, chexpert.y, items[name], np.random.default_rng(seed), n_resamples)
    part = part[part.predictor != MAJORITY] if i else part
    parts.append(part.assign(predictor=part.predictor.replace({"model": name, SHUFFLED: f"{name}, {SHUFFLED}"})))
embedding_scores = pd.concat(parts, ignore_index=True)
embedding_scores["order"] = embedding_scores.predictor.map(lambda p: (p == MAJORITY, SHUFFLED in p))
display(estimate_pivot(embedding_scores.sort_values("order", kind="stable").drop(columns="order"), "predictor",
                       "metric", scale=1.0, digits=3)
        .style.set_caption(f"CheXpert 5x200 embeddings: silhouette and {knn_k}-NN accuracy [95 % CI]"))
embedding_scores = embedding_scores.drop(columns="order")

# %%
embedding_diff = pd.concat([embedding_differences(items[a], items[b], np.random.default_rng(seed), n_resamples)
                            .assign(comparison=f"{a} - {b}")
                            for a, b in [("EGMA", "FILIP"), ("EGMA", "CLIP"), ("FILIP", "CLIP"),
                                         ("chapter 4", "untrained")]], ignore_index=True)
display(estimate_pivot(embedding_diff, "comparison", "metric", scale=1.0, digits=3, note="verdict")
        .style.set_caption("first minus second, paired over the same images [95 % CI] and verdict"))

# %% [markdown]
# ## What this shows
#
# Computed from the intervals above, not written by hand.

# %%
def interval(row):
    return f"{row.value:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"


headline = "finding" if "finding" in kinds_present else kinds_present[0]
print(f"Localisation, {headline} sentences of the {split} split:")
for comparison, part in differences[differences.kind == headline].groupby("comparison", sort=False):
    print(f"  {comparison}: " + "; ".join(f"{r.metric} {interval(r)} -> {r.verdict}" for r in part.itertuples()))
beats_uniform = {m for m in models if (differences[(differences.kind == headline)
                                                    & (differences.comparison == f"{m} - {UNIFORM}")].verdict
                                       == "better").any()}
print("models whose maps beat the uniform map on at least one metric:", ", ".join(sorted(beats_uniform)) or "none")
if has_truth:
    gaze_rows = table[(table.kind == headline) & (table.model == GAZE_REFERENCE)].set_index("metric")
    print("the radiologist's gaze itself, against the true regions: " + "; ".join(
        f"{m} {interval(gaze_rows.loc[m])}" for m in gaze_rows.index))
print("Embedding space, CheXpert 5x200:")
for r in embedding_diff.itertuples():
    print(f"  {r.comparison}: {r.metric} {interval(r)} -> {r.verdict}")
knn = embedding_scores[embedding_scores.metric == "knn_accuracy"].set_index("predictor")
above = [m for m in models if knn.loc[m, "ci_low"] > knn.loc[MAJORITY, "ci_high"]]
print(f"kNN accuracy above the majority class ({knn.loc[MAJORITY, 'value']:.3f}) with disjoint intervals:",
      ", ".join(above) or "none")

# %% [markdown]
# How to read this, whatever the numbers are: a map can beat the uniform map on the pointing game simply by
# preferring the lung fields, where most findings are, so the map AUROC (which ranks every pixel) and the
# gaze scores are the stricter tests. The gaze reference row bounds what supervision by gaze can teach: the
# phantom's simulated radiologists look at the finding most of the time, but with calibration offsets and
# glances elsewhere, so their own maps do not score perfectly either. On the `ci` preset the image encoder is
# tiny, starts random and is trained for a few minutes, the test split holds only the finding sentences
# counted above, and the intervals are correspondingly wide; the `small` and `paper` presets run the same cells.
#
# Everything is written to `run_dir/interpretability/` for the reproduction scoreboard (chapter 9).

# %%
out = run_dir / "interpretability"
out.mkdir(parents=True, exist_ok=True)
scores.to_csv(out / "localisation_scores.csv", index=False)
table.to_csv(out / "localisation.csv", index=False)
differences.to_csv(out / "localisation_differences.csv", index=False)
embedding_scores.to_csv(out / "embedding_space.csv", index=False)
embedding_diff.to_csv(out / "embedding_differences.csv", index=False)
pd.concat([pd.DataFrame({"model": name, "path": [str(p) for p in chexpert.paths], "class": class_names,
                         "umap_x": xy[:, 0], "umap_y": xy[:, 1]}) for name, xy in layouts.items()]).to_csv(
    out / "umap_layouts.csv", index=False)
print(f"written to {out}; chapter ran in {time.perf_counter() - chapter_started:.1f} s")
