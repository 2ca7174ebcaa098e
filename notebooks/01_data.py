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
# # 1. Data: what a study is
#
# EGMA learns from chest X-ray **studies** that come with four things: the image, the report, the
# radiologist's **dictation** with a time stamp on every word, and the radiologist's **eye gaze**
# recorded while dictating. MIMIC-Eye {cite}`hsieh2023mimiceye` packs these together from
# MIMIC-CXR-JPG (images, reports), REFLACX {cite}`bigolinlanfredi2022reflacx` (five radiologists,
# 1000 Hz EyeLink gaze, word time stamps) and EGD-CXR {cite}`karargyris2021egdcxr` (one radiologist,
# 60 Hz Gazepoint gaze, phrase time stamps).
#
# Those datasets need credentials, so this book ships a generator of a **phantom MIMIC-Eye** written
# in exactly the same files and columns. The phantom is built from real material that
# `torchxrayvision` ships: real lung masks for the lung fields, real lesion boxes and pneumothorax
# masks for finding sizes and positions, and real Indiana University report sentences with their MeSH
# tags. Dictation is timed at a realistic speaking rate, and a simulated radiologist looks at each
# sentence's region a little before saying it. The same readers load the phantom and the real data:
# point `data_root` at your MIMIC-Eye copy (see `data_manifests/mimic-eye.md`) and this chapter shows
# your data instead.

# %% tags=["parameters"]
preset = "ci"
run_dir = "../runs/ci"
data_root = "../data/phantom/ci"
workers = 2

# %%
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import HTML, display
from PIL import Image

from egma.config import get_preset
from egma.datasets import read_mimic_eye
from egma.datasets.study import CHEXPERT_LABELS
from egma.gaze.sentences import spoken_sentences
from egma.phantom.generate import ensure_phantom
from egma.phantom.reports import tag_sentence
from egma.phantom.truth import load_study_masks
from egma.viz import (dictation_figure, gaze_trace_figure, image_grid, image_with_outlines, region_colour,
                      scanpath_figure, sentences_html, setup_plotly)

setup_plotly()
cfg = get_preset(preset)
data_root = Path(data_root)

# %% [markdown]
# ## The tree on disk
#
# If `data_root` does not exist yet, the phantom is generated there (seeded: the same preset gives a
# byte-identical tree). An existing tree made with other parameters is an error, never overwritten.

# %%
started = time.perf_counter()
is_phantom = not (data_root / "mimic-eye").exists() or (data_root / "phantom_truth").exists()
if is_phantom:
    ensure_phantom(data_root, cfg.phantom, workers=workers)
mimic_eye_root = data_root / "mimic-eye" if (data_root / "mimic-eye").exists() else data_root
print(f"data ready in {time.perf_counter() - started:.1f} s: {mimic_eye_root}")
for path in sorted(next(mimic_eye_root.glob("patient_*")).rglob("*"))[:25]:
    print("  ", path.relative_to(mimic_eye_root))

# %%
started = time.perf_counter()
studies = read_mimic_eye(mimic_eye_root)
readings = [r for s in studies for r in s.readings]
print(f"read {len(studies)} studies with {len(readings)} readings in {time.perf_counter() - started:.1f} s")
print("by source:", dict(Counter(r.source for r in readings)), "| skipped:", studies.skipped or "none")
print("images with several readers:", sum(len(s.readings) > 1 for s in studies))

# %% [markdown]
# ## One study, whole
#
# We pick a study with at least two findings and a REFLACX reading. The outlines are the findings'
# pixel masks, which only the phantom has (its generator keeps them in `phantom_truth/`, which the
# readers never read); on real data the REFLACX ellipses are drawn instead.

# %%
def positive_findings(study):
    return [k for k in CHEXPERT_LABELS if study.labels.get(k) == 1.0 and k != "No Finding"]


example = max(studies, key=lambda s: (any(r.source == "reflacx" for r in s.readings),
                                      min(len(positive_findings(s)), 3), len(s.report_sentences)))
