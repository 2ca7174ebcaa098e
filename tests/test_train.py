"""egma.train: exact resume after SIGKILL, 2 processes = 1 process at step 1, clear errors that overwrite nothing,
and the pieces (batch order, schedule, gaze subset) the loop is built from.

Runs use a tiny MIMIC-Eye tree: a few patient folders copied from the ci phantom.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from egma.checkpoint import CheckpointError, latest_checkpoint, load_best, save_best
from egma.config import get_preset
from egma.data import EpochBatches, GazeSubset, batches_per_epoch, gaze_subset
from egma.datasets import read_mimic_eye
from egma.gaze.cache import GazeCacheMismatch
from egma.phantom.generate import ensure_phantom
from egma.model import build_model
from egma.evaluation.zero_shot import SCORINGS
from egma.train import (INIT_FOLDER, METRICS, TRAIN_FOLDER, Progress, after_init, apply_overrides, check_criterion,
                        check_run_folder, config_record, ensure_init, init_stage, pretrain, train, trained_model,
                        warmup_cosine)

REPO = Path(__file__).resolve().parents[1]
CI_ROOT = REPO / "data" / "phantom" / "ci"
OVERRIDES = ["train.epochs=2", "train.batch_size=4", "train.lr=1e-3", "train.checkpoint_every=2",
             "train.val_prompts_per_class=3", "train.gaze_fraction=0.5", "train.init_epochs=0"]
N_TRAIN = 13  # 3 batches of 4 per epoch, one study left over
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def tiny_cfg():
    return apply_overrides(get_preset("ci"), OVERRIDES)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Patient folders of the ci phantom holding 13 train studies and 3 single-finding validation studies."""
    ensure_phantom(CI_ROOT, get_preset("ci").phantom, workers=2)
    five = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
    by_patient = {}
    for study in read_mimic_eye(CI_ROOT / "mimic-eye", samples=False):
        by_patient.setdefault(study.subject_id, []).append(study)
    picked, n_train, n_val = [], 0, 0
    for patient, studies in sorted(by_patient.items()):
        train_here = sum(s.split == "train" for s in studies)
        val_here = sum(s.split == "validate" and sum(s.labels.get(c) == 1 for c in five) == 1 for s in studies)
        if (val_here and n_val < 3) or (train_here and not val_here and n_train + train_here <= N_TRAIN):
            picked.append(patient)
            n_train, n_val = n_train + train_here, n_val + val_here
    assert n_train >= 12 and n_val >= 1, (n_train, n_val)
    root = tmp_path_factory.mktemp("tiny") / "mimic-eye"
    for patient in picked:
        shutil.copytree(CI_ROOT / "mimic-eye" / f"patient_{patient}", root / f"patient_{patient}")
    return root.parent


def run_cli(data_root: Path, run_dir: Path, *extra: str, wait: bool = True):
    cmd = [sys.executable, "-m", "egma.train", "--preset", "ci", "--data-root", str(data_root), "--run-dir",
           str(run_dir), "--workers", "0", "--no-progress", *[a for o in OVERRIDES for a in ("--set", o)], *extra]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def final_state(run_dir: Path) -> dict:
    return torch.load(latest_checkpoint(run_dir / "pretrain"), weights_only=False)


def step_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "pretrain" / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "step"]


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("whole")
    run_cli(data_root, run_dir)
    return run_dir


# ---------------------------------------------------------------- the loop

