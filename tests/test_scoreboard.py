"""egma.scoreboard and egma.paper_results: the paper's numbers, the join of the book's results, baselines, commands.

The paper's numbers are checked against the "Reported results" section of paper_facts.md, parsed here
independently of egma.paper_results: a number mistyped in either transcription fails the test. The section
is kept verbatim below (REPORTED_RESULTS) so that the test runs on a bare clone; where paper_facts.md itself
is found (PAPER_FACTS_CANDIDATES), the copy must equal it.
"""
from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from egma import book
from egma import scoreboard as sb
from egma.datasets.errors import DataFormatError
from egma.paper_results import gaze_setting, paper_results

PAPER_FACTS_CANDIDATES = (book.REPO_ROOT / "docs" / "paper_facts.md", book.REPO_ROOT / "book" / "paper_facts.md",
                          Path("/work/shared/paper_facts.md"))
REPORTED_RESULTS = """\
## Reported results (EGMA row and the strongest baselines)

Zero-shot classification, accuracy / macro-F1 (%):

| model | CheXpert 5x200 | RSNA | SIIM-ACR |
|---|---|---|---|
| CLIP | 20.10 / 9.12 | 25.03 / 22.07 | 49.39 / 47.98 |
| GLoRIA | 53.30 / 48.99 | 29.15 / 28.54 | 22.57 / 22.57 |
| MGCA | 43.60 / 41.37 | 60.83 / 57.77 | 30.03 / 25.45 |
| MedCLIP (EGMA's init) | 57.50 / 55.97 | 43.09 / 31.01 | 58.40 / 57.85 |
| EGMA | 61.30 / 60.38 | 76.97 / 43.49 | 63.62 / 61.46 |

Note: 76.97 / 43.49 equals always predicting the majority class on a 76.97 %-normal test set.

Retrieval on CheXpert 8x200, Precision@1/5/10 (%): EGMA image->text 42.65 / 37.50 / 28.84,
text->image 80.00 / 74.50 / 69.50; GLoRIA 38.75 / 31.62 / 24.51 and 52.50 / 49.00 / 50.25;
ConVIRT text->image 60.25 / 60.00 / 57.50; MedCLIP 14.50 / 15.98 / 15.86 and 12.50 / 12.50 / 15.00.

Linear probe AUROC (%), 1 % / 10 % / 100 % labels: EGMA CheXpert 87.71 / 88.92 / 89.50,
RSNA 88.41 / 89.40 / 90.10, SIIM 90.78 / 92.17 / 93.29; MedCLIP CheXpert 85.74 / 87.49 / 88.02,
RSNA 87.61 / 88.19 / 89.10, SIIM 88.84 / 91.13 / 92.18; MGCA CheXpert 85.80 / 87.66 / 89.30.

Ablation, zero-shot accuracy / F1 (%), CheXpert 5x200 | RSNA | SIIM:
- Baseline (MedCLIP init): 57.50/55.97 | 43.09/31.01 | 58.40/57.85
- MLCE only: 60.90/59.59 | 47.06/33.04 | 27.43/22.81
- EGF: 60.30/58.44 | 53.81/35.52 | 63.54/65.70
- EGM: 59.30/57.74 | 54.68/35.80 | 52.61/47.85
- EGF + EGM (EGMA): 61.30/60.38 | 76.97/43.49 | 63.62/61.46
- gaze on 1 % of studies (37): 58.93/56.62 | 40.38/29.75 | 57.90/57.37 (mean of 3 runs)
- 5 % (185): 58.93/56.69 | 53.00/35.13 | 59.20/58.51
- 10 % (370): 59.30/57.82 | 53.78/35.37 | 58.27/57.71
- 50 % (1,848): 59.55/58.84 | 58.54/37.01 | 61.41/58.88

The paper's qualitative claims the book should test on its own data: gaze-guided alignment
improves zero-shot classification and retrieval over the same model without gaze; a small
fraction of studies with gaze already helps; cross-modal attention maps localise findings better;
disease clusters are tighter.
"""

