"""The reproduction scoreboard (chapter 9): each number the paper publishes beside the book's measurement of it.

A cell of the scoreboard is one published number (egma.paper_results) joined with what the book's
chapters wrote to `run_dir`: chapter 5's `evaluation/zero_shot.csv` and `retrieval.csv`, chapter 6's
`evaluation/linear_probe.csv`, chapter 7's `ablations/summary.csv`. Beside it stand the 95 % interval,
the majority-class baseline of the same test items, where the measurement came from (phantom or real
data, preset, test images; `Provenance`) and a status:

- "reproduced on real data": measured on the datasets the paper used, so the values can be compared;
- "reproduced on phantom": measured, but on the phantom sets, so only directions and baselines compare;
- "not run": nothing in run_dir yet; the reason says which chapter would write it;
- "not comparable": a model the book does not implement (the paper's baselines), shown for context.

Every comparable cell not measured on real data carries the exact `python -m egma.book` command that
measures it on real data; its `--param` names are read from the chapter's own parameters cell.
"""
from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd

from egma.book import REPO_ROOT, find_chapters
from egma.config import PRESETS, Preset
from egma.datasets import read_chexpert, read_chexpert_5x200, read_chexpert_8x200, read_rsna, read_siim
from egma.datasets.errors import DataFormatError
from egma.evaluation.report import estimate_text
from egma.paper_results import ZERO_SHOT_METRICS, paper_results

REPRODUCED_REAL = "reproduced on real data"
REPRODUCED_PHANTOM = "reproduced on phantom"
NOT_RUN = "not run"
NOT_COMPARABLE = "not comparable"
STATUSES = (REPRODUCED_REAL, REPRODUCED_PHANTOM, NOT_RUN, NOT_COMPARABLE)

# The book's predictor that stands where a paper model stands. EGMA is chapter 4's pretrained model;
# MedCLIP, EGMA's initialisation, is the same architecture before that pretraining (the `untrained`
# model of chapters 5 and 6, which is MedCLIP itself when model.medclip_checkpoint is set).
BOOK_PREDICTOR = {"EGMA": "trained", "MedCLIP": "untrained"}
# Table 4's rows as chapter 7's (loss, gaze_fraction); its baseline is the MedCLIP row, i.e. `untrained`.
ABLATION_BASELINE = "Baseline (MedCLIP init)"
ABLATION_VARIANT = {"MLCE only": ("mlce", 1.0), "EGF": ("egf", 1.0), "EGM": ("egm", 1.0),
                    "EGF + EGM (EGMA)": ("egma", 1.0)}
STAND_IN_ROWS = ("MedCLIP", ABLATION_BASELINE)   # rows the untrained model stands in for
CHAPTER_OF_TASK = {"zero-shot": 5, "retrieval": 5, "linear probe": 6, "ablation": 7, "gaze fraction": 7}


@dataclass(frozen=True)
class ResultFile:
    chapter: int
    path: str                  # inside run_dir
    columns: tuple[str, ...]   # the columns the scoreboard reads
    renames: Mapping[str, str] = field(default_factory=dict)   # other spellings accepted for them


RESULT_FILES = {
    "zero_shot": ResultFile(5, "evaluation/zero_shot.csv",
                            ("predictor", "metric", "value", "ci_low", "ci_high", "set")),
    "zero_shot_differences": ResultFile(5, "evaluation/zero_shot_differences.csv",
                                        ("metric", "value", "ci_low", "ci_high", "verdict", "set")),
    "retrieval": ResultFile(5, "evaluation/retrieval.csv",
                            ("direction", "k", "predictor", "value", "ci_low", "ci_high")),
    "retrieval_differences": ResultFile(5, "evaluation/retrieval_differences.csv",
                                        ("direction", "k", "value", "ci_low", "ci_high", "verdict")),
    "linear_probe": ResultFile(6, "evaluation/linear_probe.csv",
                               ("labels", "value", "ci_low", "ci_high", "n_seeds", "model", "set")),
    "linear_probe_differences": ResultFile(6, "evaluation/linear_probe_differences.csv",
                                           ("labels", "value", "ci_low", "ci_high", "verdict", "set")),
    "ablations": ResultFile(7, "ablations/summary.csv", ("variant", "loss", "gaze_fraction", "task", "metric", "value",
                                                        "ci_low", "ci_high", "n_seeds"), {"mean": "value"}),
}
TASK_FILE = {"zero-shot": "zero_shot", "retrieval": "retrieval", "linear probe": "linear_probe",
             "ablation": "ablations", "gaze fraction": "ablations"}

