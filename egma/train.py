"""EGMA pretraining with Accelerate: one loop for a laptop CPU, one GPU, or many GPUs and nodes.

    accelerate launch -m egma.train --preset ci --data-root data/phantom/ci --run-dir runs/ci
    python -m torch.distributed.run --nproc_per_node 2 -m egma.train ...        (the same, via torchrun)
    python -m egma.train ... --resume                                           (continue a run)

or `train(cfg, data_root, run_dir)` from Python (the book's chapter 4). Everything is written under
`run_dir/pretrain/` (the gaze cache is shared with chapter 2 at `run_dir/gaze_cache.pt`):
    config.json        the preset the run was started with (a resume must use the same)
    gaze_subset.json   the seeded training studies that keep their gaze
    metrics.jsonl      one record per optimiser step ("kind": "step") and per epoch ("kind": "epoch")
    checkpoints/       periodic, epoch-end and on-interrupt (SIGINT/SIGTERM) checkpoints (egma.checkpoint)
    best/model.pt      the weights of the epoch with the best validation zero-shot accuracy

The loop: AdamW (no weight decay on biases, norms and the logit scale), linear warm-up then cosine decay,
grad-norm clipping, gradient accumulation, bf16 autocast on GPUs that have it. `TrainConfig.batch_size`
is the global batch, split over the processes; the losses gather features across processes, so a run
takes the same steps on any number of processes. Resume is exact: model, optimiser, scheduler, every
process's RNG states and the position in the epoch's seeded batch order are restored.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from egma.augment import PhotometricAugment
from egma.checkpoint import (BEST_MODEL, CheckpointError, atomic_write_text, latest_checkpoint, load_best, load_checkpoint,
                             rng_state, save_best, save_checkpoint, set_rng_state)
from egma.config import Preset, get_preset
from egma.data import (BatchCollate, EpochBatches, GazeSubset, StudyDataset, batches_per_epoch, gaze_subset,
                       make_loader, training_studies)
from egma.datasets import read_mimic_eye
from egma.datasets.study import Study
from egma.gaze.cache import gaze_cache
from egma.losses import LossBundle
from egma.model import EGMAModel, build_model, build_tokenizer
from egma.validation import validation_set, zero_shot_validation

TRAIN_FOLDER = "pretrain"
INIT_FOLDER = "init"
GAZE_CACHE = "gaze_cache.pt"
METRICS = "metrics.jsonl"


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint was written and the run can be resumed."""


@dataclass
class TrainResult:
    folder: Path
    metrics: list[dict]
    best_score: float      # the checkpoint criterion of the best epoch (egma.validation)
    best_epoch: int
    steps: int
    wall_s: float

    def frame(self, kind: str):
        """The step or epoch records as a pandas DataFrame."""
        import pandas as pd
        return pd.DataFrame([r for r in self.metrics if r["kind"] == kind])


@dataclass
class Progress:
    """Where a run stands: `batch` global batches of `epoch` are done, `step` optimiser steps in all."""
    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_score: float = -1.0
    best_epoch: int = -1

    @classmethod
    def from_state(cls, state: dict) -> "Progress":
        """A checkpoint's progress; checkpoints written before the criterion became a score name it best_accuracy."""
        state = dict(state)
        if "best_accuracy" in state:
            state["best_score"] = state.pop("best_accuracy")
        return cls(**state)


# ---------------------------------------------------------------- pieces

def mimic_eye_root(data_root: str | Path) -> Path:
    """The MIMIC-Eye tree of a data root: <root>/mimic-eye for a phantom or book data root, else the root itself."""
    root = Path(data_root)
    return root / "mimic-eye" if (root / "mimic-eye").is_dir() else root


def resolve_precision(setting: str) -> str:
    if setting == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if setting not in ("no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision must be 'auto', 'no', 'bf16' or 'fp16', got {setting!r}")
    return setting


def warmup_cosine(total_steps: int, warmup_fraction: float):
    """LR factor of step s: a linear ramp over the w warm-up steps ((s+1)/(w+1), so even a one-step warm-up
    starts low), 1 at step w, then cosine decay towards 0 at total_steps."""
    warmup = max(1, int(round(warmup_fraction * total_steps))) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: biases, norms and the logit scale are left alone."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def config_record(cfg: Preset) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += _differences(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}: {b.get(k)!r} -> {a.get(k)!r}")
    return out


