"""Chapter 7's ablation grid: every loss at full gaze, the EGMA loss at each gaze fraction, every seed.

Each grid cell is an ordinary `egma.train.train` run in `run_dir/ablations/<variant>/seed<k>/`, so
`egma.train.trained_model(cell_config(cfg, cell), cell.folder(run_dir))` loads it. Variant names:
the loss name at gaze fraction 1.0 ("clip", "filip", "mlce", "egf", "egm", "egma"), and
"egma_gaze<percent>" for the EGMA loss at any other fraction ("egma_gaze0", "egma_gaze10", "egma_gaze1");
EGMA at 1.0 is the "egma" cell, trained once. A cell's seed sets `train.seed`, so the seeded gaze subset,
the batch order and the augmentation follow it. When the preset has an init stage (`train.init_epochs`, the
stand-in for the paper's MedCLIP init), every cell starts from its weights in `run_dir/init/` -- chapter 4's,
or trained here first when chapter 4 has not run.

Running the grid again is cheap: a finished cell (its configuration matches and its last epoch is in
metrics.jsonl) is left alone, an interrupted one resumes from its last checkpoint, and one that stopped
before its first checkpoint starts again. A cell whose saved configuration differs is an error, never
overwritten.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

import egma.train as training
from egma.ablation_summary import check_scores
from egma.checkpoint import BEST_MODEL, LATEST
from egma.config import AblationConfig, Preset
from egma.datasets.study import Study
from egma.gaze.cache import gaze_cache
from egma.losses import ABLATIONS

ABLATION_FOLDER = "ablations"
FULL_GAZE = 1.0
GRID_LOSS = "egma"   # the loss whose gaze fraction is varied


@dataclass(frozen=True)
class Cell:
    variant: str
    loss: str
    gaze_fraction: float
    seed: int

    def folder(self, run_dir: str | Path) -> Path:
        return Path(run_dir) / ABLATION_FOLDER / self.variant / f"seed{self.seed}"


def variant_name(loss: str, gaze_fraction: float) -> str:
    """"egma" at full gaze, "egma_gaze10" at 10 %; other losses are only run at full gaze."""
    if gaze_fraction == FULL_GAZE:
        return loss
    if loss != GRID_LOSS:
        raise ValueError(f"only the {GRID_LOSS!r} loss is run at gaze fractions below 1, not {loss!r}")
    return f"{GRID_LOSS}_gaze{100 * gaze_fraction:g}"


def grid_cells(ablation: AblationConfig) -> list[Cell]:
    """The cells of the grid, variant by variant (losses first, then EGMA's other gaze fractions), seeds inner."""
    unknown = [name for name in ablation.losses if name not in ABLATIONS]
    bad = [f for f in ablation.gaze_fractions if not 0.0 <= f <= 1.0]
    if unknown or bad or not ablation.seeds:
        raise ValueError(f"bad ablation grid: unknown losses {unknown} (known {sorted(ABLATIONS)}), "
                         f"gaze fractions outside [0, 1] {bad}, seeds {list(ablation.seeds)}")
    variants = {(loss, FULL_GAZE): None for loss in ablation.losses}
    variants.update({(GRID_LOSS, fraction): None for fraction in sorted(ablation.gaze_fractions)})
    if len(set(ablation.seeds)) != len(ablation.seeds):
        raise ValueError(f"repeated seeds in {list(ablation.seeds)}")
    return [Cell(variant_name(loss, fraction), loss, fraction, seed)
            for loss, fraction in variants for seed in ablation.seeds]


def cell_config(cfg: Preset, cell: Cell) -> Preset:
    """The preset a cell trains with: its loss, gaze fraction and seed; `ablation.epochs` when set. Its
    `ablation` section is the one-cell grid, so adding seeds or variants later leaves trained cells valid."""
    epochs = cfg.ablation.epochs if cfg.ablation.epochs is not None else cfg.train.epochs
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, name=cell.loss),
                               train=dataclasses.replace(cfg.train, gaze_fraction=cell.gaze_fraction,
                                                         seed=cell.seed, epochs=epochs),
                               ablation=AblationConfig(losses=(cell.loss,), gaze_fractions=(cell.gaze_fraction,),
                                                       seeds=(cell.seed,), epochs=epochs))


def cell_status(cfg: Preset, folder: Path) -> str:
    """"new", "finished", "partial" (resumable) or "stale" (started, no checkpoint yet) for a cell's folder."""
    train_folder = folder / training.TRAIN_FOLDER
    saved = train_folder / "config.json"
    if not saved.is_file():
        return "new"
    record = json.loads(saved.read_text())
    wanted = training.config_record(cfg)
    if record != wanted:
        sections = sorted(k for k in set(record) | set(wanted) if record.get(k) != wanted.get(k))
        raise ValueError(f"{folder} holds a run with another configuration (sections {sections} differ); "
                         "delete that folder or use another run_dir")
    if training.finished(train_folder, cfg):
        return "finished"
    return "partial" if (train_folder / "checkpoints" / LATEST).is_file() else "stale"


def shared_gaze_cache(cfg: Preset, studies: Sequence[Study], run_dir: Path) -> Path:
    """run_dir/gaze_cache.pt (chapters 2 and 4 make it), built here when missing (GazeCacheMismatch when the
    one there was made with other settings or from another corpus)."""
    path = run_dir / training.GAZE_CACHE
    gaze_cache(studies, path, cfg.gaze, cfg.model.image_size, cfg.model.grid, progress=False)
    return path