# Real-data placeholders of the fill commands. A real data_root must hold mimic-eye/ (the patient_* folders):
# chapter 1 treats a data_root without it as a phantom to generate.
REAL_DATA_PARAMETERS = {"data_root": "/data/egma", "chexpert_root": "/data/CheXpert-v1.0",
                        "chexpert_8x200_csv": "train.csv", "rsna_root": "/data/rsna-pneumonia",
                        "siim_root": "/data/siim-acr"}
PREREQUISITE_CHAPTERS = (1, 2, 3, 4)   # data, gaze cache, model, pretraining: what every evaluation reads


# ------------------------------------------------------------------------------------------ results

def load_results(run_dir: str | Path) -> dict[str, pd.DataFrame | None]:
    """Every RESULT_FILES table of a run directory; None for a file not written yet (its chapter has not run)."""
    run_dir = Path(run_dir)
    tables: dict[str, pd.DataFrame | None] = {}
    for name, spec in RESULT_FILES.items():
        path = run_dir / spec.path
        if not path.exists():
            tables[name] = None
            continue
        table = pd.read_csv(path).rename(columns=spec.renames)
        missing = [c for c in spec.columns if c not in table.columns]
        if missing:
            raise DataFormatError(path, f"chapter {spec.chapter} writes columns {list(spec.columns)}; "
                                        f"this file lacks {missing}", column=missing[0])
        tables[name] = table
    return tables


# ------------------------------------------------------------------------------------------ majority baselines

def majority_scores(class_counts: Sequence[int]) -> tuple[float, float]:
    """(accuracy, macro-F1) of answering the most frequent class for every item of a set with these counts.

    Accuracy is the majority share p; that class has precision p and recall 1, so F1 = 2p / (1 + p);
    every other class is never predicted (F1 0), so the macro mean is 2p / ((1 + p) C).
    """
    counts = np.asarray(class_counts, dtype=float)
    if counts.ndim != 1 or len(counts) < 2 or (counts < 0).any() or counts.sum() == 0:
        raise ValueError(f"need two or more non-negative class counts, got {class_counts!r}")
    share = counts.max() / counts.sum()
    return float(share), float(2 * share / (1 + share) / len(counts))


def majority_share_from_macro_f1(macro_f1: float, n_classes: int = 2) -> float:
    """The majority share p whose all-majority predictor has this macro-F1 (inverse of majority_scores)."""
    scaled = macro_f1 * n_classes   # = 2p / (1 + p), which is at most 1
    share = scaled / (2 - scaled) if scaled < 2 else np.inf
    if not 1 / n_classes <= share <= 1:
        raise ValueError(f"no majority share gives macro-F1 {macro_f1} over {n_classes} classes")
    return float(share)


def shipped_label_counts() -> dict[str, tuple[int, int]]:
    """(negative, positive) images of the real RSNA Pneumonia and SIIM-ACR training labels that
    torchxrayvision ships (the label files only, no images)."""
    from egma.phantom.assets import data_dir
    rsna = pd.read_csv(os.path.join(data_dir(), "kaggle_stage_2_train_labels.csv.zip"))
    pneumonia = rsna.groupby("patientId")["Target"].max()
    siim = pd.read_csv(os.path.join(data_dir(), "siim-pneumothorax-train-rle.csv.gz"))
    siim.columns = siim.columns.str.strip()   # the real header is "ImageId, EncodedPixels"
    pneumothorax = siim["EncodedPixels"].astype(str).str.strip().ne("-1").groupby(siim["ImageId"]).any()
    return {"RSNA": (int((pneumonia == 0).sum()), int((pneumonia == 1).sum())),
            "SIIM": (int((~pneumothorax).sum()), int(pneumothorax.sum()))}