reading = next(r for r in example.readings if r.source == "reflacx") if any(
    r.source == "reflacx" for r in example.readings) else example.readings[0]
image = np.asarray(Image.open(mimic_eye_root / f"patient_{example.subject_id}" / "CXR-JPG" /
                              f"s{example.study_id}" / f"{example.dicom_id}.jpg"))
if is_phantom:
    masks = {k: m for k, m in load_study_masks(data_root / "phantom_truth", example.dicom_id).items()
             if k.startswith("finding:")}
else:
    masks = {}
    for name, boxes in example.boxes.items():
        m = np.zeros(image.shape, bool)
        for x1, y1, x2, y2 in boxes:
            m[int(y1):int(y2), int(x1):int(x2)] = True
        masks[f"finding:{name}"] = m
print(f"study s{example.study_id}, image {example.dicom_id}, reading {reading.reading_id} ({reading.source})")
print("labels:", positive_findings(example))
image_with_outlines(image, masks, "finding masks").show()

# %% [markdown]
# Each report sentence is tagged with the finding it asserts (negation aware) and so with the
# **region** its gaze should land in: a positive finding's mask, or for a normal or negative
# statement the anatomy it is about (heart, lungs, costophrenic angles, apices, bones...).

# %%
tags = [tag_sentence(s) for s in example.report_sentences]
regions = [list(t.region) for t in tags]
display(HTML(sentences_html(example.report_sentences, regions)))

# %% [markdown]
# ### Dictation and gaze on one time axis
#
# The dictation gives every word a start and end time (REFLACX: one row per word, "." rows end
# sentences). The raw gaze is sampled at 1000 Hz; the thick red segments are the fixations the
# eye tracker's own filter reported. Shaded bands are the sentences' spoken spans.

# %%
spoken = spoken_sentences(reading.transcript, reading.reading_id)
colours = [region_colour(t.region[0]) if t.region else "#999999" for t in (tag_sentence(s.text) for s in spoken)]
token_sentence = np.full(len(reading.transcript.tokens), -1)
for i, s in enumerate(spoken):
    token_sentence[(reading.transcript.t_start >= s.t_start - 1e-6) & (reading.transcript.t_end <= s.t_end + 1e-6)] = i
dictation_figure(reading.transcript, token_sentence, colours, "dictation: words by sentence").show()
windows = np.array([[s.t_start, s.t_end] for s in spoken])
gaze_trace_figure(reading.samples, reading.fixations, windows, colours, "raw gaze, fixations and sentence spans").show()

# %%
fix = reading.fixations
mid = (fix.t_start + fix.t_end) / 2
fix_sentence = np.array([next((i for i, (a, b) in enumerate(windows) if a - 0.75 <= t <= b), -1) for t in mid])
scanpath_figure(image, fix, [colours[i] if i >= 0 else "#ffffff" for i in fix_sentence],
                "scanpath: fixations coloured by the sentence being dictated (white: search)").show()

# %% [markdown]
# ## A gallery across findings
#
# Sixteen images, one per finding where the corpus has it, then normals.

# %%
picked, seen = [], set()
for label in [k for k in CHEXPERT_LABELS if k != "No Finding"] + ["No Finding"] * 16:
    for s in studies:
        if s.labels.get(label) == 1.0 and s.dicom_id not in seen and (label == "No Finding" or label not in
                                                                           {t for p in picked for t in p[1]}):
            picked.append((s, positive_findings(s) or ["No Finding"]))
            seen.add(s.dicom_id)
            break
    if len(picked) == 16:
        break
images = [np.asarray(Image.open(mimic_eye_root / f"patient_{s.subject_id}" / "CXR-JPG" / f"s{s.study_id}" /
                                f"{s.dicom_id}.jpg")) for s, _ in picked]
image_grid(images, [", ".join(f)[:38] for _, f in picked]).show()

