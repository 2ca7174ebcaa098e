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
# # 4. Pretraining
#
# This chapter pretrains the preset's dual encoder on the MIMIC-Eye corpus of `data_root` with the loss of
# `cfg.loss.name` (EGMA by default: FILIP + the gaze MLCE + EGM, chapter 3). One training loop,
# `egma.train`, serves a laptop CPU, one GPU and many GPUs or nodes through Hugging Face
# [Accelerate](https://huggingface.co/docs/accelerate):
#
# - AdamW with weight decay on weight matrices only, a linear warm-up then cosine decay of the learning rate,
#   gradient-norm clipping, gradient accumulation, and bf16 autocast on GPUs that support it;
# - the gaze fraction: a seeded subset of the training studies keeps its gaze (saved with the run), the rest
#   train without gaze terms;
# - after every epoch, the **validation** zero-shot balanced accuracy (5 classes, on the corpus's `validate`
#   split, never a test split) chooses the checkpoint that later chapters evaluate, and the scoring rule they
#   evaluate it with;
# - periodic, epoch-end and on-interrupt checkpoints written atomically, and exact resume.
#
# Everything goes to `run_dir/pretrain/`: `config.json`, `gaze_subset.json`, `metrics.jsonl`,
# `checkpoints/` and `best/model.pt`. Rerunning the chapter on a finished run only reads it back; an
# interrupted run (kernel interrupt, SIGTERM, a killed job) continues from its last checkpoint.

# %% tags=["parameters"]
preset = "ci"
run_dir = "../runs/ci"
data_root = "../data/phantom/ci"
workers = 2

# %%
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from IPython.display import display
from plotly.subplots import make_subplots

from egma.config import get_preset
from egma.train import INIT_FOLDER, TRAIN_FOLDER, init_stage, pretrain
from egma.viz import setup_plotly

setup_plotly()
cfg = get_preset(preset)
data_root, run_dir = Path(data_root), Path(run_dir)
chapter_started = time.perf_counter()
display(pd.Series({k: str(v) for k, v in vars(cfg.train).items()}, name=f"TrainConfig ({preset})").to_frame())

# %% [markdown]
# ## Training
#
# The paper does not start from scratch: EGMA continues from MedCLIP's weights, a model already trained to
# match whole images with whole reports. Without those weights (no network, no credentials) a preset with
# `train.init_epochs > 0` first trains that many epochs with **MedCLIP's own objective**, semantic matching
# (`egma.losses.semantic_matching_loss`: the global image–report logits against soft targets from the
# similarity of the two studies' CheXpert labels, so that two reports stating the same findings are positives
# of each other) and no gaze, into `run_dir/init/`; the preset's loss then continues from the init's best
# weights into `run_dir/pretrain/`, at `train.lr`; the init stage has its own `train.init_lr` (on `small` ten times
# higher: the paper, too, fine-tunes MedCLIP at a far lower rate than MedCLIP was trained with, and at the
# init's rate the EGMA terms undo its global alignment within an epoch). (Trained from random weights, the
# fine-grained FILIP term of EGMA stays at
# $\ln b$ for epochs: a patch finds a matching "heart size is normal" in every report of the batch.) Chapter
# 7 starts every ablation from the same init, as the paper's ablations all start from MedCLIP, and its
# "init" row is the paper's "Baseline (MedCLIP init)".
#
# `pretrain` reads the corpus, loads the gaze cache of chapter 2 from `run_dir/gaze_cache.pt` (or builds it;
# one built with other gaze parameters is an error, never rebuilt silently), and trains. An existing run is
# resumed (`resume=True`); a finished init stage is kept; a run started with another configuration refuses
# to resume and says which fields differ.

# %%
folder = run_dir / TRAIN_FOLDER
started = time.perf_counter()
result = pretrain(cfg, data_root, run_dir, resume=True, workers=workers)
init = init_stage(cfg)
print(f"{result.steps} optimiser steps after the init stage; this call took {time.perf_counter() - started:.0f} s")
if init is None:
    print("this preset has no init stage (train.init_epochs = 0 or a MedCLIP checkpoint is given)")