def real_majority_baselines(label_counts: Mapping[str, tuple[int, int]] | None = None) -> pd.DataFrame:
    """What always answering the majority class scores on the paper's real sets, in percent.

    CheXpert 5x200 is 200 images per class by construction; RSNA and SIIM use the composition of the real
    label files (`shipped_label_counts`; the paper's test splits are not published, a random 15 % split has
    nearly the same share); retrieval's 8 balanced classes give 1/8 at every K; a constant score has AUROC 50.
    Columns: set, metric, value, basis.
    """
    counts = {"CheXpert 5x200": (200,) * 5, **(label_counts or shipped_label_counts())}
    rows = []
    for set_name, per_class in counts.items():
        basis = (f"{len(per_class)} x {per_class[0]} images" if len(set(per_class)) == 1
                 else f"{sum(per_class):,} real images, {max(per_class) / sum(per_class):.2%} in the majority class")
        rows += [(set_name, metric, 100 * value, basis)
                 for metric, value in zip(ZERO_SHOT_METRICS, majority_scores(per_class))]
    rows += [("CheXpert 8x200", f"P@{k}", 100 / 8, "8 x 200 images") for k in (1, 5, 10)]
    rows += [(s, "auroc", 50.0, "constant score") for s in ("CheXpert", "RSNA", "SIIM")]
    return pd.DataFrame(rows, columns=["set", "metric", "value", "basis"])


# ------------------------------------------------------------------------------------------ chapters and parameters

def chapter_sources(notebooks_dir: str | Path = REPO_ROOT / "notebooks") -> dict[int, Path]:
    """Chapter number -> its notebooks/NN_name.py source."""
    return {c.number: c.source for c in find_chapters(Path(notebooks_dir))}


def parameters_cell(source: str | Path) -> dict[str, object]:
    """The names and literal values assigned in a py:percent chapter's cell tagged `parameters`."""
    source = Path(source)
    lines = source.read_text().splitlines()
    starts = [i for i, line in enumerate(lines)
              if line.startswith("# %%") and re.search(r"tags=\[[^]]*\bparameters\b", line)]
    if not starts:
        raise ValueError(f"{source}: no cell tagged `parameters`")
    body = []
    for line in lines[starts[0] + 1:]:
        if line.startswith("# %%"):
            break
        body.append(line)
    return {target.id: ast.literal_eval(node.value) for node in ast.parse("\n".join(body), str(source)).body
            if isinstance(node, ast.Assign) for target in node.targets if isinstance(target, ast.Name)}


def recorded_parameters(executed_notebook: str | Path) -> dict[str, object] | None:
    """The parameters papermill injected into an executed chapter (None when it has not been executed)."""
    path = Path(executed_notebook)
    if not path.exists():
        return None
    return dict(nbformat.read(path, as_version=4).metadata.get("papermill", {}).get("parameters") or {})


def _same_path(a, b) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def chapter_parameters(chapter: int, run_dir: str | Path, executed_dir: str | Path,
                       fallback: Mapping[str, object], sources: Mapping[int, Path]) -> tuple[dict[str, object], bool]:
    """The parameters a chapter ran with: its parameters cell's defaults, overridden by what papermill recorded in
    `executed_dir/NN_name.ipynb` when that run wrote to this `run_dir` (second item True), else by `fallback`
    (this chapter's own parameters: an assumption, second item False)."""
    source = sources.get(chapter)
    defaults = parameters_cell(source) if source else {}
    recorded = recorded_parameters(Path(executed_dir) / f"{source.stem}.ipynb") if source else None
    if recorded is not None and _same_path(recorded.get("run_dir"), run_dir):
        return {**defaults, **recorded}, True
    return {**defaults, **fallback}, False