def check_run_folder(folder: Path, cfg: Preset, resume: bool) -> dict | None:
    """The checkpoint to resume from (None for a new run); refuses to reuse another run's folder."""
    if not resume:
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} already holds a training run; resume it (resume=True / --resume) "
                                  "or choose another run_dir -- it is never overwritten")
        return None
    saved = folder / "config.json"
    if not saved.is_file():
        raise CheckpointError(f"cannot resume: {saved} does not exist (no run was started in {folder})")
    check_criterion(folder)
    diff = _differences(config_record(cfg), json.loads(saved.read_text()))
    if diff:
        raise ValueError(f"cannot resume {folder} with another configuration (saved -> now): " + "; ".join(diff))
    return load_checkpoint(latest_checkpoint(folder))


def read_corpus(data_root: str | Path) -> list[Study]:
    """Every study of the MIMIC-Eye tree at data_root (all splits: the gaze cache is built over the corpus)."""
    root = mimic_eye_root(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist")
    studies = list(read_mimic_eye(root))
    if not any(s.split == "train" for s in studies):
        raise ValueError(f"{root}: none of its {len(studies)} studies is in the 'train' split "
                         "(cxr_split.csv); nothing to pretrain on")
    return studies


def apply_overrides(cfg: Preset, assignments: Sequence[str]) -> Preset:
    """cfg with "section.field=value" assignments applied (value parsed as a Python literal, else a string)."""
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        section, _, name = key.partition(".")
        if not sep or not name or not hasattr(cfg, section) or name not in {
                f.name for f in dataclasses.fields(getattr(cfg, section))}:
            raise ValueError(f"bad override {assignment!r}: expected section.field=value with a field of the preset")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})})
    return cfg