def test_sigkill_then_resume_gives_the_uninterrupted_weights(data_root, uninterrupted, tmp_path):
    process = run_cli(data_root, tmp_path, wait=False)
    metrics = tmp_path / "pretrain" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file() and any(json.loads(line)["step"] >= 3 for line in metrics.read_text().splitlines()):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait(timeout=60) == -signal.SIGKILL, process.stderr.read()[-3000:]
    killed_at = max(r["step"] for r in step_records(tmp_path))
    total = final_state(uninterrupted)["progress"]["step"]
    assert total == 6 and killed_at < total  # really killed mid-run

    run_cli(data_root, tmp_path, "--resume")
    resumed, whole = final_state(tmp_path), final_state(uninterrupted)
    assert resumed["progress"] == whole["progress"]
    for name, tensor in whole["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    # the metrics file reads as one run: every step once, the same losses
    assert [r["step"] for r in step_records(tmp_path)] == list(range(1, total + 1))
    assert [r["loss_total"] for r in step_records(tmp_path)] == [r["loss_total"] for r in step_records(uninterrupted)]


def test_run_writes_its_record(uninterrupted):
    folder = uninterrupted / "pretrain"
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1]
    for r in epochs:   # the score is the best rule's balanced accuracy, and that rule is named
        assert set(r["val_by_scoring"]) == set(SCORINGS) and 0 <= r["val_score"] <= 1
        assert r["val_score"] == max(v["balanced_accuracy"] for v in r["val_by_scoring"].values())
        assert r["val_by_scoring"][r["val_scoring"]] == {"accuracy": r["val_accuracy"], "balanced_accuracy": r["val_score"]}
    steps = step_records(uninterrupted)
    assert all(np.isfinite(r["loss_total"]) and r["images_per_s"] > 0 for r in steps)
    # warm-up then cosine decay: the lr rises to its peak, then falls
    lrs = [r["lr"] for r in steps]
    assert lrs[0] < max(lrs) and lrs[-1] < max(lrs)
    subset = json.loads((folder / "gaze_subset.json").read_text())
    assert len(subset["study_ids"]) == round(0.5 * subset["n_with_gaze"])
    best = torch.load(folder / "best" / "model.pt", weights_only=False)
    assert best["metrics"]["val_score"] == max(r["val_score"] for r in epochs)
    assert best["metrics"]["epoch"] == min(r["epoch"] for r in epochs if r["val_score"] == best["metrics"]["val_score"])
    assert json.loads((folder / "config.json").read_text())["train"]["batch_size"] == 4


def _torchrun(nproc: int, data_root: Path, run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(REPO / "tests" / "train_worker.py"), "--preset", "ci", "--data-root", str(data_root),
           "--run-dir", str(run_dir), "--workers", "0", "--no-progress", "--max-steps", "1",
           *[a for o in OVERRIDES for a in ("--set", o)]]
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return step_records(run_dir)[0]


def test_two_processes_give_the_one_process_loss_at_step_1(data_root, tmp_path):
    one = _torchrun(1, data_root, tmp_path / "one")
    two = _torchrun(2, data_root, tmp_path / "two")
    for term in ("loss_filip", "loss_mlce", "loss_egm", "loss_total"):
        assert abs(one[term] - two[term]) < 1e-4, (term, one[term], two[term])
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-3)  # DDP averaged = 1-process gradient


# ---------------------------------------------------------------- bad input: clear errors, nothing overwritten

def test_resume_without_a_checkpoint(data_root, tmp_path):
    with pytest.raises(CheckpointError, match="cannot resume"):
        train(tiny_cfg(), data_root, tmp_path, resume=True, workers=0, progress_bar=False)
    assert not (tmp_path / "pretrain").exists()


def test_corrupt_checkpoint(data_root, uninterrupted, tmp_path):
    shutil.copytree(uninterrupted, tmp_path / "run")
    state = latest_checkpoint(tmp_path / "run" / "pretrain")
    state.write_bytes(state.read_bytes()[:1000])  # truncated, as a full disk would leave it
    before = tree_digest(tmp_path / "run")
    with pytest.raises(CheckpointError, match=str(state.name)):
        train(tiny_cfg(), data_root, tmp_path / "run", resume=True, workers=0, progress_bar=False)
    assert tree_digest(tmp_path / "run") == before


def test_existing_run_is_never_overwritten(data_root, uninterrupted):
    before = tree_digest(uninterrupted)
    with pytest.raises(FileExistsError, match="resume"):
        train(tiny_cfg(), data_root, uninterrupted, workers=0, progress_bar=False)
    with pytest.raises(ValueError, match="lr"):  # resuming with another configuration
        train(apply_overrides(tiny_cfg(), ["train.lr=0.5"]), data_root, uninterrupted, resume=True, workers=0,
              progress_bar=False)
    assert tree_digest(uninterrupted) == before