NUMBER = r"(\d+\.\d+)"
TRIPLE = rf"{NUMBER} / {NUMBER} / {NUMBER}"
PAIR = rf"{NUMBER}/{NUMBER}"
SETS = {"CheXpert 5x200": "CheXpert 5x200", "RSNA": "RSNA", "SIIM-ACR": "SIIM"}
DIRECTIONS = {"image->text": "image_to_text", "text->image": "text_to_image"}


def reported_results_section(text: str) -> str:
    start = text.index("## Reported results")
    end = text.index("\n## ", start + 5)
    return text[start:end].rstrip("\n") + "\n"


def parse_reported_results(text: str) -> set[tuple]:
    """(task, model, set, setting, metric, value) of every number of the section, by its own reading."""
    cells = set()
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table_lines[0].strip("|").split("|")]
    for line in table_lines[2:]:
        row = [c.strip() for c in line.strip("|").split("|")]
        model = re.sub(r"\s*\(.*\)", "", row[0])
        for set_name, pair in zip(header[1:], row[1:]):
            accuracy, f1 = (float(v) for v in pair.split(" / "))
            cells |= {("zero-shot", model, SETS[set_name], "", "accuracy", accuracy),
                      ("zero-shot", model, SETS[set_name], "", "macro_f1", f1)}
    paragraphs = text.split("\n\n")
    retrieval = next(p for p in paragraphs if p.startswith("Retrieval on CheXpert 8x200"))
    for clause in retrieval.split(":", 1)[1].split(";"):
        model = clause.split()[0]
        named = [DIRECTIONS[d] for d in re.findall(r"image->text|text->image", clause)]
        triples = re.findall(TRIPLE, clause)
        directions = named if len(named) == len(triples) else ["image_to_text", "text_to_image"]
        for direction, triple in zip(directions, triples, strict=True):
            cells |= {("retrieval", model, "CheXpert 8x200", direction, f"P@{k}", float(v))
                      for k, v in zip((1, 5, 10), triple)}
    probe = next(p for p in paragraphs if p.startswith("Linear probe AUROC"))
    for clause in probe.split("labels:", 1)[1].split(";"):
        model = clause.split()[0]
        for set_name, *values in re.findall(rf"(CheXpert|RSNA|SIIM) {TRIPLE}", clause):
            cells |= {("linear probe", model, set_name, labels, "auroc", float(v))
                      for labels, v in zip(("1%", "10%", "100%"), values)}
    for label, *values in re.findall(rf"^- (.+?): {PAIR} \| {PAIR} \| {PAIR}", text, flags=re.M):
        gaze = re.search(r"(\d+) % (?:of studies )?\(([\d,]+)\)", label)
        if gaze:
            task, model = "gaze fraction", "EGMA"
            setting = gaze_setting(int(gaze.group(1)) / 100, int(gaze.group(2).replace(",", "")))
        else:
            task, model, setting = "ablation", label, ""
        for set_name, (accuracy, f1) in zip(("CheXpert 5x200", "RSNA", "SIIM"), zip(values[::2], values[1::2])):
            cells |= {(task, model, set_name, setting, "accuracy", float(accuracy)),
                      (task, model, set_name, setting, "macro_f1", float(f1))}
    return cells


def test_the_verbatim_copy_is_paper_facts_own_section():
    found = [path for path in PAPER_FACTS_CANDIDATES if path.exists()]
    for path in found:
        assert reported_results_section(path.read_text()) == REPORTED_RESULTS, f"{path} changed; update the copy"
    assert reported_results_section(REPORTED_RESULTS + "\n## next\n") == REPORTED_RESULTS