class _StopFlag:
    """Set by SIGINT/SIGTERM while training runs; the loop checkpoints and stops at the next optimiser step."""

    def __init__(self):
        self.raised: str | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _any_process(accelerator: Accelerator, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor([float(flag)], device=accelerator.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _all_rng_states(accelerator: Accelerator) -> list:
    if accelerator.num_processes == 1:
        return [rng_state()]
    states = [None] * accelerator.num_processes
    dist.all_gather_object(states, rng_state())
    return states


class MetricsLog:
    """metrics.jsonl of the main process; on resume, records written after the checkpoint are dropped."""

    def __init__(self, path: Path, active: bool, progress: Progress | None):
        self.path, self.active, self.records = path, active, []
        if path.is_file():
            kept = []
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if progress is not None and (record["kind"] == "step" and record["step"] <= progress.step
                                             or record["kind"] == "epoch" and record["epoch"] < progress.epoch):
                    kept.append(record)
            self.records = kept
            if active:
                atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def add(self, record: dict) -> None:
        self.records.append(record)
        if self.active:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------- the loop

def train(cfg: Preset, data_root: str | Path, run_dir: str | Path, *, resume: bool = False,
          workers: int = 2, max_steps: int | None = None, progress_bar: bool = True,
          accelerator: Accelerator | None = None, gaze_cache_path: str | Path | None = None,
          studies: Sequence[Study] | None = None) -> TrainResult:
    """Pretrain the preset's model on the MIMIC-Eye tree at data_root; results under run_dir/pretrain/.

    resume: continue the run in run_dir/pretrain from its latest checkpoint (same preset required);
    without it an existing run is never touched. max_steps stops after that many optimiser steps in all
    (the schedule still spans the whole run). Raises TrainingInterrupted after SIGINT/SIGTERM, once the
    checkpoint is written. gaze_cache_path: where the gaze cache is read or built (default run_dir/gaze_cache.pt).
    studies: the corpus of data_root when the caller has read it already (several runs on one corpus).
    """
    started = time.perf_counter()
    tc = cfg.train
    run_dir = Path(run_dir)
    folder = run_dir / TRAIN_FOLDER
    # cpu=True on a machine without CUDA: only then does Accelerate turn a torchrun/MPI launch into MULTI_CPU (gloo)
    accelerator = accelerator or Accelerator(mixed_precision=resolve_precision(tc.mixed_precision),
                                             cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    state = check_run_folder(folder, cfg, resume)  # before anything is read or written
    cache_path = Path(gaze_cache_path) if gaze_cache_path is not None else run_dir / GAZE_CACHE

    studies = read_corpus(data_root) if studies is None else list(studies)
    if main:
        cache = gaze_cache(studies, cache_path, cfg.gaze, cfg.model.image_size, cfg.model.grid,
                           progress=progress_bar)
    accelerator.wait_for_everyone()
    if not main:
        cache = gaze_cache(studies, cache_path, cfg.gaze, cfg.model.image_size, cfg.model.grid)
    val = validation_set(studies, tc.val_prompts_per_class, tc.seed)
    train_set = training_studies(studies, cache)
    del studies  # the raw gaze samples are no longer needed
    kept = gaze_subset(train_set, cache, tc.gaze_fraction, tc.seed)
    subset_file = folder / "gaze_subset.json"
    if state is not None and json.loads(subset_file.read_text())["study_ids"] != kept:
        raise CheckpointError(f"{subset_file} does not match the subset this corpus and seed give")

    n_batches = batches_per_epoch(len(train_set), tc.batch_size, tc.grad_accum)
    steps_per_epoch = n_batches // tc.grad_accum
    total_steps = steps_per_epoch * tc.epochs

    set_seed(tc.seed)
    tokenizer = build_tokenizer(cfg.model)
    model = build_model(cfg.model, tokenizer)
    optimizer = torch.optim.AdamW(parameter_groups(model, tc.weight_decay), lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, tc.warmup_fraction))
    progress = Progress()
    if state is not None:
        model.load_state_dict(state["model"])
    model, optimizer = accelerator.prepare(model, optimizer)  # the scheduler is stepped here, once per step
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        progress = Progress.from_state(state["progress"])
        set_rng_state(state["rng"][accelerator.process_index])
    loss_fn = LossBundle(cfg.loss, label_threshold=cfg.gaze.patch_label_threshold)

    if main and state is None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "config.json", json.dumps(config_record(cfg), indent=1))
        atomic_write_text(subset_file, json.dumps({"fraction": tc.gaze_fraction, "seed": tc.seed,
                                                   "n_with_gaze": sum(s.study_id in cache for s in train_set),
                                                   "study_ids": kept}))
    accelerator.wait_for_everyone()
    log = MetricsLog(folder / METRICS, main, progress if state is not None else None)
    dataset = StudyDataset(train_set)
    subset = GazeSubset(cache, kept)
    augment = PhotometricAugment() if tc.augment else None

    def checkpoint() -> None:
        rngs = _all_rng_states(accelerator)
        if main:
            save_checkpoint(folder, progress.step, {
                "model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "progress": dataclasses.asdict(progress), "rng": rngs},
                tc.keep_checkpoints)
        accelerator.wait_for_everyone()

    if main and progress_bar:
        print(f"pretraining {cfg.name}: {len(train_set)} train studies ({len(kept)} keep gaze), "
              f"{len(val)} validation images, {tc.epochs} epochs x {steps_per_epoch} steps, "
              f"{accelerator.num_processes} process(es) on {accelerator.device}, precision {accelerator.mixed_precision}")
    bar = tqdm(total=total_steps, initial=progress.step, desc=f"pretrain {cfg.name}", disable=not (main and progress_bar))
    stop_at = total_steps if max_steps is None else min(total_steps, max_steps)
    with _StopFlag() as stop:
        while progress.epoch < tc.epochs and progress.step < stop_at:
            sampler = EpochBatches(len(dataset), tc.batch_size, tc.seed, progress.epoch, n_batches, progress.batch,
                                   accelerator.process_index, accelerator.num_processes)
            collate = BatchCollate(tokenizer, cfg.model, subset, augment, tc.seed, progress.epoch)
            batches = iter(make_loader(dataset, sampler, collate, workers))
            sums, data_s, compute_s, n_micro = {}, 0.0, 0.0, 0
            model.train()
            while progress.batch < n_batches and progress.step < stop_at:
                t0 = time.perf_counter()
                batch = next(batches)
                t1 = time.perf_counter()
                inputs = {k: v.to(accelerator.device) for k, v in batch.model_inputs().items()}
                last_micro = (progress.batch + 1) % tc.grad_accum == 0
                sync = contextlib.nullcontext() if last_micro else accelerator.no_sync(model)
                with sync:
                    with accelerator.autocast():
                        values = loss_fn(model(**inputs), batch.gaze.to(accelerator.device),
                                         batch.has_gaze.to(accelerator.device), batch.labels.to(accelerator.device))
                    accelerator.backward(values["total"] / tc.grad_accum)
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value.item() / tc.grad_accum
                progress.batch += 1
                n_micro += 1
                if last_micro:
                    norm = accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip if tc.grad_clip > 0
                                                       else float("inf"))
                    lr = scheduler.get_last_lr()[0]
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    progress.step += 1
                compute_s += time.perf_counter() - t1
                data_s += t1 - t0
                if not last_micro:
                    continue
                log.add({"kind": "step", "step": progress.step, "epoch": progress.epoch, "lr": lr,
                         **{f"loss_{k}": v for k, v in sums.items()}, "grad_norm": float(norm),
                         "logit_scale": accelerator.unwrap_model(model).logit_scale.item(),
                         "data_s": data_s, "compute_s": compute_s,
                         "images_per_s": n_micro * tc.batch_size / (data_s + compute_s)})
                bar.update(1)
                bar.set_postfix(loss=f"{sums['total']:.3f}", data=f"{data_s / (data_s + compute_s):.0%}")
                sums, data_s, compute_s, n_micro = {}, 0.0, 0.0, 0
                interrupted = _any_process(accelerator, stop.raised is not None)
                if interrupted or progress.step % tc.checkpoint_every == 0:
                    checkpoint()
                if interrupted:
                    bar.close()
                    raise TrainingInterrupted(f"stopped by {stop.raised or 'another process'} at step "
                                              f"{progress.step}; checkpoint written to {folder / 'checkpoints'}; "
                                              "resume with resume=True / --resume")
            if progress.batch < n_batches:
                break  # max_steps reached inside the epoch
            if main:
                record = zero_shot_validation(accelerator.unwrap_model(model), tokenizer, val, accelerator.device)
                if record["val_score"] > progress.best_score:
                    progress.best_score, progress.best_epoch = record["val_score"], progress.epoch
                    save_best(folder, accelerator.unwrap_model(model).state_dict(),
                              {"epoch": progress.epoch, "step": progress.step, **record})
                log.add({"kind": "epoch", "epoch": progress.epoch, "step": progress.step,
                         "wall_s": time.perf_counter() - started, **record})
                bar.write(f"epoch {progress.epoch}: validation zero-shot balanced accuracy {record['val_score']:.1%} "
                          f"({record['val_scoring']}; accuracy {record['val_accuracy']:.1%}, n={record['val_n']}, "
                          f"majority {record['val_majority']:.1%})")
            progress.epoch, progress.batch = progress.epoch + 1, 0
            progress.best_score, progress.best_epoch = _broadcast_best(accelerator, progress)
            checkpoint()
    bar.close()
    if progress.step >= stop_at and progress.batch:
        checkpoint()  # stopped inside an epoch by max_steps: keep the exact position
    return TrainResult(folder, log.records, progress.best_score, progress.best_epoch, progress.step,
                       time.perf_counter() - started)


def _broadcast_best(accelerator: Accelerator, progress: Progress) -> tuple[float, int]:
    """The main process's best validation score, so every process checkpoints the same progress."""
    if accelerator.num_processes == 1:
        return progress.best_score, progress.best_epoch
    value = torch.tensor([progress.best_score, float(progress.best_epoch)], device=accelerator.device)
    dist.broadcast(value, src=0)
    return float(value[0]), int(value[1])


def init_stage(cfg: Preset) -> Preset | None:
    """The init stage's preset (MedCLIP's semantic matching loss on the global embeddings, no gaze, init_epochs
    epochs), or None when there is none."""
    if cfg.train.init_epochs <= 0 or cfg.model.medclip_checkpoint or cfg.model.init_weights:
        return None
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, name="medclip"),
                               train=dataclasses.replace(cfg.train, epochs=cfg.train.init_epochs, init_epochs=0,
                                                         lr=cfg.train.init_lr or cfg.train.lr, init_lr=None,
                                                         gaze_fraction=0.0))