def test_data_root_without_studies(tmp_path):
    (tmp_path / "data" / "mimic-eye").mkdir(parents=True)
    with pytest.raises(Exception, match="patient_"):
        train(tiny_cfg(), tmp_path / "data", tmp_path / "run", workers=0, progress_bar=False)
    assert not (tmp_path / "run").exists()


def test_gaze_cache_built_with_other_parameters(data_root, uninterrupted, tmp_path):
    shutil.copy(uninterrupted / "gaze_cache.pt", tmp_path / "gaze_cache.pt")
    before = tree_digest(tmp_path)
    cfg = tiny_cfg()
    cfg = replace(cfg, gaze=replace(cfg.gaze, sigma_deg=1.0))
    with pytest.raises(GazeCacheMismatch, match="sigma_deg"):
        train(cfg, data_root, tmp_path, workers=0, progress_bar=False)
    assert tree_digest(tmp_path) == before


# ---------------------------------------------------------------- the pieces

def test_batch_order_is_the_same_on_any_number_of_processes_and_resumes_mid_epoch():
    one = list(EpochBatches(23, 6, seed=3, epoch=1, n_batches=3))
    two = [list(EpochBatches(23, 6, seed=3, epoch=1, n_batches=3, rank=r, world=2)) for r in range(2)]
    three = [list(EpochBatches(23, 6, seed=3, epoch=1, n_batches=3, rank=r, world=3)) for r in range(3)]
    assert [a + b for a, b in zip(*two)] == one == [a + b + c for a, b, c in zip(*three)]
    assert len({i for batch in one for i in batch}) == 18  # no study twice in an epoch
    assert list(EpochBatches(23, 6, seed=3, epoch=1, n_batches=3, start=2)) == one[2:]
    assert list(EpochBatches(23, 6, seed=3, epoch=2, n_batches=3)) != one
    with pytest.raises(ValueError, match="multiple"):
        EpochBatches(23, 6, seed=3, epoch=1, n_batches=3, world=4)
    assert batches_per_epoch(23, 6, grad_accum=2) == 2
    with pytest.raises(ValueError, match="fewer"):
        batches_per_epoch(5, 6, grad_accum=1)


def test_warmup_then_cosine():
    factor = warmup_cosine(100, 0.1)
    values = np.array([factor(s) for s in range(100)])
    assert np.all(np.diff(values[:11]) > 0) and values[10] == 1.0
    assert np.all(np.diff(values[10:]) < 0) and values[-1] < 0.01
    assert factor(55) == pytest.approx(0.5)  # cosine half-way point of the decay


class _FakeCache:
    grid, path = 2, Path("memory")

    def __init__(self, ids):
        self.ids = ids

    def __contains__(self, sid):
        return sid in self.ids

    def batch(self, ids, max_sentences=None):
        gs = torch.ones(len(ids), 2, 4) * torch.tensor([sid in self.ids for sid in ids])[:, None, None]
        return gs, gs > 0, gs[..., 0] > 0, torch.tensor([sid in self.ids for sid in ids])


def test_gaze_subset_is_seeded_and_hides_the_others():
    class S:
        def __init__(self, i):
            self.study_id = f"s{i}"
    studies = [S(i) for i in range(20)]
    cache = _FakeCache({f"s{i}" for i in range(0, 20, 2)})  # 10 with gaze
    picked = gaze_subset(studies, cache, 0.3, seed=1)
    assert len(picked) == 3 and set(picked) <= cache.ids and picked == gaze_subset(studies, cache, 0.3, seed=1)
    assert gaze_subset(studies, cache, 1.0, seed=1) == sorted(cache.ids)
    view = GazeSubset(cache, picked)
    ids = [picked[0], "s1", sorted(cache.ids - set(picked))[0]]
    gs, gl, mask, has_gaze = view.batch(ids)
    assert has_gaze.tolist() == [True, False, False] and gs[1:].abs().sum() == 0 and not gl[2].any()
    assert picked[0] in view and ids[2] not in view