def dataset_roots(parameters: Mapping[str, object]) -> dict[str, Path]:
    """The downstream dataset folders chapters 5-7 read: their `*_root` parameter, or the phantom's folder
    under `data_root` (the chapters' own default rule)."""
    data_root = Path(parameters["data_root"])
    defaults = {"chexpert": data_root / "chexpert" / "CheXpert-v1.0-small", "rsna": data_root / "rsna",
                "siim": data_root / "siim"}
    return {name: Path(parameters[f"{name}_root"]) if parameters.get(f"{name}_root") else default
            for name, default in defaults.items()}


def is_phantom(path: str | Path) -> bool:
    """True for a folder inside a phantom tree (one whose root holds the generator's phantom_truth/)."""
    path = Path(path).resolve()
    return any((folder / "phantom_truth").is_dir() for folder in (path, *path.parents))


def data_kind(roots: Mapping[str, Path]) -> str:
    """"phantom", "real" or "phantom + real" for a set of dataset folders."""
    kinds = {"phantom" if is_phantom(root) else "real" for root in roots.values()}
    return " + ".join(sorted(kinds))


def evaluation_set_sizes(chapter: int, parameters: Mapping[str, object], preset: Preset) -> dict[str, int]:
    """Test images of each set a chapter scores, read (labels only) exactly as the chapter reads them."""
    roots = dataset_roots(parameters)
    five_by_200 = {"CheXpert 5x200": len(read_chexpert_5x200(roots["chexpert"], "chexpert_5x200.csv",
                                                             n_per_class=preset.phantom.n_per_class_5x200))}
    if chapter == 7:   # its one zero-shot classification set (egma.ablation_tasks.load_sets)
        return five_by_200
    rsna, siim = read_rsna(roots["rsna"]), read_siim(roots["siim"])
    if chapter == 6:
        return {"CheXpert": len(read_chexpert(roots["chexpert"], "valid.csv")),
                "RSNA": len(rsna.split("test")), "SIIM": len(siim.split("test"))}
    split = parameters.get("binary_split", "test")
    eight_by_200 = read_chexpert_8x200(roots["chexpert"], parameters.get("chexpert_8x200_csv", "chexpert_8x200.csv"),
                                       n_per_class=preset.phantom.n_per_class_8x200)
    return {**five_by_200, "RSNA": len(rsna if split == "all" else rsna.split(split)),
            "SIIM": len(siim if split == "all" else siim.split(split)), "CheXpert 8x200": len(eight_by_200)}


@dataclass(frozen=True)
class Provenance:
    """Where one chapter's results came from."""
    chapter: int
    preset: str
    data: str                                   # "phantom", "real" or "phantom + real"
    n_images: Mapping[str, int] = field(default_factory=dict)   # evaluation set -> test images
    recorded: bool = False                      # parameters read from the executed notebook, not assumed
    parameters: Mapping[str, object] = field(default_factory=dict)
    problem: str = ""                           # why n_images could not be counted

    def describe(self, set_name: str) -> str:
        """E.g. "phantom, preset ci, 200 test images"."""
        n = self.n_images.get(set_name)
        return f"{self.data}, preset {self.preset}" + (f", {n:,} test images" if n is not None else "")


def chapter_provenance(chapter: int, run_dir: str | Path, executed_dir: str | Path, fallback: Mapping[str, object],
                       sources: Mapping[int, Path]) -> Provenance:
    """The provenance of a chapter's results in run_dir (see chapter_parameters for where parameters come from)."""
    parameters, recorded = chapter_parameters(chapter, run_dir, executed_dir, fallback, sources)
    preset = str(parameters["preset"])
    try:
        sizes, problem = evaluation_set_sizes(chapter, parameters, PRESETS[preset]), ""
    except (OSError, ValueError) as error:   # data moved or unreadable since the chapter ran
        sizes, problem = {}, f"{type(error).__name__}: {error}"
    return Provenance(chapter, preset, data_kind(dataset_roots(parameters)), sizes, recorded, parameters, problem)


