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
# # 6. Supervised transfer: linear probing
#
# Zero-shot classification (chapter 5) asks whether the image and text spaces line up. A **linear probe**
# asks something narrower and often more useful: do the *image features* alone already separate the
# findings, so that a linear classifier trained on a few labelled images does well? The image encoder is
# frozen; only a logistic regression on its pooled features is trained, with 1 %, 10 % or 100 % of the
# training labels, as in the paper {cite}`ma2024egma` (after GLoRIA and MGCA), on three sets:
#
# | set | train | test | labels |
# |---|---|---|---|
# | CheXpert | `train.csv` | `valid.csv` | the five competition findings (multi-label, one probe per finding) |
# | RSNA Pneumonia | the 70 % train split | the 15 % test split | pneumonia |
# | SIIM-ACR | the 70 % train split | the 15 % test split | pneumothorax |
#
# The score is the AUROC on the test split (macro over the findings for CheXpert). As in chapter 5, the
# **pretrained** model of chapter 4 (chosen on the pretraining corpus's validate split, never on these test
# sets) is compared with the **same architecture untrained** (random weights, seed fixed). A linear probe on
# random convolutional or transformer features is a real baseline, not a strawman: random features of a
# wide network separate simple image statistics surprisingly well. The AUROC of a constant or a random score
# is 0.5, which is the chance line in the figures.
#
# The defaults read the phantom sets; set `chexpert_root`, `rsna_root` and `siim_root` for real data.

# %% tags=["parameters"]
preset = "ci"
run_dir = "../runs/ci"
data_root = "../data/phantom/ci"
workers = 2
chexpert_root = None      # default: <data_root>/chexpert/CheXpert-v1.0-small
rsna_root = None          # default: <data_root>/rsna
siim_root = None          # default: <data_root>/siim
fractions = [0.01, 0.1, 1.0]   # shares of the training labels
seeds = [0, 1, 2, 3, 4]        # one seeded label subset each
probe_C = 1.0             # inverse L2 strength of the logistic regression (fixed: nothing is tuned on a test set)
uncertain = 0.0           # CheXpert's uncertain (-1) labels: 0 ("U-Zeros") or 1 ("U-Ones")
n_resamples = 1000        # bootstrap resamples per interval

# %%
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
from IPython.display import display

from egma.config import get_preset
from egma.datasets import read_chexpert, read_rsna, read_siim
from egma.datasets.downstream import CHEXPERT_5X200
from egma.evaluation.encoding import encode_image_files
from egma.evaluation.linear_probe import linear_probe, probe_labels
from egma.evaluation.report import estimate_pivot, estimate_text, probe_differences
from egma.model import build_model, build_tokenizer
from egma.train import trained_model
from egma.viz import estimate_curves_figure, setup_plotly

setup_plotly()
cfg = get_preset(preset)
data_root, run_dir = Path(data_root), Path(run_dir)
chexpert_root = Path(chexpert_root) if chexpert_root else data_root / "chexpert" / "CheXpert-v1.0-small"
rsna_root = Path(rsna_root) if rsna_root else data_root / "rsna"
siim_root = Path(siim_root) if siim_root else data_root / "siim"
device = "cuda" if torch.cuda.is_available() else "cpu"
chapter_started = time.perf_counter()

# %% [markdown]
# ## Splits and labels
#
# CheXpert's labels are 1, 0, -1 (uncertain) or blank; blank counts as negative and uncertain as `uncertain`
# (0 by default, the "U-Zeros" policy). The probe uses the five competition findings, the usual choice for
# CheXpert classification. RSNA and SIIM are split 70/15/15 by a seeded permutation of the images; the
# validation split is not used, because the probe has no hyper-parameter to choose (`probe_C` is fixed).

# %%
rsna, siim = read_rsna(rsna_root), read_siim(siim_root)
splits = {
    "CheXpert": tuple(replace(read_chexpert(chexpert_root, csv), class_names=CHEXPERT_5X200)
                      for csv in ("train.csv", "valid.csv")),
    "RSNA": (rsna.split("train"), rsna.split("test")),
    "SIIM": (siim.split("train"), siim.split("test")),
}
labels = {name: (probe_labels(train, uncertain), probe_labels(test, uncertain))
          for name, (train, test) in splits.items()}
positives = pd.DataFrame({f"{name} {part}": pd.Series(y.sum(axis=0).astype(int), index=splits[name][0].class_names)
                          for name, pair in labels.items() for part, y in zip(("train", "test"), pair)}).T
positives["images"] = [len(y) for pair in labels.values() for y in pair]
display(positives.astype("Int64").style.format(na_rep="").set_caption("positives per label and images per split"))

# %% [markdown]
# ## Frozen features
#
# The probe reads the image encoder's pooled output (the mean of the last stage's patch tokens, before the
# projection into the shared space), as the paper's linear classification does. Every split is encoded once
# per model.

# %%
tokenizer = build_tokenizer(cfg.model)
trained, chosen_by = trained_model(cfg, run_dir)
torch.manual_seed(cfg.train.seed)
models = {"trained": trained.to(device), "untrained": build_model(cfg.model, tokenizer).eval().to(device)}
print(f"trained: epoch {chosen_by.get('epoch')} of chapter 4 (validation zero-shot balanced accuracy "
      f"{chosen_by['val_score']:.1%} with the rule '{chosen_by['val_scoring']}' on {chosen_by['val_n']} "
      "validate-split images)")

features, seconds = {}, {}
for model_name, model in models.items():
    for set_name, pair in splits.items():
        started = time.perf_counter()
        features[model_name, set_name] = tuple(
            encode_image_files(model, split.paths, device, backbone=True, num_workers=workers).backbone.numpy()
            for split in pair)
        seconds[model_name, set_name] = time.perf_counter() - started