def test_init_stage_trains_medclip_without_gaze_then_the_loss_continues_from_its_best_weights(data_root, tmp_path):
    cfg = apply_overrides(tiny_cfg(), ["train.init_epochs=1", "train.epochs=1", "train.lr=2e-4", "train.init_lr=1e-3"])
    init = init_stage(cfg)
    assert (init.loss.name, init.train.epochs, init.train.gaze_fraction) == ("medclip", 1, 0.0)
    assert init.train.lr == 1e-3 and init_stage(apply_overrides(cfg, ["train.init_lr=None"])).train.lr == 2e-4
    pretrain(cfg, data_root, tmp_path, workers=0, progress_bar=False)
    init_best = load_best(tmp_path / "init" / "pretrain")["model"]
    stage_two = json.loads((tmp_path / "pretrain" / "config.json").read_text())
    assert stage_two["loss"]["name"] == "egma" and stage_two["train"]["lr"] == 2e-4
    assert stage_two["model"]["init_weights"] == str(tmp_path / "init" / "pretrain" / "best" / "model.pt")
    start = build_model(after_init(cfg, tmp_path).model).state_dict()  # what stage two started from
    assert all(torch.equal(start[k], init_best[k]) for k in init_best)
    assert not torch.equal(load_best(tmp_path / "pretrain")["model"]["image_proj.weight"], init_best["image_proj.weight"])
    # both stages read the one gaze cache; a finished init stage is kept as it is on resume
    assert not (tmp_path / "init" / "gaze_cache.pt").exists()
    init_metrics = (tmp_path / "init" / "pretrain" / "metrics.jsonl").read_bytes()
    pretrain(cfg, data_root, tmp_path, resume=True, workers=0, progress_bar=False)
    assert (tmp_path / "init" / "pretrain" / "metrics.jsonl").read_bytes() == init_metrics
    with pytest.raises(FileExistsError):
        pretrain(cfg, data_root, tmp_path, workers=0, progress_bar=False)


def test_a_checkpoint_from_before_the_score_rename_still_resumes():
    old = {"epoch": 2, "batch": 0, "step": 40, "best_accuracy": 0.35, "best_epoch": 1}
    assert Progress.from_state(old) == Progress(epoch=2, batch=0, step=40, best_score=0.35, best_epoch=1)
    assert Progress.from_state(vars(Progress(step=3))) == Progress(step=3)


def test_a_model_chosen_by_the_earlier_criterion_is_refused_by_name(tmp_path):
    folder = tmp_path / TRAIN_FOLDER
    save_best(folder, {}, {"epoch": 1, "val_accuracy": 0.4, "val_n": 93})
    with pytest.raises(CheckpointError, match=r"model\.pt: this run was validated by the earlier criterion"):
        trained_model(get_preset("ci"), tmp_path)


def test_a_run_validated_by_the_earlier_criterion_is_refused_before_it_is_read_back(tmp_path):
    cfg = get_preset("ci")
    init_folder = tmp_path / INIT_FOLDER / TRAIN_FOLDER
    init_folder.mkdir(parents=True)
    (init_folder / METRICS).write_text(json.dumps({"kind": "step", "step": 1}) + "\n"
                                       + json.dumps({"kind": "epoch", "epoch": 0, "val_accuracy": 0.4}) + "\n")
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl, line 2: this run was validated by the earlier"):
        ensure_init(cfg, tmp_path, tmp_path, train_fn=lambda *a, **k: pytest.fail("must not train"))
    # resuming a stage reads its folder through check_run_folder, which refuses it as well
    (init_folder / "config.json").write_text(json.dumps(config_record(cfg)))
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl, line 2: this run was validated by the earlier"):
        check_run_folder(init_folder, cfg, resume=True)
    # a run folder whose epochs carry every rule's scores passes
    (init_folder / METRICS).write_text(json.dumps({"kind": "epoch", "epoch": 0, "val_by_scoring": {}}) + "\n")
    check_criterion(init_folder)