def test_every_paper_number_matches_paper_facts():
    ours = paper_results()
    records = {(r.task, r.model, r.set, r.setting, r.metric, r.value) for r in ours.itertuples()}
    parsed = parse_reported_results(REPORTED_RESULTS)
    assert len(parsed) == len(ours) == 126
    assert records == parsed, (sorted(records - parsed)[:5], sorted(parsed - records)[:5])


def test_paper_table_names_tables_and_gaze_fractions():
    paper = paper_results()
    assert paper.groupby("task")["table"].unique().map(list).to_dict() == {
        "linear probe": ["Table 1"], "zero-shot": ["Table 2"], "retrieval": ["Table 3"],
        "ablation": ["Table 4"], "gaze fraction": ["Table 4"]}
    gaze = paper[paper["task"] == "gaze fraction"]
    assert sorted(gaze["gaze_fraction"].unique()) == [0.01, 0.05, 0.10, 0.50]
    assert (gaze["setting"].str.extract(r"on (\d+) %")[0].astype(int) / 100 == gaze["gaze_fraction"]).all()
    assert paper.loc[paper["task"] != "gaze fraction", "gaze_fraction"].isna().all()
    # Table 4's baseline row is the MedCLIP row of Table 2, and its EGMA row Table 2's EGMA row
    for label, model in ((sb.ABLATION_BASELINE, "MedCLIP"), ("EGF + EGM (EGMA)", "EGMA")):
        a = paper[(paper["task"] == "ablation") & (paper["model"] == label)].set_index(["set", "metric"])["value"]
        z = paper[(paper["task"] == "zero-shot") & (paper["model"] == model)].set_index(["set", "metric"])["value"]
        pd.testing.assert_series_equal(a, z)
    assert set(paper.loc[paper["task"] == "ablation", "model"]) == {sb.ABLATION_BASELINE, *sb.ABLATION_VARIANT}


# --- majority baselines ---------------------------------------------------------------------------

@pytest.mark.parametrize("counts", [(7697, 2303), (200,) * 5, (25, 5), (3, 9, 4), (10, 10)])
def test_majority_scores_equal_sklearn_on_an_all_majority_predictor(counts):
    y = np.repeat(np.arange(len(counts)), counts)
    predicted = np.full_like(y, int(np.argmax(counts)))
    accuracy, macro_f1 = sb.majority_scores(counts)
    assert accuracy == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    assert macro_f1 == pytest.approx(f1_score(y, predicted, average="macro", zero_division=0), abs=1e-12)


def test_the_papers_rsna_score_is_the_majority_predictor_of_a_7697_percent_normal_set():
    accuracy, macro_f1 = sb.majority_scores((7697, 2303))
    assert (round(100 * accuracy, 2), round(100 * macro_f1, 2)) == (76.97, 43.49)
    # and back: the shares whose majority F1 rounds to the paper's 43.49 include its accuracy 76.97
    low, high = (sb.majority_share_from_macro_f1(f1) for f1 in (0.43485, 0.43495))
    assert low <= 0.7697 <= high and high - low < 4e-4
    for share in np.random.default_rng(0).uniform(0.3, 0.99, 20):
        n = 5
        counts = (share, *[(1 - share) / (n - 1)] * (n - 1))
        if share > max(counts[1:]):
            assert sb.majority_share_from_macro_f1(sb.majority_scores(counts)[1], n) == pytest.approx(share)
    with pytest.raises(ValueError):
        sb.majority_scores((10,))
    with pytest.raises(ValueError):
        sb.majority_share_from_macro_f1(0.6)


def test_real_label_files_have_the_documented_composition():
    counts = sb.shipped_label_counts()
    assert sum(counts["RSNA"]) == 26684 and counts["SIIM"] == (12047 - 2669, 2669)
    table = sb.real_majority_baselines(counts).set_index(["set", "metric"])["value"]
    assert table["RSNA", "accuracy"] == pytest.approx(100 * counts["RSNA"][0] / 26684)
    assert table["CheXpert 5x200", "macro_f1"] == pytest.approx(100 / 15)
    assert table["CheXpert 8x200", "P@10"] == 12.5 and table["SIIM", "auroc"] == 50