def run_cell(cfg: Preset, data_root: str | Path, run_dir: str | Path, cell: Cell, cache_file: Path, *,
             train_fn: Callable = training.train, workers: int = 2, studies: Sequence[Study] | None = None) -> str:
    """Train one cell unless it is finished; returns what was done: "skipped", "resumed", "restarted" or "trained".
    `studies`: the corpus of data_root, read once for the whole grid (reading it takes about as long as a
    whole ci training run)."""
    cell_cfg, folder = cell_config(cfg, cell), cell.folder(run_dir)
    status = cell_status(cell_cfg, folder)
    if status == "finished":
        return "skipped"
    if status == "stale":   # killed before its first checkpoint: nothing to resume from
        shutil.rmtree(folder / training.TRAIN_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / training.GAZE_CACHE).is_file():
        shutil.copyfile(cache_file, folder / training.GAZE_CACHE)
    train_fn(cell_cfg, data_root, folder, resume=status == "partial", workers=workers, progress_bar=False,
             studies=studies)
    if cell_status(cell_cfg, folder) == "finished":
        # a finished cell is never resumed; its best model stays, its resumable checkpoints (model, optimiser,
        # frozen text tower: ~0.3 GB a cell on ci) would only fill the disk
        shutil.rmtree(folder / training.TRAIN_FOLDER / "checkpoints", ignore_errors=True)
    return {"new": "trained", "partial": "resumed", "stale": "restarted"}[status]


def run_grid(cfg: Preset, data_root: str | Path, run_dir: str | Path, *, cells: Sequence[Cell] | None = None,
             train_fn: Callable = training.train, workers: int = 2, progress: bool = True,
             studies: Sequence[Study] | None = None) -> pd.DataFrame:
    """Train every cell of the grid (default: grid_cells(cfg.ablation)); one progress line per cell.

    Returns a DataFrame: variant, loss, gaze_fraction, seed, action, wall_s, folder.
    """
    run_dir = Path(run_dir)
    cells = list(cells) if cells is not None else grid_cells(cfg.ablation)
    studies = studies if studies is not None else training.read_corpus(data_root)
    cache_file = shared_gaze_cache(cfg, studies, run_dir)
    # every cell starts from the one init stage (chapter 4's when it ran), as the paper's all start from MedCLIP
    training.ensure_init(cfg, data_root, run_dir, train_fn=train_fn, workers=workers, progress_bar=False,
                         studies=studies)
    cfg = training.after_init(cfg, run_dir)
    rows = []
    bar = tqdm(cells, desc="ablation grid", unit="cell", disable=not progress)
    for cell in bar:
        bar.set_postfix(cell=f"{cell.variant}/seed{cell.seed}")
        started = time.perf_counter()
        action = run_cell(cfg, data_root, run_dir, cell, cache_file, train_fn=train_fn, workers=workers,
                          studies=studies)
        wall = time.perf_counter() - started
        rows.append({**dataclasses.asdict(cell), "action": action, "wall_s": wall, "folder": str(cell.folder(run_dir))})
        if progress:
            bar.write(f"{cell.variant:>14} seed{cell.seed}: {action} ({wall:.0f} s)")
    return pd.DataFrame(rows)


def scored_run(cfg: Preset, run_dir: str | Path, score_fn: Callable) -> pd.DataFrame:
    """score_fn(model, record) of the best model in run_dir, after the validation balanced accuracy its checkpoint
    was chosen by (task "validation")."""
    model, record = training.trained_model(cfg, run_dir)
    return pd.concat([pd.DataFrame([{"task": "validation", "metric": "balanced_accuracy",
                                     "value": record["val_score"]}]), score_fn(model, record)], ignore_index=True)


# A cell's saved scores. Before the validate split chose each model's scoring rule they were "scores.csv" (scored
# with global, max); the new name keeps those from being read back as current.
CELL_SCORES = "rule_scores.csv"


def score_grid(cfg: Preset, run_dir: str | Path, cells: Sequence[Cell], score_fn: Callable, *, rescore: bool = False,
               progress: bool = True) -> pd.DataFrame:
    """Score every trained cell: score_fn(model, record) -> DataFrame(task, metric, value), where record is the
    validation record the cell's checkpoint was chosen by (egma.validation; its "val_scoring" is the rule to
    score with), plus that record's balanced accuracy (task "validation"). Each cell's scores are kept in its
    folder next to the model and reused while the model is unchanged (unless `rescore`).

    Returns the score table (egma.ablation_summary.SCORE_COLUMNS; summary.csv is made from it).
    """
    parts = []
    for cell in tqdm(cells, desc="scoring cells", unit="cell", disable=not progress):
        folder = cell.folder(run_dir)
        model_file = folder / training.TRAIN_FOLDER / BEST_MODEL
        saved = folder / CELL_SCORES
        if not rescore and saved.is_file() and saved.stat().st_mtime >= model_file.stat().st_mtime:
            parts.append(pd.read_csv(saved))
            continue
        table = scored_run(cell_config(cfg, cell), folder, score_fn).assign(
            variant=cell.variant, loss=cell.loss, gaze_fraction=cell.gaze_fraction, seed=cell.seed)
        table.to_csv(saved, index=False)
        parts.append(table)
    scores = pd.concat(parts, ignore_index=True)
    return check_scores(scores)
