"""Training checkpoints: written atomically, found reliably, loaded with a clear error when broken.

Layout under a training folder:
    checkpoints/step-000120/state.pt   model, optimiser, scheduler, progress, RNG states of every process
    checkpoints/LATEST                 name of the newest complete checkpoint (replaced atomically)
    best/model.pt                      weights of the best validation epoch (+ its metrics)
A checkpoint is written to a temporary folder and renamed into place before LATEST points at it, so a
process killed at any moment leaves the previous checkpoint intact; leftovers (*.tmp) are ignored and
cleaned by the next save.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

STATE_FILE = "state.pt"
LATEST = "LATEST"
BEST_MODEL = Path("best") / "model.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not belong to this run."""


def rng_state() -> dict:
    """Every RNG training may draw from on this process."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file next to `path`, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def save_checkpoint(folder: Path, step: int, state: dict, keep: int) -> Path:
    """Write checkpoints/step-<step>/, point LATEST at it, keep the newest `keep` and drop leftovers."""
    root = Path(folder) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    final = root / name
    staging = Path(tempfile.mkdtemp(prefix=name + ".", suffix=".tmp", dir=root))
    torch.save(state, staging / STATE_FILE)
    if final.exists():  # the same step saved again (e.g. epoch end right after a periodic save)
        shutil.rmtree(final)
    os.replace(staging, final)
    atomic_write_text(root / LATEST, name)
    complete = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in complete[:-max(keep, 1)]:
        shutil.rmtree(old)
    for leftover in root.glob("*.tmp"):
        if leftover != staging:
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    return final


def latest_checkpoint(folder: Path) -> Path:
    """state.pt of the newest complete checkpoint of a training folder (CheckpointError when there is none)."""
    pointer = Path(folder) / "checkpoints" / LATEST
    if not pointer.is_file():
        raise CheckpointError(f"no checkpoint to resume from: {pointer} does not exist "
                              "(start a new run without resume, or point at the run's training folder)")
    path = pointer.parent / pointer.read_text().strip() / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{pointer} names {path.parent.name}, but {path} is missing")
    return path


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, or CheckpointError naming the file when it cannot be read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: torch/pickle raise many different types
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); "
                              "delete it to fall back to an earlier one, or start a new run") from err
    missing = {"model", "optimizer", "scheduler", "progress", "rng"} - set(state) if isinstance(state, dict) else {"*"}
    if missing:
        raise CheckpointError(f"{path} is not an egma training checkpoint (missing {sorted(missing)})")
    return state


def save_best(folder: Path, model_state: dict, record: dict) -> None:
    atomic_save({"model": model_state, "metrics": record}, Path(folder) / BEST_MODEL)


def _read_model_file(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: train first (egma.train) or point at the training folder")
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable model file ({type(err).__name__}: {err})") from err
    if not isinstance(content, dict) or "model" not in content:
        raise CheckpointError(f"{path} is not a model file written by egma.train (no 'model' entry)")
    return content


def load_best(folder: Path) -> dict:
    """{"model": state dict, "metrics": the validation record it was chosen by} of a training folder."""
    return _read_model_file(Path(folder) / BEST_MODEL)


def load_model_file(path: str | Path) -> dict:
    """The state dict of a model file written by egma.train (e.g. a run's pretrain/best/model.pt)."""
    return _read_model_file(Path(path))["model"]