def init_weights_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / INIT_FOLDER / TRAIN_FOLDER / BEST_MODEL


def after_init(cfg: Preset, run_dir: str | Path) -> Preset:
    """cfg starting from the init stage's best weights in run_dir (cfg itself when it has no init stage)."""
    if init_stage(cfg) is None:
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init_weights=str(init_weights_file(run_dir))),
                               train=dataclasses.replace(cfg.train, init_epochs=0))


def _earlier_criterion(where: str) -> CheckpointError:
    return CheckpointError(f"{where}: this run was validated by the earlier criterion (accuracy with the global-max "
                           "rule), which names no scoring rule for the evaluation chapters; train it again (move the "
                           "folder aside first) to choose by the validation balanced accuracy of every rule")


def check_criterion(folder: str | Path) -> None:
    """Refuse a run folder whose epoch records lack "val_by_scoring" (validated before every scoring rule was
    recorded): the chapters that read a run back need each rule's scores."""
    metrics = Path(folder) / METRICS
    if not metrics.is_file():
        return
    for row, line in enumerate(metrics.read_text().splitlines(), start=1):
        record = json.loads(line) if line.strip() else {}
        if record.get("kind") == "epoch" and "val_by_scoring" not in record:
            raise _earlier_criterion(f"{metrics}, line {row}")