# %% [markdown]
# ## Corpus statistics
#
# Findings and report length, then the gaze: fixation durations and saccade amplitudes (between
# consecutive fixations) beside the figures of real radiologists reading chest X-rays
# (GazeSearch, 29,118 fixations: duration median 0.28 s, 10th percentile 0.16 s, 90th 0.52 s;
# saccade amplitude median about 17 % of the image width, 90th percentile about 48 %).

# %%
counts = pd.Series({k: sum(s.labels.get(k) == 1.0 for s in studies) for k in CHEXPERT_LABELS}).sort_values()
go.Figure(go.Bar(x=counts.values, y=counts.index, orientation="h")).update_layout(
    title=f"positive CheXpert labels in {len(studies)} studies", height=420, margin=dict(l=10, r=10, t=40, b=10)).show()
n_sentences = np.array([len(s.report_sentences) for s in studies])
print(f"sentences per report: median {np.median(n_sentences):.0f}, range {n_sentences.min()}-{n_sentences.max()}")

# %%
durations = np.concatenate([r.fixations.duration for r in readings])
amplitudes = np.concatenate([np.hypot(np.diff(r.fixations.x), np.diff(r.fixations.y)) / s.image_size[1]
                             for s in studies for r in s.readings])
amplitudes = amplitudes[np.isfinite(amplitudes)]  # fixations off the image have no position
stats = pd.DataFrame({
    "this corpus": [np.median(durations), np.percentile(durations, 10), np.percentile(durations, 90),
                    durations.mean(), 100 * np.median(amplitudes), 100 * np.percentile(amplitudes, 90)],
    "real radiologists (GazeSearch)": [0.28, 0.16, 0.52, 0.32, 17, 48],
}, index=["fixation duration median (s)", "fixation duration p10 (s)", "fixation duration p90 (s)",
          "fixation duration mean (s)", "saccade amplitude median (% width)", "saccade amplitude p90 (% width)"])
display(stats.round(3))

# %%
fig = go.Figure()
fig.add_trace(go.Histogram(x=durations, xbins=dict(start=0, end=1.5, size=0.04), name="fixation duration (s)"))
fig.add_vline(x=0.28, line_dash="dash", annotation_text="real median 0.28 s")
fig.update_layout(title=f"{len(durations):,} fixations from {len(readings)} readings", xaxis_title="seconds",
                  height=330, margin=dict(l=10, r=10, t=40, b=40)).show()
fig = go.Figure(go.Histogram(x=100 * amplitudes, xbins=dict(start=0, end=100, size=2.5)))
fig.add_vline(x=17, line_dash="dash", annotation_text="real median 17 %")
fig.update_layout(title="saccade amplitude", xaxis_title="% of image width", height=330,
                  margin=dict(l=10, r=10, t=40, b=40)).show()

# %% [markdown]
# ## The downstream sets
#
# The phantom also writes evaluation sets in the formats of CheXpert (the 5x200 zero-shot set and
# the 8x200 retrieval set), RSNA Pneumonia (boxes) and SIIM-ACR (RLE masks); chapters 5 and 6 use them.

# %%
if is_phantom:
    from egma.datasets import read_chexpert, read_chexpert_5x200, read_chexpert_8x200, read_rsna, read_siim

    chexpert_root = data_root / "chexpert" / "CheXpert-v1.0-small"
    sets = {
        "CheXpert train (multi-label)": read_chexpert(chexpert_root, "train.csv"),
        "CheXpert 5x200": read_chexpert_5x200(chexpert_root, "chexpert_5x200.csv", n_per_class=cfg.phantom.n_per_class_5x200),
        "CheXpert 8x200": read_chexpert_8x200(chexpert_root, "chexpert_8x200.csv", n_per_class=cfg.phantom.n_per_class_8x200),
        "RSNA Pneumonia": read_rsna(data_root / "rsna"),
        "SIIM-ACR": read_siim(data_root / "siim"),
    }
    display(pd.DataFrame({"images": {k: len(v) for k, v in sets.items()},
                          "classes": {k: ", ".join(v.class_names) for k, v in sets.items()}}))
