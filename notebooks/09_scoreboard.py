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
# # 9. The reproduction scoreboard
#
# This chapter puts every number the EGMA paper {cite}`ma2024egma` publishes for the tasks of this book beside
# the book's own measurement of it: zero-shot classification (the paper's Table 2) and retrieval (Table 3) from
# chapter 5, linear probing (Table 1) from chapter 6, and the ablations (Table 4) from chapter 7. Each cell says
# where our number came from (phantom or real data, which preset, how many test images), what answering the
# majority class scores on the same images, and a **status**:
#
# | status | meaning |
# |---|---|
# | reproduced on real data | measured on the datasets the paper used: the values can be compared |
# | reproduced on phantom | measured, but on the phantom sets: only baselines and directions compare |
# | not run | nothing in `run_dir` yet; the reason names the chapter (and preset) that would measure it |
# | not comparable | a model the book does not implement (the paper's baselines, kept as context) |
#
# Cells that need real data carry the exact command that measures them (labels `R5`, `R6`, `R7`, listed
# before the tables). The chapter only reads what chapters 5-7 wrote, so it runs in seconds; a chapter that has
# not run leaves its cells "not run".

# %% tags=["parameters"]
preset = "ci"
run_dir = "../runs/ci"
data_root = "../data/phantom/ci"
workers = 2
chexpert_root = None      # as in chapters 5 and 6: used only when their executed notebooks are not found
rsna_root = None
siim_root = None
executed_dir = None       # the executed chapters, with the parameters papermill recorded (default: see below)

# %%
import time
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import display

from egma import scoreboard as sb
from egma.config import get_preset
from egma.paper_results import CITATION, TABLES, paper_results

started = time.perf_counter()
cfg = get_preset(preset)
run_dir = Path(run_dir)
# egma.book keeps executed chapters in <root>/_executed/<preset>, beside <root>/runs/<preset>
executed_dir = Path(executed_dir) if executed_dir else run_dir.parent.parent / "_executed" / preset
own_parameters = {"preset": preset, "run_dir": str(run_dir), "data_root": data_root, "chexpert_root": chexpert_root,
                  "rsna_root": rsna_root, "siim_root": siim_root}
paper = paper_results()
print(f"{len(paper)} published numbers from {CITATION}: "
      + ", ".join(f"{t} ({n})" for t, n in paper.groupby("table").size().items()))

# %% [markdown]
# ## Phantom numbers are not the paper's numbers
#
# On the phantom the book measures the same quantities with the same code, but on different data: synthetic
# radiographs built on real lung masks, a simulated radiologist's gaze, phantom test sets of tens to hundreds of
# images, and (on `ci`) a tiny encoder trained for minutes. A phantom accuracy, however close to or far from the
# paper's, says nothing about EGMA by its value. Three things *can* be read across:
#
# 1. **Baselines.** Every score has beside it what a predictor without a model scores on the same images. A
#    number is informative only by how far it is above that, on either side of the table.
# 2. **Directions.** The paper's EGMA is continued pretraining from MedCLIP's weights, so EGMA minus MedCLIP is
#    what pretraining adds. The book's pretrained model minus the same architecture before pretraining asks the
#    same question, with a paired 95 % interval; whether it points the same way can be compared.
# 3. **Values**, once a cell is measured on real data with the command it carries.
#
# ## The majority class, and the paper's RSNA score
#
# A predictor that answers the most frequent class for every image of a two-class set whose majority share is
# $p$ is right on a share $p$ of the images: accuracy $= p$. The majority class then has precision $p$ and
# recall 1, so $F_1 = 2p/(1+p)$; the other class is never predicted and has $F_1 = 0$. The macro mean is
#
# $$\text{macro-}F_1 = \frac{1}{2}\cdot\frac{2p}{1+p} = \frac{p}{1+p}, \qquad\text{so}\qquad p = \frac{F}{1-F}.$$
#
# (With $C$ classes the macro mean is $2p / ((1+p)\,C)$.) The paper's zero-shot RSNA result for EGMA is accuracy
# 76.97 % and macro-$F_1$ 43.49 %. Put $p = 0.7697$ into the formula:

# %%
p = 0.7697
accuracy, macro_f1 = sb.majority_scores([round(10000 * p), round(10000 * (1 - p))])
egma_rsna = paper.query("task == 'zero-shot' and model == 'EGMA' and set == 'RSNA'").set_index("metric")["value"]
low, high = (sb.majority_share_from_macro_f1(f) for f in ((egma_rsna["macro_f1"] - 0.005) / 100,
                                                          (egma_rsna["macro_f1"] + 0.005) / 100))
display(pd.DataFrame({"paper, EGMA on RSNA": egma_rsna, f"always 'normal', p = {p}": [100 * accuracy, 100 * macro_f1]},
                     index=["accuracy", "macro_f1"]).style.format("{:.2f}").set_caption(
    "the paper's RSNA zero-shot score beside the all-majority predictor, %"))
print(f"p / (1 + p) = {p} / {1 + p:.4f} = {p / (1 + p):.5f}")
print(f"the majority shares whose macro-F1 rounds to {egma_rsna['macro_f1']:.2f} % are "
      f"{100 * low:.3f}-{100 * high:.3f} %, "
      f"which {'contains' if low <= egma_rsna['accuracy'] / 100 <= high else 'does not contain'} the accuracy "
      f"{egma_rsna['accuracy']:.2f} %")

# %% [markdown]
# Both numbers match to the printed precision: the reported RSNA score is what answering "normal" for every
# image gives on a test set that is 76.97 % normal. Is that the composition of the real RSNA test set? The
# test split itself is not published, but the labels of the whole real set ship with `torchxrayvision` (label
# files only, no images), and so do SIIM-ACR's:

# %%
label_counts = sb.shipped_label_counts()
composition = []
for name, (negative, positive) in label_counts.items():
    total = negative + positive
    share = negative / total
    n_test = round(0.15 * total)   # the protocol's 15 % test split
    sd = np.sqrt(share * (1 - share) / n_test * (total - n_test) / (total - 1))   # drawn without replacement
    majority_acc, majority_f1 = sb.majority_scores((negative, positive))
    composition.append({"set": name, "images": total, "negative": negative, "positive": positive,
                        "negative share %": 100 * share, "majority acc %": 100 * majority_acc,
                        "majority macro-F1 %": 100 * majority_f1,
                        "SD of the share in a 15 % split, pp": 100 * sd})
composition = pd.DataFrame(composition).set_index("set")
display(composition.style.format(precision=2, thousands=",").set_caption(
    "real label files: composition and what the majority predictor scores on them"))
z = (egma_rsna["accuracy"] / 100 - composition.loc["RSNA", "negative share %"] / 100) / (
    composition.loc["RSNA", "SD of the share in a 15 % split, pp"] / 100)
print(f"a {egma_rsna['accuracy']:.2f} %-normal test split is {z:+.1f} standard deviations from the whole set's "
      f"{composition.loc['RSNA', 'negative share %']:.2f} %: "
      + ("well within what a random 15 % split gives" if abs(z) < 2 else "unusual for a random 15 % split"))

# %% [markdown]
# The same comparison for every zero-shot number of the paper: each published score minus what the majority
# predictor scores on the real set (percentage points; CheXpert 5x200 is balanced by construction, RSNA and
# SIIM use the compositions above, which the unpublished test splits approximate).

# %%
real_majority = sb.real_majority_baselines(label_counts)
vs_majority = paper.query("task == 'zero-shot'").merge(real_majority[["set", "metric", "value"]],
                                                       on=["set", "metric"], suffixes=("", "_majority"))
vs_majority["above majority, pp"] = vs_majority["value"] - vs_majority["value_majority"]
display(vs_majority.pivot(index="model", columns=["set", "metric"], values="above majority, pp")
        .reindex(paper.query("task == 'zero-shot'")["model"].unique())
        .style.format("{:+.2f}").map(lambda v: f"color: {'#1b7f3b' if v > 0 else '#b00020'}")
        .set_caption("paper's zero-shot score minus the majority predictor on the real set, pp"))