def files_of_chapter(tables: Mapping[str, pd.DataFrame | None], chapter: int) -> list[str]:
    """The RESULT_FILES of a chapter that load_results found."""
    return [name for name, spec in RESULT_FILES.items() if spec.chapter == chapter and tables.get(name) is not None]


def provenance_table(tables: Mapping[str, pd.DataFrame | None], provenance: Mapping[int, Provenance],
                     sources: Mapping[int, Path]) -> pd.DataFrame:
    """One row per chapter of RESULT_FILES: its results found, and where they came from."""
    rows = []
    for chapter in sorted({spec.chapter for spec in RESULT_FILES.values()}):
        origin = provenance.get(chapter)
        rows.append({"chapter": chapter, "in the book": chapter in sources,
                     "results in run_dir": ", ".join(files_of_chapter(tables, chapter)) or "none",
                     "parameters": "" if origin is None else "recorded" if origin.recorded else "assumed",
                     "data": "" if origin is None else origin.data, "preset": "" if origin is None else origin.preset,
                     "test images": "" if origin is None else
                     (", ".join(f"{name} {n:,}" for name, n in origin.n_images.items()) or origin.problem)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ commands

def fill_command(chapter: int, sources: Mapping[int, Path], preset: str = "paper") -> str:
    """The book command that measures a chapter's cells on the real datasets (REAL_DATA_PARAMETERS as
    placeholders), running the chapters it reads first. Only parameters that the chapter's parameters cell
    defines are passed (all of them when the chapter is not in the book yet)."""
    wanted = dict(REAL_DATA_PARAMETERS)
    if chapter in sources:
        known = parameters_cell(sources[chapter])
        wanted = {name: value for name, value in wanted.items() if name in known}
    chapters = ",".join(str(c) for c in (*PREREQUISITE_CHAPTERS, chapter))
    return " ".join([f"python -m egma.book run --preset {preset} --chapters {chapters}",
                     *(f"--param {name}={value}" for name, value in wanted.items())])


def phantom_command(chapter: int, preset: str) -> str:
    return f"python -m egma.book run --preset {preset} --chapters {chapter}"


# ------------------------------------------------------------------------------------------ the board

def _key(text) -> str:
    """Loose name match for chapter 7's task/metric labels ("SIIM-ACR" ~ "SIIM", "F1" ~ "macro_f1")."""
    key = re.sub(r"[^a-z0-9]", "", str(text).lower())
    return {"siimacr": "siim", "rsnapneumonia": "rsna", "f1": "macrof1", "acc": "accuracy"}.get(key, key)


def _k(metric: str) -> int:
    """K of a "P@K" metric."""
    return int(metric.removeprefix("P@"))


def _one(rows: pd.DataFrame) -> pd.Series | None:
    return rows.iloc[0] if len(rows) else None


def _variant(cell) -> tuple[str, float]:
    """Chapter 7's (loss, gaze_fraction) of a Table 4 cell."""
    return ABLATION_VARIANT[cell.model] if cell.task == "ablation" else ("egma", cell.gaze_fraction)


def _same_task(summary: pd.DataFrame, cell) -> pd.DataFrame:
    """Chapter 7's summary rows of a cell's set and metric, whatever their spelling."""
    return summary[(summary["task"].map(_key) == _key(cell.set)) & (summary["metric"].map(_key) == _key(cell.metric))]


def _book_row(cell, tables) -> tuple[pd.Series | None, str, float | None]:
    """The book's row matching a paper cell: (row with value/ci_low/ci_high, file name, majority in [0, 1])."""
    zero_shot = tables.get("zero_shot")
    if cell.task == "zero-shot" or (cell.task == "ablation" and cell.model == ABLATION_BASELINE):
        if zero_shot is None:
            return None, "zero_shot", None
        predictor = BOOK_PREDICTOR["MedCLIP" if cell.task == "ablation" else cell.model]
        rows = zero_shot[(zero_shot["set"] == cell.set) & (zero_shot["metric"] == cell.metric)]
        majority = _one(rows[rows["predictor"] == "majority"])
        return (_one(rows[rows["predictor"] == predictor]), "zero_shot",
                None if majority is None else majority["value"])
    if cell.task == "retrieval":
        table = tables.get("retrieval")
        if table is None:
            return None, "retrieval", None
        rows = table[(table["direction"] == cell.setting) & (table["k"] == _k(cell.metric))]
        majority = _one(rows[rows["predictor"] == "majority"])
        return (_one(rows[rows["predictor"] == BOOK_PREDICTOR[cell.model]]), "retrieval",
                None if majority is None else majority["value"])
    if cell.task == "linear probe":
        table = tables.get("linear_probe")
        if table is None:
            return None, "linear_probe", None
        rows = table[(table["set"] == cell.set) & (table["labels"] == cell.setting)
                     & (table["model"] == BOOK_PREDICTOR[cell.model])]
        return _one(rows), "linear_probe", 0.5    # a constant score's AUROC
    table = tables.get("ablations")
    same_task = None if table is None else _same_task(table, cell)
    majority = None if same_task is None else _one(same_task[same_task["variant"] == "majority"])
    if majority is None and zero_shot is not None:   # chapter 7 scores chapter 5's sets
        majority = _one(zero_shot[(zero_shot["set"] == cell.set) & (zero_shot["metric"] == cell.metric)
                                  & (zero_shot["predictor"] == "majority")])
    majority = None if majority is None else majority["value"]
    if table is None:
        return None, "ablations", majority
    loss, fraction = _variant(cell)
    row = _one(same_task[(same_task["loss"] == loss) & np.isclose(same_task["gaze_fraction"].astype(float), fraction)])
    return row, "ablations", majority


def _never_measured(cell, tables) -> str:
    """Why no run of chapter 7 would give this cell ("" when one could): its summary has the task nowhere."""
    table = tables.get("ablations")
    if cell.task not in ("ablation", "gaze fraction") or cell.model == ABLATION_BASELINE or table is None:
        return ""
    if len(_same_task(table, cell)):
        return ""
    return f"chapter 7 does not score {cell.set} {cell.metric} (its tasks: {', '.join(table['task'].unique())})"


def _not_run_reason(cell, file_name: str, preset: str, has_file: bool) -> str:
    spec = RESULT_FILES[file_name]
    if not has_file:
        return (f"chapter {spec.chapter} has not run on this run_dir ({spec.path} is missing); on the phantom: "
                f"`{phantom_command(spec.chapter, preset)}`")
    if file_name == "ablations":
        loss, fraction = _variant(cell)
        grid = PRESETS[preset].ablation
        if loss not in grid.losses or (loss == "egma" and not np.isclose(grid.gaze_fractions, fraction).any()):
            # the same preset with its grid widened by this one variant (chapter 7's grid parameters)
            fractions = sorted({*map(float, grid.gaze_fractions), float(fraction)})
            widened = (f"ablation_losses=[{','.join([*grid.losses, loss])}]" if loss not in grid.losses
                       else f"ablation_gaze_fractions=[{','.join(map(str, fractions))}]")
            return (f"preset {preset}'s chapter-7 grid has no {loss} at gaze fraction {fraction:g}; on the phantom "
                    f"(trained cells are kept): `{phantom_command(spec.chapter, preset)} --param {widened}`")
    return f"{spec.path} has no row for {cell.model}, {cell.set}, {cell.setting or cell.metric}"


def build_scoreboard(tables: Mapping[str, pd.DataFrame | None], provenance: Mapping[int, Provenance],
                     commands: Mapping[int, str], preset: str, real_majority: pd.DataFrame,
                     paper: pd.DataFrame | None = None, init_is_medclip: bool = False) -> pd.DataFrame:
    """One row per published number: the paper's value beside the book's (all in percent).

    tables: load_results(run_dir); provenance: chapter -> Provenance of its results; commands: chapter ->
    fill_command; preset: the preset of run_dir (for the not-run reasons); real_majority:
    real_majority_baselines(); paper: paper_results() (default); init_is_medclip: the untrained model starts
    from MedCLIP's weights (model.medclip_checkpoint), so that its real-data numbers compare with MedCLIP's.
    Columns: table, task, model, set, setting, metric, chapter, paper, ours, ci_low, ci_high, majority,
    real_majority, n_seeds, source, data, status, reason, command.
    """
    paper = paper_results() if paper is None else paper
    real = real_majority.set_index(["set", "metric"])["value"]
    rows = []
    for cell in paper.itertuples(index=False):
        chapter = 5 if (cell.task == "ablation" and cell.model == ABLATION_BASELINE) else CHAPTER_OF_TASK[cell.task]
        record = {**cell._asdict(), "chapter": chapter, "paper": cell.value, "ours": np.nan, "ci_low": np.nan,
                  "ci_high": np.nan, "majority": np.nan, "real_majority": real.get((cell.set, cell.metric), np.nan),
                  "n_seeds": np.nan, "source": "", "data": "", "reason": "", "command": ""}
        del record["value"]
        comparable = cell.model in BOOK_PREDICTOR or cell.task in ("ablation", "gaze fraction")
        if not comparable:
            rows.append({**record, "status": NOT_COMPARABLE,
                         "reason": f"the book does not implement {cell.model}; the paper's number is context"})
            continue
        if why := _never_measured(cell, tables):
            rows.append({**record, "source": RESULT_FILES["ablations"].path, "status": NOT_COMPARABLE, "reason": why})
            continue
        row, file_name, majority = _book_row(cell, tables)
        record["source"] = RESULT_FILES[file_name].path
        record["majority"] = np.nan if majority is None else 100 * majority
        if row is None:
            rows.append({**record, "status": NOT_RUN, "command": commands.get(chapter, ""),
                         "reason": _not_run_reason(cell, file_name, preset, tables.get(file_name) is not None)})
            continue
        origin = provenance.get(chapter)
        on_real, stand_in = origin is not None and origin.data == "real", cell.model in STAND_IN_ROWS
        if stand_in and on_real and not init_is_medclip:
            status, reason = NOT_COMPARABLE, ("the untrained model is a random initialisation, not MedCLIP's weights "
                                              "(model.medclip_checkpoint is unset)")
        elif on_real:
            status, reason = REPRODUCED_REAL, ""
        else:
            status = REPRODUCED_PHANTOM
            reason = ("stand-in: the same architecture before pretraining; " if stand_in else "") + \
                "values compare only once measured on real data"
        n_seeds = row.get("n_seeds", np.nan)
        data = ((origin.describe(cell.set) if origin else "unknown")
                + (f", {n_seeds:.0f} seeds" if pd.notna(n_seeds) else ""))
        record.update(ours=100 * row["value"], ci_low=100 * row["ci_low"], ci_high=100 * row["ci_high"],
                      n_seeds=n_seeds, data=data,
                      status=status, reason=reason,
                      command=commands.get(chapter, "") if status == REPRODUCED_PHANTOM else "")
        rows.append(record)
    return pd.DataFrame(rows)


def status_counts(board: pd.DataFrame) -> pd.DataFrame:
    """Cells per paper table (and task) and status, with totals; every status has a column."""
    counts = pd.crosstab([board["table"], board["task"]], board["status"]).reindex(columns=list(STATUSES), fill_value=0)
    counts["cells"] = counts.sum(axis=1)
    counts.loc[("all", ""), :] = counts.sum()
    return counts.astype(int)


# ------------------------------------------------------------------------------------------ directions of effects

def agreement(paper_delta: float, verdict: str | None) -> str:
    """Whether the book's paired verdict points the way the paper's difference does."""
    if verdict is None or (isinstance(verdict, float) and np.isnan(verdict)):
        return NOT_RUN
    if verdict == "no clear difference":
        return "unresolved (interval spans 0)"
    expected = "better" if paper_delta > 0 else "worse" if paper_delta < 0 else "no clear difference"
    return "same direction" if verdict == expected else "opposite direction"


def effect_directions(tables: Mapping[str, pd.DataFrame | None], provenance: Mapping[int, Provenance],
                      paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """EGMA minus its initialisation: the paper's EGMA - MedCLIP difference beside the book's paired
    trained - untrained difference (percentage points, 95 % CI, verdict) for every Table 1-3 cell that has both.
    Columns: table, task, set, setting, metric, paper_delta, ours, ci_low, ci_high, verdict, agreement, data."""
    paper = paper_results() if paper is None else paper
    keys = ["table", "task", "set", "setting", "metric"]
    pairs = paper[paper["model"] == "EGMA"][keys + ["value"]].merge(
        paper[paper["model"] == "MedCLIP"][keys + ["value"]], on=keys, suffixes=("_egma", "_init"))
    deltas = pairs[keys].assign(paper_delta=(pairs["value_egma"] - pairs["value_init"]).round(2))
    differences = {"zero-shot": "zero_shot_differences", "retrieval": "retrieval_differences",
                   "linear probe": "linear_probe_differences"}
    rows = []
    for cell in deltas.itertuples(index=False):
        table = tables.get(differences[cell.task])
        found = None
        if table is not None:
            if cell.task == "retrieval":
                match = (table["direction"] == cell.setting) & (table["k"] == _k(cell.metric))
            elif cell.task == "linear probe":
                match = (table["set"] == cell.set) & (table["labels"] == cell.setting)
            else:
                match = (table["set"] == cell.set) & (table["metric"] == cell.metric)
            found = _one(table[match])
        origin = provenance.get(CHAPTER_OF_TASK[cell.task])
        rows.append({**cell._asdict(),
                     "ours": np.nan if found is None else 100 * found["value"],
                     "ci_low": np.nan if found is None else 100 * found["ci_low"],
                     "ci_high": np.nan if found is None else 100 * found["ci_high"],
                     "verdict": None if found is None else found["verdict"],
                     "agreement": agreement(cell.paper_delta, None if found is None else found["verdict"]),
                     "data": origin.describe(cell.set) if origin and found is not None else ""})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ display

STATUS_COLOURS = {REPRODUCED_REAL: "#c8e6c9", REPRODUCED_PHANTOM: "#fff3c4", NOT_RUN: "#ffd6d6",
                  NOT_COMPARABLE: "#e6e6e6", "same direction": "#c8e6c9", "opposite direction": "#ffd6d6",
                  "unresolved (interval spans 0)": "#fff3c4"}


def _number(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.2f}"


def command_label(chapter: int) -> str:
    """How the displayed tables refer to the real-data command of a chapter."""
    return f"R{chapter}"


def board_view(board: pd.DataFrame) -> pd.DataFrame:
    """The displayed form of (part of) a scoreboard: text cells, ours as "value [low, high]"."""
    ours = [estimate_text(v, lo, hi, scale=1.0) if pd.notna(v) else "" for v, lo, hi in
            zip(board["ours"], board["ci_low"], board["ci_high"])]
    return pd.DataFrame({
        "model / row": board["model"], "set": board["set"], "setting": board["setting"], "metric": board["metric"],
        "paper": board["paper"].map(_number), "ours [95 % CI]": ours,
        "majority (ours)": board["majority"].map(lambda v: "" if pd.isna(v) else f"{v:.1f}"),
        "majority (real set)": board["real_majority"].map(_number),
        "data": board["data"], "status": board["status"],
        "why / real-data command": [f"{reason} [{command_label(c)}]" if command else reason
                                    for reason, command, c in zip(board["reason"], board["command"], board["chapter"])],
    }).reset_index(drop=True)


def styled(view: pd.DataFrame, caption: str, status_column: str = "status"):
    """A pandas Styler of a view: status cells coloured, text left-aligned, no index."""
    return (view.style.hide(axis="index").set_caption(caption)
            .map(lambda s: f"background-color: {STATUS_COLOURS.get(s, 'white')}", subset=[status_column])
            .set_properties(**{"text-align": "left"}))
