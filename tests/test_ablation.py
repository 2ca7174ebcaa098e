"""egma.ablation: variant names, grid expansion, per-cell configs, and skip / resume / restart of cells
(with a fake train function that writes what train() writes, so no real training runs)."""
import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

import egma.ablation as ab
import egma.train as training
from egma.ablation_summary import SCORE_COLUMNS
from egma.checkpoint import BEST_MODEL, LATEST
from egma.config import AblationConfig, get_preset


def test_variant_names():
    assert [ab.variant_name(loss, 1.0) for loss in ("clip", "filip", "mlce", "egf", "egm", "egma")] == \
        ["clip", "filip", "mlce", "egf", "egm", "egma"]
    assert [ab.variant_name("egma", f) for f in (0.0, 0.01, 0.05, 0.1, 0.5)] == \
        ["egma_gaze0", "egma_gaze1", "egma_gaze5", "egma_gaze10", "egma_gaze50"]
    assert ab.variant_name("egma", 0.07) == "egma_gaze7"       # 0.07 * 100 is 7.000000000000001
    with pytest.raises(ValueError, match="only the 'egma' loss"):
        ab.variant_name("clip", 0.1)


def test_grid_expansion_trains_egma_at_full_gaze_once():
    cells = ab.grid_cells(get_preset("ci").ablation)           # 6 losses + gaze 0 % and 10 %, 3 seeds
    assert len(cells) == 8 * 3
    variants = list(dict.fromkeys(c.variant for c in cells))
    assert variants == ["clip", "filip", "mlce", "egf", "egm", "egma", "egma_gaze0", "egma_gaze10"]
    assert [c.seed for c in cells if c.variant == "egf"] == [0, 1, 2]
    assert {(c.loss, c.gaze_fraction) for c in cells if c.variant == "egma_gaze10"} == {("egma", 0.1)}
    full = ab.grid_cells(AblationConfig())
    assert len(full) == (6 + 5) * 3 and sum(c.variant == "egma" for c in full) == 3
    only = ab.grid_cells(AblationConfig(losses=("clip",), gaze_fractions=(0.5, 1.0), seeds=(4,)))
    assert [(c.variant, c.seed) for c in only] == [("clip", 4), ("egma_gaze50", 4), ("egma", 4)]
    for bad in (AblationConfig(losses=("nope",)), AblationConfig(gaze_fractions=(1.5,)), AblationConfig(seeds=())):
        with pytest.raises(ValueError, match="bad ablation grid"):
            ab.grid_cells(bad)


def test_cell_folder_and_config(tmp_path):
    cfg = get_preset("ci")
    cell = ab.Cell("egma_gaze10", "egma", 0.1, 2)
    assert cell.folder(tmp_path) == tmp_path / "ablations" / "egma_gaze10" / "seed2"
    c = ab.cell_config(cfg, cell)
    epochs = cfg.ablation.epochs if cfg.ablation.epochs is not None else cfg.train.epochs
    assert (c.loss.name, c.train.gaze_fraction, c.train.seed, c.train.epochs) == ("egma", 0.1, 2, epochs)
    shorter = ab.cell_config(get_preset("ci", ablation=AblationConfig(epochs=1)), cell)
    assert shorter.train.epochs == 1 and shorter.model == cfg.model
    assert c.ablation == AblationConfig(losses=("egma",), gaze_fractions=(0.1,), seeds=(2,), epochs=epochs)


class FakeTrain:
    """Writes the files train() leaves behind; `stop_after` epochs makes a half-done run."""

    def __init__(self, stop_after: int | None = None, checkpoint: bool = True):
        self.calls, self.configs, self.stop_after, self.checkpoint = [], [], stop_after, checkpoint

    def __call__(self, cfg, data_root, run_dir, *, resume, workers, progress_bar, studies, gaze_cache_path=None):
        assert studies == ["the corpus"]   # read once by the grid, handed to every run
        self.calls.append((Path(run_dir).parent.name, Path(run_dir).name, resume))
        self.configs.append(cfg)
        folder = Path(run_dir) / training.TRAIN_FOLDER
        assert Path(gaze_cache_path or Path(run_dir) / training.GAZE_CACHE).read_text() == "cache"
        assert resume == (folder / "config.json").is_file()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(training.config_record(cfg)))
        done = cfg.train.epochs if self.stop_after is None else self.stop_after
        epochs = [{"kind": "epoch", "epoch": e, "val_by_scoring": {}} for e in range(done)]
        (folder / training.METRICS).write_text("".join(json.dumps(r) + "\n" for r in epochs))
        if done:
            (folder / BEST_MODEL).parent.mkdir(parents=True, exist_ok=True)
            (folder / BEST_MODEL).write_text("weights")
        if self.checkpoint:
            (folder / "checkpoints").mkdir(exist_ok=True)
            (folder / "checkpoints" / LATEST).write_text("step-0000001")


@pytest.fixture
def grid(tmp_path, monkeypatch):
    cache = tmp_path / "run" / training.GAZE_CACHE
    cache.parent.mkdir()
    cache.write_text("cache")
    monkeypatch.setattr(ab, "shared_gaze_cache", lambda cfg, studies, run_dir: cache)
    cfg = get_preset("ci", ablation=AblationConfig(losses=("clip", "egma"), gaze_fractions=(0.0, 1.0), seeds=(0, 1)))
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_epochs=0)), tmp_path / "run"