def finished(folder: str | Path, cfg: Preset) -> bool:
    """Whether the run in `folder` (a run's pretrain/) completed all cfg.train.epochs epochs."""
    metrics = Path(folder) / METRICS
    if not (Path(folder) / BEST_MODEL).is_file() or not metrics.is_file():
        return False
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in records if r["kind"] == "epoch"]
    return bool(epochs) and max(epochs) >= cfg.train.epochs - 1


def ensure_init(cfg: Preset, data_root: str | Path, run_dir: str | Path, *, resume: bool = True,
                train_fn=None, **kwargs) -> Path | None:
    """The init stage's weights file in run_dir, trained first unless finished (None: the preset has no init
    stage). resume: continue an interrupted init stage and keep a finished one; without it an existing one is
    an error, as in `train`. kwargs go to `train` (or `train_fn`)."""
    init = init_stage(cfg)
    if init is None:
        return None
    init_dir = Path(run_dir) / INIT_FOLDER
    check_criterion(init_dir / TRAIN_FOLDER)
    if not (resume and finished(init_dir / TRAIN_FOLDER, init)):
        (train_fn or train)(init, data_root, init_dir,
                            resume=resume and (init_dir / TRAIN_FOLDER / "config.json").exists(),
                            gaze_cache_path=Path(run_dir) / GAZE_CACHE, **kwargs)
    return init_weights_file(run_dir)


def pretrain(cfg: Preset, data_root: str | Path, run_dir: str | Path, *, resume: bool = False,
             **kwargs) -> TrainResult:
    """Chapter 4's pretraining: the init stage into run_dir/init/ when the preset has one, then cfg's loss from its
    best weights into run_dir/pretrain/; both share run_dir/gaze_cache.pt. resume: continue whichever stage has a
    run (a finished init stage is kept as it is); without it an existing stage is an error, as in `train`.
    kwargs go to `train`."""
    run_dir = Path(run_dir)
    ensure_init(cfg, data_root, run_dir, resume=resume, **kwargs)
    return train(after_init(cfg, run_dir), data_root, run_dir,
                 resume=resume and (run_dir / TRAIN_FOLDER / "config.json").exists(), **kwargs)


def trained_model(cfg: Preset, run_dir: str | Path) -> tuple[EGMAModel, dict]:
    """The best model of run_dir/pretrain (eval mode, on the CPU) and the validation record it was chosen by."""
    folder = Path(run_dir) / TRAIN_FOLDER
    best = load_best(folder)
    if "val_scoring" not in best["metrics"]:
        raise _earlier_criterion(str(folder / BEST_MODEL))
    model = build_model(dataclasses.replace(cfg.model, init_weights=None))  # the best weights replace any init
    model.load_state_dict(best["model"])
    return model.eval(), best["metrics"]


# ---------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="egma.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ci")
    parser.add_argument("--data-root", required=True, help="phantom/book data root or a MIMIC-Eye tree")
    parser.add_argument("--run-dir", required=True, help="results go to RUN_DIR/pretrain/")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("--workers", type=int, default=2, help="data-loader worker processes per process")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a preset field, e.g. --set train.epochs=3 --set loss.name=clip")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    cfg = apply_overrides(get_preset(args.preset), args.set)
    try:
        result = pretrain(cfg, args.data_root, args.run_dir, resume=args.resume, workers=args.workers,
                          max_steps=args.max_steps, progress_bar=not args.no_progress)
    except TrainingInterrupted as stopped:
        raise SystemExit(f"egma.train: {stopped}") from None
    if PartialState().is_main_process:
        print(f"done: {result.steps} steps in {result.wall_s:.0f} s; best validation zero-shot balanced accuracy "
              f"{result.best_score:.1%} (epoch {result.best_epoch}); model in {result.folder / 'best'}")


if __name__ == "__main__":
    main()