# %% [markdown]
# ## Loss curves
#
# One point per optimiser step (the mean over its accumulated micro-batches). A contrastive term that knows
# nothing sits at $\ln b$ for a global batch of $b$ studies; the gaze MLCE falls first, since it only asks
# patches to be told apart *within* an image.

# %%
def records(stage_folder, kind):
    lines = (stage_folder / "metrics.jsonl").read_text().splitlines()
    return pd.DataFrame([r for r in map(json.loads, lines) if r["kind"] == kind])


stages = {"init (MedCLIP matching)": run_dir / INIT_FOLDER / TRAIN_FOLDER} if init is not None else {}
stages[f"{cfg.loss.name}"] = folder
steps, epochs = result.frame("step"), result.frame("epoch")
fig = make_subplots(rows=1, cols=2, subplot_titles=("loss terms per step", "learning rate and logit scale"),
                    specs=[[{}, {"secondary_y": True}]])
for stage, stage_folder in stages.items():
    stage_steps = records(stage_folder, "step")
    for term in [c for c in stage_steps.columns if c.startswith("loss_")]:
        fig.add_trace(go.Scatter(x=stage_steps["step"], y=stage_steps[term], mode="lines",
                                 name=f"{stage}: {term.removeprefix('loss_')}"), 1, 1)
    fig.add_trace(go.Scatter(x=stage_steps["step"], y=stage_steps["lr"], name=f"{stage}: learning rate",
                             mode="lines"), 1, 2)
    fig.add_trace(go.Scatter(x=stage_steps["step"], y=stage_steps["logit_scale"], name=f"{stage}: logit scale s",
                             mode="lines", line=dict(dash="dot")), 1, 2, secondary_y=True)
fig.add_hline(y=float(np.log(cfg.train.batch_size)), line_dash="dash", annotation_text="ln b", row=1, col=1)
fig.update_xaxes(title_text="optimiser step (of each stage)")
fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=40)).show()

# %% [markdown]
# ## Validation: choosing the checkpoint and its scoring rule
#
# Each epoch every `validate` study positive for exactly one of the five CheXpert 5x200 classes is
# classified zero-shot against every 5x200 prompt (chapter 5 explains the grammar) in four ways: the global
# image embedding or FILIP's patch-level score (the similarity the fine-grained losses train), and the
# maximum (the paper's rule) or the mean over a class's prompts. The criterion is the **balanced accuracy**,
# the mean of the per-class recalls: this split is unbalanced (one class holds about 40 % of it) while the
# 5x200 test set is not, and plain accuracy would reward sending every image to the largest class. The
# epoch and rule with the best balanced accuracy are kept; chapters 5 to 8 score that model with that rule.
# Answering one class for every image, or at random, gives 20 %. With four rules per epoch the chosen
# score is optimistic by construction; the test sets of chapter 5 say how much. On the `ci` corpus the
# validation set is tiny (about ten images): read the curves as a smoke test, not as a result.

# %%
val_curves = pd.concat([pd.DataFrame([{"stage": stage, "epoch": r["epoch"], "rule": rule, **scores}
                                      for r in records(stage_folder, "epoch").to_dict("records")
                                      for rule, scores in r["val_by_scoring"].items()])
                        for stage, stage_folder in stages.items()], ignore_index=True)
fig = make_subplots(rows=1, cols=len(stages), subplot_titles=list(stages), shared_yaxes=True)
rule_colour = dict(zip(val_curves["rule"].unique(), px.colors.qualitative.Plotly))  # one colour per rule in every panel
for col, stage in enumerate(stages, start=1):
    for rule, curve in val_curves[val_curves.stage == stage].groupby("rule", sort=False):
        fig.add_trace(go.Scatter(x=curve["epoch"], y=curve["balanced_accuracy"], mode="lines+markers", name=rule,
                                 line_color=rule_colour[rule], legendgroup=rule, showlegend=col == 1,
                                 customdata=curve["accuracy"],
                                 hovertemplate=f"{rule}, epoch %{{x}}: balanced %{{y:.3f}}, "
                                               "accuracy %{customdata:.3f}<extra></extra>"), 1, col)
    fig.add_hline(y=0.2, line_dash="dash", annotation_text="chance / one class 20 %", row=1, col=col)