def run(cfg, run_dir, fake, cells=None):
    return ab.run_grid(cfg, "data", run_dir, cells=cells, train_fn=fake, progress=False, studies=["the corpus"])


def test_finished_cells_are_skipped_and_half_done_ones_resumed(grid):
    cfg, run_dir = grid
    cells = ab.grid_cells(cfg.ablation)
    half = FakeTrain(stop_after=1)
    run(cfg, run_dir, half, cells[:1])                      # clip seed 0 stops after epoch 0 of 3
    assert ab.cell_status(ab.cell_config(cfg, cells[0]), cells[0].folder(run_dir)) == "partial"
    fake = FakeTrain()
    first = run(cfg, run_dir, fake)
    assert first.action.tolist() == ["resumed"] + ["trained"] * 5
    assert fake.calls[0] == ("clip", "seed0", True) and all(not resume for *_, resume in fake.calls[1:])
    assert set(first.columns) >= {"variant", "loss", "gaze_fraction", "seed", "action", "wall_s", "folder"}
    again = FakeTrain()
    second = run(cfg, run_dir, again)
    assert again.calls == [] and set(second.action) == {"skipped"}
    for cell in cells:  # finished: the best model stays, the resumable checkpoints go
        assert (cell.folder(run_dir) / training.TRAIN_FOLDER / BEST_MODEL).is_file()
        assert not (cell.folder(run_dir) / training.TRAIN_FOLDER / "checkpoints").exists()
    more = dataclasses.replace(cfg, ablation=AblationConfig(losses=("clip", "egma"), gaze_fractions=(0.0, 1.0), seeds=(0, 1, 2)))
    extended = FakeTrain()
    third = run(more, run_dir, extended)                    # a third seed: the first two stay valid
    assert third.action.tolist() == ["skipped", "skipped", "trained"] * 3


def test_a_cell_without_a_checkpoint_restarts_and_another_config_is_refused(grid):
    cfg, run_dir = grid
    cell = ab.grid_cells(cfg.ablation)[0]
    run(cfg, run_dir, FakeTrain(stop_after=0, checkpoint=False), [cell])
    assert ab.cell_status(ab.cell_config(cfg, cell), cell.folder(run_dir)) == "stale"
    fake = FakeTrain()
    assert run(cfg, run_dir, fake, [cell]).action.tolist() == ["restarted"]
    assert fake.calls == [("clip", "seed0", False)]
    other = dataclasses.replace(cfg, ablation=AblationConfig(losses=("clip",), seeds=(0,), epochs=1))
    with pytest.raises(ValueError, match=r"another configuration \(sections \['ablation', 'train'\]"):
        run(other, run_dir, FakeTrain(), [cell])


def test_scores_have_the_contract_columns_and_are_kept_per_cell(grid, monkeypatch):
    cfg, run_dir = grid
    cells = ab.grid_cells(cfg.ablation)
    run(cfg, run_dir, FakeTrain())
    rules = ["global, max", "filip, mean"]
    monkeypatch.setattr(training, "trained_model", lambda c, folder: (c.loss.name, {
        "val_score": c.train.seed / 10, "val_scoring": rules[c.train.seed % 2]}))
    calls = []

    def score_fn(model, record):
        calls.append((model, record["val_scoring"]))
        return pd.DataFrame([{"task": "chexpert_5x200", "metric": "accuracy", "value": 0.25}])

    for cell in cells:   # scores saved by the earlier scoring (global, max) are not read back as current
        pd.DataFrame([{"task": "validation", "metric": "accuracy", "value": 0.9}]).to_csv(
            cell.folder(run_dir) / "scores.csv", index=False)
    scores = ab.score_grid(cfg, run_dir, cells, score_fn, progress=False)
    assert list(scores.columns) == SCORE_COLUMNS
    assert len(scores) == 2 * len(cells) and calls == [(c.loss, rules[c.seed % 2]) for c in cells]  # each cell's rule
    validation = scores[scores.task == "validation"].set_index(["variant", "seed"]).value
    assert validation[("egma_gaze0", 1)] == pytest.approx(0.1) and validation[("clip", 0)] == 0.0
    assert set(scores.variant) == {"clip", "egma", "egma_gaze0"}
    assert scores[scores.variant == "egma_gaze0"].gaze_fraction.eq(0.0).all()
    again = ab.score_grid(cfg, run_dir, cells, score_fn, progress=False)          # kept next to each model
    assert len(calls) == len(cells)
    pd.testing.assert_frame_equal(again, scores, check_dtype=False)
    ab.score_grid(cfg, run_dir, cells[:1], score_fn, rescore=True, progress=False)
    assert len(calls) == len(cells) + 1


def test_every_cell_starts_from_the_one_init_stage(grid):
    cfg, run_dir = grid
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_epochs=2))
    fake = FakeTrain()
    run(cfg, run_dir, fake)
    assert fake.calls[0] == ("run", "init", False)                  # the init stage first, once
    init_cfg = fake.configs[0]
    assert (init_cfg.loss.name, init_cfg.train.epochs, init_cfg.train.gaze_fraction) == ("medclip", 2, 0.0)
    weights = str(run_dir / "init" / training.TRAIN_FOLDER / BEST_MODEL)
    assert all(c.model.init_weights == weights for c in fake.configs[1:])
    assert len(fake.configs) == 1 + len(ab.grid_cells(cfg.ablation))
    again = FakeTrain()
    run(cfg, run_dir, again)                                          # finished: neither init nor cells again
    assert again.calls == []