# --- the join ---------------------------------------------------------------------------------------

VALUES = {"trained": 0.61, "untrained": 0.55, "majority": 0.8, "random": 0.3}   # minus 0.01 per set/metric: distinct


def _value(predictor, i):
    return VALUES[predictor] - 0.01 * i


def write_results(run_dir: Path, ablations: pd.DataFrame | None = None):
    (run_dir / "evaluation").mkdir(parents=True)
    zero_shot = [(p, m, _value(p, i), _value(p, i) - 0.05, _value(p, i) + 0.05, s)
                 for i, (s, m) in enumerate((s, m) for s in ("CheXpert 5x200", "RSNA", "SIIM")
                                            for m in ("accuracy", "macro_f1", "auroc"))
                 for p in ("untrained", "majority", "trained")]
    pd.DataFrame(zero_shot, columns=["predictor", "metric", "value", "ci_low", "ci_high", "set"]).to_csv(
        run_dir / "evaluation" / "zero_shot.csv", index=False)
    retrieval = [(d, k, p, _value(p, k), 0.0, 1.0) for d in ("image_to_text", "text_to_image")
                 for k in range(1, 11) for p in ("trained", "untrained", "majority", "random")]
    pd.DataFrame(retrieval, columns=["direction", "k", "predictor", "value", "ci_low", "ci_high"]).to_csv(
        run_dir / "evaluation" / "retrieval.csv", index=False)
    probe = [(f, _value(m, i), 0.01, _value(m, i) - 0.1, _value(m, i) + 0.1, 5, m, s, f"{f:.0%}")
             for m in ("trained", "untrained") for i, (s, f) in enumerate(
                 (s, f) for s in ("CheXpert", "RSNA", "SIIM") for f in (0.01, 0.1, 1.0))]
    pd.DataFrame(probe, columns=["fraction", "value", "std", "ci_low", "ci_high", "n_seeds", "model", "set",
                                 "labels"]).to_csv(run_dir / "evaluation" / "linear_probe.csv", index=False)
    if ablations is not None:
        (run_dir / "ablations").mkdir()
        ablations.to_csv(run_dir / "ablations" / "summary.csv", index=False)


def fake_summary() -> pd.DataFrame:
    """Chapter 7's summary.csv: grid variants, then its reference rows (loss "none", no gaze fraction)."""
    rows = [("egma", "egma", 1.0, "chexpert_5x200", "macro_f1", 0.42, 0.40, 0.44, 3),
            ("egma", "egma", 1.0, "retrieval_8x200_image_to_text", "precision_at_5", 0.2, 0.1, 0.3, 3),
            ("mlce", "mlce", 1.0, "chexpert_5x200", "accuracy", 0.33, 0.30, 0.36, 3),
            ("egma_gaze10", "egma", 0.1, "chexpert_5x200", "macro_f1", 0.27, 0.25, 0.29, 2),
            ("clip", "clip", 1.0, "chexpert_5x200", "accuracy", 0.5, 0.4, 0.6, 3),
            ("untrained", "none", np.nan, "chexpert_5x200", "accuracy", 0.21, 0.19, 0.23, 3),
            ("majority", "none", np.nan, "chexpert_5x200", "macro_f1", 0.0667, 0.05, 0.08, 0)]
    return pd.DataFrame(rows, columns=["variant", "loss", "gaze_fraction", "task", "metric", "value", "ci_low",
                                       "ci_high", "n_seeds"])