# %% [markdown]
# ## Where the book's numbers come from
#
# Chapters 5-7 write their results to `run_dir`. Which data and preset produced them is read from the chapters'
# executed notebooks, where papermill records the parameters each one ran with; where a chapter's executed
# notebook is missing or belongs to another `run_dir`, this chapter's own parameters are assumed (the
# "parameters" column says which). The test sets are then re-read (labels only) exactly as the chapter read
# them, to count their images.

# %%
sources = sb.chapter_sources()
tables = sb.load_results(run_dir)
provenance = {c: sb.chapter_provenance(c, run_dir, executed_dir, own_parameters, sources)
              for c in (5, 6, 7) if sb.files_of_chapter(tables, c)}
display(sb.provenance_table(tables, provenance, sources).style.hide(axis="index").set_caption(
    f"provenance of the results in {run_dir}"))

# %% [markdown]
# ## The scoreboard
#
# One table per table of the paper. "paper" is the published value; "ours" the book's, with its 95 % bootstrap
# interval (over test images; for chapter 7, over seeds as that chapter computes it); "majority (ours)" what the
# majority predictor scores on the book's test images, "majority (real set)" on the paper's datasets. The EGMA row
# is the pretrained model of chapter 4; the MedCLIP row, EGMA's starting point, is stood in for by the same
# architecture before pretraining. The real-data commands:

# %%
commands = {c: sb.fill_command(c, sources) for c in (5, 6, 7)}
for chapter, command in commands.items():
    print(f"[{sb.command_label(chapter)}] {command}")
board = sb.build_scoreboard(tables, provenance, commands, preset, real_majority, paper,
                            init_is_medclip=cfg.model.medclip_checkpoint is not None)


def show(part, title):
    display(sb.styled(sb.board_view(part), title))


# %% [markdown]
# ### Table 2: zero-shot classification
#
# The book's values are chapter 5's headline: the scoring rule chosen on the pretraining corpus's validate
# split (chapter 4), which need not be the paper's (global embedding, max over prompts); chapter 5's table of
# scoring variants has every rule's numbers, the paper's among them.

# %%
show(board[board["task"] == "zero-shot"], f"Table 2, {TABLES['Table 2']}")

# %% [markdown]
# ### Table 3: retrieval on CheXpert 8x200
#
# Chance is 1/8 in both directions; image->text P@10 can be at most 50 % (5 of the 40 queries are relevant).

# %%
show(board[board["task"] == "retrieval"], f"Table 3, {TABLES['Table 3']}")

# %% [markdown]
# ### Table 1: linear probing
#
# A constant score has AUROC 50. The paper's probe is trained by gradient descent; chapter 6 fits a logistic
# regression (same frozen features, same label shares).

# %%
show(board[board["task"] == "linear probe"], f"Table 1, {TABLES['Table 1']}")

# %% [markdown]
# ### Table 4: ablations
#
# The upper part switches loss terms on and off; the book's chapter 7 trains each (`mlce`, `egf`, `egm`,
# `egma`) on the same data and seeds, and its intervals are over seeds. The paper's baseline is MedCLIP without
# continued pretraining, so its cells come from chapter 5's untrained model. The lower part trains EGMA with
# gaze on a share of the studies (the paper averages three runs); a preset whose chapter-7 grid lacks a share
# leaves that cell "not run" and says which presets have it. A set or metric that chapter 7 does not score at
# all makes its cells "not comparable", with the tasks it does score. Chapter 7 also trains the controls the
# paper's table lacks (CLIP and FILIP without gaze, the untrained model over seeds); they are in its own tables.

# %%
show(board[board["task"] == "ablation"], f"Table 4 (upper part), {TABLES['Table 4']}")
show(board[board["task"] == "gaze fraction"], "Table 4 (lower part): EGMA with gaze on a share of the studies")

# %% [markdown]
# ## Directions of effects
#
# The paper's EGMA minus MedCLIP (a difference of two published numbers, without an interval) beside the book's
# pretrained minus untrained model, scored on the same test images with a paired bootstrap (chapters 5 and 6).
# "same direction" needs the book's 95 % interval to exclude zero on the paper's side; "unresolved" means the
# book's test sets cannot tell the two models apart.