fig.update_xaxes(title_text="epoch", dtick=1)
fig.update_layout(title=f"zero-shot 5-class balanced accuracy on the validate split (n = {int(epochs['val_n'].iloc[0])})",
                  yaxis_title="balanced accuracy", yaxis_range=[0, 1], height=380,
                  margin=dict(l=10, r=10, t=90, b=40)).show()
best = epochs.set_index("epoch").loc[result.best_epoch]
print(f"best epoch {result.best_epoch}: validation balanced accuracy {result.best_score:.1%} with the rule "
      f"'{best['val_scoring']}' (accuracy {best['val_accuracy']:.1%}; always answering the largest class: "
      f"{best['val_majority']:.1%}); recall per class "
      + ", ".join(f"{name} {value:.0%}" for name, value in best["val_per_class"].items()))
print(f"the model of that epoch is {folder / 'best' / 'model.pt'}")

# %% [markdown]
# ## Throughput and the data loader
#
# Every step record holds the time spent waiting for the batch (`data_s`: reading and framing the images,
# tokenising, gathering gaze rows, done in `workers` loader processes) and the time of forward, backward and
# the optimiser step (`compute_s`). The loader must never be the bottleneck.

# %%
warm = steps.iloc[1:] if len(steps) > 1 else steps  # the first step also starts the loader's workers
share = warm["data_s"].sum() / (warm["data_s"] + warm["compute_s"]).sum()
summary = pd.Series({"images / s (median over steps)": warm["images_per_s"].median(),
                     "data loading share of step time": f"{share:.1%}",
                     "seconds per optimiser step (median)": (warm["data_s"] + warm["compute_s"]).median(),
                     "wall time of the run so far, s": float(epochs["wall_s"].max()) if len(epochs) else None})
display(summary.to_frame(preset))
go.Figure([go.Scatter(x=warm["step"], y=warm["compute_s"], name="compute", stackgroup="t"),
           go.Scatter(x=warm["step"], y=warm["data_s"], name="waiting for data", stackgroup="t")]).update_layout(
    title="time per optimiser step", xaxis_title="step", yaxis_title="s", height=300,
    margin=dict(l=10, r=10, t=40, b=40)).show()

# %% [markdown]
# ## Several GPUs, several nodes
#
# The same module runs on any number of processes; only the launcher changes. `TrainConfig.batch_size` is
# the **global** batch, split evenly over the processes, and the losses gather every process's features
# with their gradients, so a run takes the same steps on 1 or 8 GPUs (the test suite checks 2 processes
# against 1 at step 1). One GPU, or several on one machine (bf16 is chosen automatically where supported):
#
# ```bash
# accelerate config                     # once per machine: multi-GPU, number of GPUs, bf16
# accelerate launch -m egma.train --preset paper --data-root /data/egma --run-dir runs/paper
# accelerate launch --multi_gpu --num_processes 8 --mixed_precision bf16 \
#     -m egma.train --preset paper --data-root /data/egma --run-dir runs/paper
# ```
#
# Several nodes (here 2 x 8 GPUs; run on every node with its own `--machine_rank`):
#
# ```bash
# accelerate launch --multi_gpu --num_machines 2 --num_processes 16 --machine_rank $NODE_RANK \
#     --main_process_ip $MASTER_ADDR --main_process_port 29500 --mixed_precision bf16 \
#     -m egma.train --preset paper --data-root /data/egma --run-dir runs/paper
# ```
#
# `torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint $MASTER_ADDR:29500 -m egma.train ...`
# is equivalent (on a CPU-only machine, `torchrun --nproc_per_node 2` gives a real 2-process gloo run).
# Add `--resume` to continue after a preemption; SIGTERM from a scheduler writes a checkpoint first.
#
# DeepSpeed and FSDP: the paper model (Swin-T + BERT-base, about 140 M parameters) fits on every current GPU
# many times over, so plain data parallelism (DDP) is the right choice; ZeRO stage 1-2 or FSDP only shard
# optimiser state and save memory for much larger encoders. They can be chosen in `accelerate config`,
# but the checkpoints here are plain full state dicts (not sharded), which FSDP full-state-dict mode and
# ZeRO-2 give; ZeRO-3 / sharded checkpoints are not supported by this loop.

# %%
print(f"chapter ran in {time.perf_counter() - chapter_started:.1f} s")