def board_for(run_dir: Path, data: str = "phantom", preset: str = "ci", init_is_medclip: bool = False) -> pd.DataFrame:
    provenance = {c: sb.Provenance(c, preset, data, {"RSNA": 30, "CheXpert 5x200": 200}) for c in (5, 6, 7)}
    commands = {c: f"command {c}" for c in (5, 6, 7)}
    majority = sb.real_majority_baselines({"RSNA": (3, 1), "SIIM": (4, 1)})
    return sb.build_scoreboard(sb.load_results(run_dir), provenance, commands, preset, majority,
                               init_is_medclip=init_is_medclip)


def cell(board, task, model, set_name, metric, setting=""):
    rows = board[(board["task"] == task) & (board["model"] == model) & (board["set"] == set_name)
                 & (board["metric"] == metric) & (board["setting"] == setting)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_scoreboard_joins_chapter_5_and_6_results_without_chapter_7(tmp_path):
    write_results(tmp_path)
    board = board_for(tmp_path)
    assert len(board) == len(paper_results())
    egma = cell(board, "zero-shot", "EGMA", "RSNA", "macro_f1")
    i = 4   # RSNA macro_f1 is the fifth (set, metric) pair written
    assert (egma["paper"], egma["ours"], egma["ci_low"], egma["ci_high"]) == pytest.approx(
        (43.49, 100 * _value("trained", i), 100 * _value("trained", i) - 5, 100 * _value("trained", i) + 5))
    assert egma["majority"] == pytest.approx(100 * _value("majority", i))
    assert egma["real_majority"] == pytest.approx(100 * sb.majority_scores((3, 1))[1])
    assert egma["status"] == sb.REPRODUCED_PHANTOM and egma["command"] == "command 5"
    assert egma["data"] == "phantom, preset ci, 30 test images" and egma["source"] == "evaluation/zero_shot.csv"
    medclip = cell(board, "zero-shot", "MedCLIP", "RSNA", "macro_f1")
    assert medclip["ours"] == pytest.approx(100 * _value("untrained", i))
    retrieval = cell(board, "retrieval", "EGMA", "CheXpert 8x200", "P@5", "text_to_image")
    assert retrieval["ours"] == pytest.approx(100 * _value("trained", 5))
    assert retrieval["majority"] == pytest.approx(100 * _value("majority", 5))
    probe = cell(board, "linear probe", "MedCLIP", "SIIM", "auroc", "10%")
    assert probe["ours"] == pytest.approx(100 * _value("untrained", 7)) and probe["n_seeds"] == 5
    assert probe["majority"] == 50 and probe["command"] == "command 6" and probe["data"].endswith(", 5 seeds")
    # the ablation baseline is chapter 5's untrained model; the rest of Table 4 waits for chapter 7
    baseline = cell(board, "ablation", sb.ABLATION_BASELINE, "RSNA", "macro_f1")
    assert baseline["ours"] == medclip["ours"] and baseline["status"] == sb.REPRODUCED_PHANTOM
    chapter_7 = board[(board["task"].isin(["ablation", "gaze fraction"])) & (board["model"] != sb.ABLATION_BASELINE)]
    assert len(chapter_7) == 48 and (chapter_7["status"] == sb.NOT_RUN).all() and chapter_7["ours"].isna().all()
    assert chapter_7["majority"].notna().all()   # chapter 5 scored the same sets
    assert chapter_7["reason"].str.contains("chapter 7 has not run").all()
    assert chapter_7["reason"].str.contains("--preset ci --chapters 7", regex=False).all()
    assert (chapter_7["command"] == "command 7").all()
    others = board[~board["model"].isin(["EGMA", "MedCLIP"]) & board["task"].isin(["zero-shot", "retrieval",
                                                                                    "linear probe"])]
    assert len(others) == 30 and (others["status"] == sb.NOT_COMPARABLE).all() and (others["command"] == "").all()
    counts = sb.status_counts(board)
    assert list(counts.columns) == [*sb.STATUSES, "cells"]
    assert counts.loc[("all", ""), "cells"] == len(board)
    assert counts.loc[("all", ""), sb.NOT_RUN] == 48 and counts.loc[("all", ""), sb.NOT_COMPARABLE] == 30


def test_scoreboard_reads_chapter_7_summary_and_says_what_the_preset_lacks(tmp_path):
    write_results(tmp_path, fake_summary())
    board = board_for(tmp_path)
    egma = cell(board, "ablation", "EGF + EGM (EGMA)", "CheXpert 5x200", "macro_f1")
    assert (egma["ours"], egma["ci_low"], egma["ci_high"], egma["n_seeds"]) == pytest.approx((42, 40, 44, 3))
    assert egma["status"] == sb.REPRODUCED_PHANTOM and egma["source"] == "ablations/summary.csv"
    assert egma["majority"] == pytest.approx(6.67)            # chapter 7's own majority row
    mlce = cell(board, "ablation", "MLCE only", "CheXpert 5x200", "accuracy")
    assert mlce["ours"] == pytest.approx(33)
    assert mlce["majority"] == pytest.approx(100 * _value("majority", 0))   # none there: chapter 5's
    tenth = cell(board, "gaze fraction", "EGMA", "CheXpert 5x200", "macro_f1", gaze_setting(0.1, 370))
    assert tenth["ours"] == pytest.approx(27) and tenth["n_seeds"] == 2
    one_percent = cell(board, "gaze fraction", "EGMA", "CheXpert 5x200", "accuracy", gaze_setting(0.01, 37))
    assert one_percent["status"] == sb.NOT_RUN and one_percent["command"] == "command 7"
    assert "preset ci's chapter-7 grid has no egma at gaze fraction 0.01" in one_percent["reason"]
    assert one_percent["reason"].endswith(
        "`python -m egma.book run --preset ci --chapters 7 --param ablation_gaze_fractions=[0.0,0.01,0.1,1.0]`")
    missing_row = cell(board, "ablation", "EGM", "CheXpert 5x200", "accuracy")
    assert missing_row["status"] == sb.NOT_RUN and "no row" in missing_row["reason"]
    # chapter 7 scores no zero-shot RSNA/SIIM: those cells cannot be filled, only the baseline (chapter 5) can
    never = board[board["task"].isin(["ablation", "gaze fraction"]) & board["set"].isin(["RSNA", "SIIM"])
                  & (board["model"] != sb.ABLATION_BASELINE)]
    assert len(never) == 32 and (never["status"] == sb.NOT_COMPARABLE).all() and (never["command"] == "").all()
    assert never["reason"].str.startswith("chapter 7 does not score").all()
    assert cell(board, "ablation", sb.ABLATION_BASELINE, "RSNA", "accuracy")["status"] == sb.REPRODUCED_PHANTOM
    # measured on real data: comparable, nothing left to run
    real = board_for(tmp_path, data="real")
    assert cell(real, "ablation", "EGF + EGM (EGMA)", "CheXpert 5x200", "macro_f1")["status"] == sb.REPRODUCED_REAL
    assert (real.loc[real["status"] == sb.REPRODUCED_REAL, "command"] == "").all()
    # ... except where the untrained model stands in for MedCLIP without MedCLIP's weights
    for board, status in ((real, sb.NOT_COMPARABLE), (board_for(tmp_path, "real", init_is_medclip=True),
                                                      sb.REPRODUCED_REAL)):
        for task, model in (("zero-shot", "MedCLIP"), ("ablation", sb.ABLATION_BASELINE)):
            assert cell(board, task, model, "RSNA", "accuracy")["status"] == status
    assert cell(board_for(tmp_path), "zero-shot", "MedCLIP", "RSNA", "accuracy")["reason"].startswith("stand-in")


def test_the_summary_contracts_mean_column_and_other_spellings_are_accepted(tmp_path):
    summary = pd.DataFrame([("EGMA, all gaze", "egma", 1.0, "SIIM-ACR", "F1", 0.42, 0.40, 0.44, 3)],
                           columns=["variant", "loss", "gaze_fraction", "task", "metric", "mean", "ci_low",
                                    "ci_high", "n_seeds"])
    write_results(tmp_path, summary)
    assert sb.load_results(tmp_path)["ablations"]["value"].tolist() == [0.42]
    assert cell(board_for(tmp_path), "ablation", "EGF + EGM (EGMA)", "SIIM", "macro_f1")["ours"] == pytest.approx(42)


def test_a_result_file_without_a_column_names_file_and_column(tmp_path):
    write_results(tmp_path, fake_summary().drop(columns=["n_seeds"]))
    with pytest.raises(DataFormatError, match=r"summary.csv, column 'n_seeds'"):
        sb.load_results(tmp_path)


def test_effect_directions_compare_signs_through_paired_verdicts(tmp_path):
    tables = {"zero_shot_differences": pd.DataFrame({
        "metric": ["accuracy", "macro_f1", "accuracy"], "value": [0.05, -0.04, 0.01],
        "ci_low": [0.01, -0.08, -0.02], "ci_high": [0.09, -0.01, 0.03],
        "verdict": ["better", "worse", "no clear difference"], "set": ["CheXpert 5x200", "CheXpert 5x200", "SIIM"]})}
    provenance = {5: sb.Provenance(5, "ci", "phantom", {"SIIM": 30})}
    directions = sb.effect_directions(tables, provenance).set_index(["task", "set", "setting", "metric"])
    assert len(directions) == 6 + 6 + 9   # EGMA and MedCLIP both in Tables 2, 3 and 1
    assert directions.loc[("zero-shot", "CheXpert 5x200", "", "accuracy"), "paper_delta"] == pytest.approx(3.8)
    assert directions.loc[("zero-shot", "CheXpert 5x200", "", "accuracy"), "agreement"] == "same direction"
    assert directions.loc[("zero-shot", "CheXpert 5x200", "", "macro_f1"), "agreement"] == "opposite direction"
    siim = directions.loc[("zero-shot", "SIIM", "", "accuracy")]
    assert siim["agreement"].startswith("unresolved") and siim["ours"] == pytest.approx(1.0)
    assert siim["data"] == "phantom, preset ci, 30 test images"
    assert directions.loc[("retrieval", "CheXpert 8x200", "image_to_text", "P@1"), "agreement"] == sb.NOT_RUN
    assert sb.agreement(-1.0, "worse") == "same direction" and sb.agreement(2.0, None) == sb.NOT_RUN


# --- provenance ---------------------------------------------------------------------------------------

def test_provenance_prefers_the_parameters_papermill_recorded_for_this_run_dir(tmp_path):
    sources = sb.chapter_sources()
    executed = tmp_path / "_executed"
    executed.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["papermill"] = {"parameters": {"preset": "small", "run_dir": str(tmp_path / "runs"),
                                                     "data_root": "/elsewhere", "rsna_root": "/real/rsna"}}
    nbformat.write(notebook, executed / f"{sources[5].stem}.ipynb")
    fallback = {"preset": "ci", "run_dir": str(tmp_path / "runs"), "data_root": "/mine"}
    parameters, recorded = sb.chapter_parameters(5, tmp_path / "runs", executed, fallback, sources)
    assert recorded and parameters["preset"] == "small" and parameters["rsna_root"] == "/real/rsna"
    assert parameters["binary_split"] == "test"   # the chapter's own default fills what was not passed
    other, recorded = sb.chapter_parameters(5, tmp_path / "other_run", executed, fallback, sources)
    assert not recorded and other["data_root"] == "/mine"
    assert sb.chapter_parameters(6, tmp_path / "runs", executed, fallback, sources)[1] is False


def test_phantom_trees_are_recognised_by_their_truth_folder(tmp_path):
    (tmp_path / "phantom" / "phantom_truth").mkdir(parents=True)
    (tmp_path / "phantom" / "rsna").mkdir()
    (tmp_path / "real" / "rsna").mkdir(parents=True)
    assert sb.is_phantom(tmp_path / "phantom" / "rsna") and not sb.is_phantom(tmp_path / "real" / "rsna")
    roots = sb.dataset_roots({"data_root": tmp_path / "phantom", "rsna_root": tmp_path / "real" / "rsna"})
    assert roots["siim"] == tmp_path / "phantom" / "siim" and roots["rsna"] == tmp_path / "real" / "rsna"
    assert sb.data_kind(roots) == "phantom + real"
    assert sb.Provenance(6, "paper", "real", {"RSNA": 4003}).describe("RSNA") == "real, preset paper, 4,003 test images"


# --- commands -------------------------------------------------------------------------------------------

def notebook_parameters(source: Path) -> set[str]:
    """Names assigned in the chapter's cell tagged `parameters`, read through jupytext."""
    cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{source}: one parameters cell expected"
    return {t.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


@pytest.mark.parametrize("chapter", [c for c in (5, 6, 7) if c in sb.chapter_sources()])
def test_fill_commands_name_only_parameters_of_the_chapters_parameters_cell(chapter):
    sources = sb.chapter_sources()
    known = notebook_parameters(sources[chapter])
    assert set(sb.parameters_cell(sources[chapter])) == known
    command = sb.fill_command(chapter, sources)
    named = set(re.findall(r"--param (\w+)=", command))
    assert named == known & set(sb.REAL_DATA_PARAMETERS)
    assert {"data_root", "chexpert_root", "rsna_root", "siim_root"} <= named   # every dataset is pointed at
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "egma.book"]
    args = book._parse_args(words[3:])   # the book's own parser accepts it
    assert args.command == "run" and args.preset == "paper" and args.chapters == [1, 2, 3, 4, chapter]
    assert all(value != "" for _, value in args.param)


def test_a_chapter_not_in_the_book_gets_every_real_data_parameter():
    sources = {n: s for n, s in sb.chapter_sources().items() if n != 7}
    assert sb.fill_command(7, sources).endswith(" ".join(f"--param {k}={v}"
                                                         for k, v in sb.REAL_DATA_PARAMETERS.items()))


def test_board_view_shows_ours_with_its_interval_and_the_command_label(tmp_path):
    write_results(tmp_path)
    board = board_for(tmp_path)
    view = sb.board_view(board[board["task"] == "linear probe"])
    row = view[(view["model / row"] == "EGMA") & (view["set"] == "RSNA") & (view["setting"] == "1%")].iloc[0]
    v = 100 * _value("trained", 3)
    assert row["ours [95 % CI]"] == f"{v:.1f} [{v - 10:.1f}, {v + 10:.1f}]"
    assert row["paper"] == "88.41" and row["why / real-data command"].endswith("[R6]")
    html = sb.styled(view, "caption").to_html()
    assert sb.STATUS_COLOURS[sb.REPRODUCED_PHANTOM] in html and sb.STATUS_COLOURS[sb.NOT_COMPARABLE] in html


def test_provenance_table_lists_every_chapter_with_what_it_left(tmp_path):
    write_results(tmp_path)
    tables = sb.load_results(tmp_path)
    assert sb.files_of_chapter(tables, 5) == ["zero_shot", "retrieval"] and sb.files_of_chapter(tables, 7) == []
    table = sb.provenance_table(tables, {5: sb.Provenance(5, "ci", "phantom", {"RSNA": 30}, recorded=True)},
                                {5: Path("05.py")}).set_index("chapter")
    assert list(table.index) == [5, 6, 7]
    assert table.loc[5, "parameters"] == "recorded" and table.loc[5, "test images"] == "RSNA 30"
    assert table.loc[6, "results in run_dir"] == "linear_probe" and table.loc[6, "data"] == ""
    assert table.loc[7, "results in run_dir"] == "none" and not table.loc[7, "in the book"]