# %%
directions = sb.effect_directions(tables, provenance, paper)
direction_view = pd.DataFrame({
    "table": directions["table"], "set": directions["set"], "setting": directions["setting"],
    "metric": directions["metric"], "paper EGMA - MedCLIP, pp": directions["paper_delta"].map("{:+.2f}".format),
    "ours trained - untrained, pp [95 % CI]": [
        "" if np.isnan(v) else f"{v:+.1f} [{lo:+.1f}, {hi:+.1f}]"
        for v, lo, hi in zip(directions["ours"], directions["ci_low"], directions["ci_high"])],
    "agreement": directions["agreement"], "data": directions["data"]})
display(sb.styled(direction_view, "does pretraining move the scores the way the paper reports?", "agreement"))
print(directions["agreement"].value_counts().to_string())

# %% [markdown]
# ## Summary
#
# Cells of every paper table by status. The verdict below is counted from the tables above.

# %%
counts = sb.status_counts(board)
display(counts.style.set_caption("published numbers by status"))
total = counts.loc[("all", "")]
print(f"Of {total['cells']} published numbers, {total[sb.REPRODUCED_REAL]} are reproduced on real data, "
      f"{total[sb.REPRODUCED_PHANTOM]} on the phantom only, {total[sb.NOT_RUN]} not run yet and "
      f"{total[sb.NOT_COMPARABLE]} not comparable (the tables give each one's reason).")
agree = directions["agreement"].value_counts()
print(f"Directions (EGMA vs its initialisation, {len(directions)} cells): {agree.get('same direction', 0)} the same "
      f"as the paper, {agree.get('opposite direction', 0)} opposite, "
      f"{agree.get('unresolved (interval spans 0)', 0)} unresolved, {agree.get(sb.NOT_RUN, 0)} not run.")
measured = board[board["ours"].notna()]
above, interval_above = (int((measured[column] > measured["majority"]).sum()) for column in ("ours", "ci_low"))
print(f"Of the book's {len(measured)} measured cells, {above} are above the majority predictor on their own test "
      f"images, {interval_above} with the whole 95 % interval above it.")

# %% [markdown]
# ## Filling the board with real data
#
# Each command runs chapters 1-4 (data, gaze cache, model, pretraining on MIMIC-Eye) and then the chapter that
# measures the cells; the paths are placeholders for your copies (see `data_manifests/`). Before running them:
#
# - `data_root` must hold `mimic-eye/` with the `patient_*` folders (chapter 1 treats a data root without it as a
#   phantom to generate);
# - `chexpert_root` must hold `train.csv`, `valid.csv` and GLoRIA's `chexpert_5x200.csv` list;
# - SIIM-ACR is split 70/15/15 with a seeded generator here, while the paper tests on Saab et al.'s subset, and
#   RSNA's 15 % test split is one seeded draw of the protocol: these cells compare in protocol, not image for
#   image;
# - the paper starts from MedCLIP's weights; the `paper` preset starts from scratch unless
#   `model.medclip_checkpoint` points at them, and until it does the MedCLIP rows measured on real data are
#   marked "not comparable".

# %%
for chapter, command in commands.items():
    cells = int((board["command"] == command).sum())
    print(f"[{sb.command_label(chapter)}] fills {cells} cells:\n    {command}")

# %% [markdown]
# The scoreboard is written to `run_dir/scoreboard/`: every cell with its full command (`scoreboard.csv`), one
# file per paper table, the directions and the counts.

# %%
out = run_dir / "scoreboard"
out.mkdir(parents=True, exist_ok=True)
board.to_csv(out / "scoreboard.csv", index=False)
for (table, task), part in board.groupby(["table", "task"], sort=False):
    part.to_csv(out / f"{table.lower().replace(' ', '_')}_{task.replace(' ', '_').replace('-', '_')}.csv", index=False)
directions.to_csv(out / "directions.csv", index=False)
counts.to_csv(out / "status_counts.csv")
real_majority.to_csv(out / "real_majority_baselines.csv", index=False)
print(f"written to {out}: {', '.join(sorted(p.name for p in out.glob('*.csv')))}; "
      f"chapter ran in {time.perf_counter() - started:.1f} s")