print(f"feature width {features['trained', 'RSNA'][0].shape[1]}")
display(pd.Series(seconds, name="encoding time, s").unstack(0).round(2))

# %% [markdown]
# ## The probes
#
# For every set, model, fraction and seed: standardise the features on the training subset and fit an
# L2-regularised logistic regression (scikit-learn, lbfgs), one binary probe per CheXpert finding. The table
# gives the mean AUROC over the seeds, its 95 % bootstrap interval over the test images (of the seed-averaged
# AUROC, all seeds scored on the same resampled images) and, after ±, the standard deviation over seeds.

# %%
probes = {(m, s): linear_probe(features[m, s][0], labels[s][0], features[m, s][1], labels[s][1],
                               multiclass=False, fractions=fractions, seeds=seeds, C=probe_C, n_resamples=n_resamples)
          for m in models for s in splits}
probe_table = pd.concat([result.summary.assign(model=m, set=s) for (m, s), result in probes.items()],
                        ignore_index=True).rename(columns={"mean": "value"})
probe_table["labels"] = probe_table["fraction"].map(lambda f: f"{f:.0%}")
cells = estimate_pivot(probe_table, ["set", "labels"], "model")
seed_sd = probe_table.pivot(index=["set", "labels"], columns="model", values="std").loc[cells.index]
display((cells + " ± " + (100 * seed_sd).round(1).astype(str)).style.set_caption(
    "linear-probe AUROC, % [95 % CI] ± seed SD (chance 50)"))

# %%
estimate_curves_figure(probe_table, x="fraction", colour="model", facet="set", log_x=True, chance=0.5,
                       x_title="share of training labels", y_title="test AUROC",
                       title="linear-probe AUROC against the share of training labels (bands: 95 % CI)") \
    .update_xaxes(tickvals=fractions, tickformat=".0%").show()

# %% [markdown]
# ### Trained minus untrained
#
# Both models are probed on the same label subsets and scored on the same resampled test images, so the
# interval below is that of the difference itself.

# %%
probe_diff = pd.concat([probe_differences(features["trained", s], features["untrained", s], *labels[s],
                                          multiclass=False, fractions=fractions, seeds=seeds, C=probe_C,
                                          n_resamples=n_resamples).assign(set=s) for s in splits], ignore_index=True)
probe_diff["labels"] = probe_diff["fraction"].map(lambda f: f"{f:.0%}")
display(estimate_pivot(probe_diff, "set", "labels", note="verdict").style.set_caption(
    "AUROC of the trained minus the untrained model's probe, percentage points [95 % paired CI] and verdict"))

# %% [markdown]
# ### Every seed
#
# A label subset of a fraction $f$ is a seeded draw of $\lceil fN \rceil$ training images that holds at least
# one positive and one negative of every label (so that every probe can be fitted); with 1 % of a small
# training set that guarantee is most of the subset. The spread over the seeds' subsets is largest there.

# %%
runs = pd.concat([result.runs.assign(model=m, set=s) for (m, s), result in probes.items()], ignore_index=True)
runs["labels"] = runs["fraction"].map(lambda f: f"{f:.0%}")
per_seed = runs.pivot_table(index=["set", "labels"], columns=["model", "seed"], values="auroc", sort=False).mul(100)
sizes = runs.groupby(["set", "labels"], sort=False)["n_train"].agg(lambda n: f"{n.min()}-{n.max()}" if n.min() < n.max()
                                                                     else str(n.min()))
per_seed.insert(0, ("training images", ""), sizes)
display(per_seed.round(1).style.format(precision=1).set_caption(
    "AUROC (%) of every seed's probe, and the training images in its subset"))

# %% [markdown]
# ## What this shows
#
# Computed from the paired intervals, not written by hand:

# %%
for row in probe_diff.itertuples():
    t, u = (probe_table.query("model == @m and set == @row.set and fraction == @row.fraction").iloc[0]
            for m in ("trained", "untrained"))
    print(f"{row.set:9s} {row.labels:>4s} labels: trained {estimate_text(t.value, t.ci_low, t.ci_high)}, untrained "
          f"{estimate_text(u.value, u.ci_low, u.ci_high)} -> {row.verdict} "
          f"({100 * row.value:+.1f} pp [{100 * row.ci_low:+.1f}, {100 * row.ci_high:+.1f}])")

# %% [markdown]
# On the `ci` preset the test splits are small (tens of images, a handful of positives), so the intervals
# are wide and a fraction of 1 % means a few training images; the `small` and `paper` presets run the same
# cells on sets five times larger. The paper's probe was trained by gradient descent for 30 epochs; a convex
# logistic regression reaches the same kind of optimum deterministically and has no learning-rate schedule
# to tune.
#
# A set whose probe stays near 0.5 for both models raises the question whether its finding can be learnt
# from these images at this size at all. `python benchmarks/finding_visibility.py --data-root <data_root>
# --preset <preset>` answers it: it trains the same image tower from scratch, supervised, on the same train
# split (epoch chosen on the valid split) and scores the test split once, at the preset's image size or at
# `--image-size`.
#
# The tables are written to `run_dir/evaluation/` for chapter 9.

# %%
out = run_dir / "evaluation"
out.mkdir(parents=True, exist_ok=True)
probe_table.to_csv(out / "linear_probe.csv", index=False)
runs.to_csv(out / "linear_probe_runs.csv", index=False)
probe_diff.to_csv(out / "linear_probe_differences.csv", index=False)
print(f"written to {out}; chapter ran in {time.perf_counter() - chapter_started:.1f} s")
