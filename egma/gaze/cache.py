"""The gaze corpus preprocessed once into one file, loaded cheaply by the pretraining dataset.

File: a torch zip archive (torch.save) holding
- "soft": float16 (N, grid*grid), GS row of every (study, sentence), studies one after another;
- "offsets": int64 (S+1,), rows of study i are offsets[i]:offsets[i+1]; "study_ids": S strings;
- "sentences": N strings (the report sentences the rows belong to); "fallback": bool (N,);
- "params" and "params_hash": everything that shapes GS (GazeConfig except the GL threshold,
  which is applied at load time, the map size, the grid, the format version);
- "corpus": a fingerprint of the studies it was built from.
It is loaded with torch.load(mmap=True), so a batch only touches its own rows. The builder writes
a temporary file next to the target and renames it atomically; it never replaces an existing
cache unless asked to (overwrite=True). Loading with other parameters, or for another corpus when
the studies are given, raises GazeCacheMismatch saying what differs.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from egma.checkpoint import atomic_save
from egma.config import GazeConfig
from egma.datasets.study import Study
from egma.gaze.heatmaps import GazeFallbackWarning, study_heatmaps
from egma.gaze.patch_labels import soft_labels

CACHE_FORMAT = 1


class GazeCacheMismatch(RuntimeError):
    """An existing cache was built with other parameters or from another corpus."""


def cache_parameters(cfg: GazeConfig, size: int, grid: int) -> dict:
    gaze = asdict(cfg)
    gaze.pop("patch_label_threshold")
    return {"format": CACHE_FORMAT, "gaze": gaze, "size": int(size), "grid": int(grid)}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def corpus_fingerprint(studies: list[Study]) -> str:
    """Identity of a corpus: studies, their sentences and their readings (ids and sample counts)."""
    return _digest([[s.study_id, list(s.report_sentences),
                     [[r.reading_id, len(r.samples) if r.samples is not None else -1,
                       len(r.fixations) if r.fixations is not None else -1] for r in s.readings]]
                    for s in studies])


class GazeCache:
    """Memory-mapped GS rows of a corpus, indexed by study id."""

    def __init__(self, content: dict, path: Path, threshold: float):
        self.path, self.threshold = path, threshold
        self.params, self.params_hash, self.corpus = content["params"], content["params_hash"], content["corpus"]
        self.soft_rows: torch.Tensor = content["soft"]
        self.offsets: torch.Tensor = content["offsets"]
        self.study_ids: list[str] = content["study_ids"]
        self.sentences: list[str] = content["sentences"]
        self.fallback: torch.Tensor = content["fallback"]
        self.grid = self.params["grid"]
        self._index = {sid: i for i, sid in enumerate(self.study_ids)}

    def __contains__(self, study_id: str) -> bool:
        return study_id in self._index

    def __len__(self) -> int:
        return len(self.study_ids)

    def rows(self, study_id: str) -> slice:
        i = self._index[study_id]
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def soft(self, study_id: str) -> torch.Tensor:
        """GS of one study: (m, grid*grid) float16 view into the file."""
        return self.soft_rows[self.rows(study_id)]

    def study_sentences(self, study_id: str) -> list[str]:
        return self.sentences[self.rows(study_id)]

    def batch(self, study_ids: list[str], max_sentences: int | None = None):
        """Padded GS (b, M, n) float32, GL (b, M, n) bool, sentence mask (b, M), has_gaze (b,).
        Studies not in the cache get zero rows and has_gaze False."""
        spans = [self.rows(sid) if sid in self._index else slice(0, 0) for sid in study_ids]
        lengths = [s.stop - s.start for s in spans]
        m = max_sentences if max_sentences is not None else max(lengths, default=0)
        gs = torch.zeros(len(study_ids), m, self.grid * self.grid)
        mask = torch.zeros(len(study_ids), m, dtype=torch.bool)
        for k, (span, n) in enumerate(zip(spans, lengths)):
            n = min(n, m)
            gs[k, :n] = self.soft_rows[span.start:span.start + n].float()
            mask[k, :n] = True
        has_gaze = torch.tensor([n > 0 for n in lengths], dtype=torch.bool)
        return gs, gs > self.threshold, mask, has_gaze


def build_gaze_cache(studies: list[Study], path: str | Path, cfg: GazeConfig, size: int, grid: int,
                     overwrite: bool = False, progress: bool = True) -> GazeCache:
    """Preprocess every study with gaze and write the cache file (see module docstring)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; load it with load_gaze_cache, or pass overwrite=True to rebuild it")
    study_ids, sentences, soft, fallback, offsets = [], [], [], [], [0]
    n_fallback_warnings = 0
    for study in tqdm(studies, desc="gaze heatmaps", disable=not progress):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GazeFallbackWarning)
            maps = study_heatmaps(study, cfg, size)
        n_fallback_warnings += sum(issubclass(w.category, GazeFallbackWarning) for w in caught)
        if maps is None:
            continue
        study_ids.append(study.study_id)
        sentences.extend(maps.sentences)
        soft.append(soft_labels(maps.maps, grid).astype(np.float16))
        fallback.append(maps.fallback)
        offsets.append(offsets[-1] + len(maps.sentences))
    if n_fallback_warnings:
        warnings.warn(f"{n_fallback_warnings} readings/studies used whole-reading fallback maps "
                      "(flagged per sentence in the cache's 'fallback')", GazeFallbackWarning, stacklevel=2)
    params = cache_parameters(cfg, size, grid)
    content = {
        "params": params, "params_hash": _digest(params), "corpus": corpus_fingerprint(studies),
        "soft": torch.from_numpy(np.concatenate(soft) if soft else np.zeros((0, grid * grid), np.float16)),
        "offsets": torch.tensor(offsets, dtype=torch.int64), "study_ids": study_ids, "sentences": sentences,
        "fallback": torch.from_numpy(np.concatenate(fallback) if fallback else np.zeros(0, bool)),
    }
    atomic_save(content, path)
    return load_gaze_cache(path, cfg, size, grid)


def load_gaze_cache(path: str | Path, cfg: GazeConfig, size: int, grid: int,
                    studies: list[Study] | None = None) -> GazeCache:
    """Open a cache after checking it was built with these parameters (and, given, from these studies)."""
    path = Path(path)
    content = torch.load(path, mmap=True, weights_only=True)
    expected = cache_parameters(cfg, size, grid)
    if content.get("params_hash") != _digest(expected):
        stored = content.get("params", {})
        diff = sorted({k for k in set(expected["gaze"]) | set(stored.get("gaze", {}))
                       if expected["gaze"].get(k) != stored.get("gaze", {}).get(k)}
                      | {k for k in ("format", "size", "grid") if expected[k] != stored.get(k)})
        raise GazeCacheMismatch(f"{path} was built with other gaze parameters (differ: {', '.join(diff)}); "
                                "rebuild it with build_gaze_cache(..., overwrite=True) or use another path")
    if studies is not None and content["corpus"] != corpus_fingerprint(studies):
        raise GazeCacheMismatch(f"{path} was built from another corpus; rebuild it with overwrite=True "
                                "or use another path")
    return GazeCache(content, path, cfg.patch_label_threshold)


def gaze_cache(studies: list[Study], path: str | Path, cfg: GazeConfig, size: int, grid: int,
               progress: bool = True) -> GazeCache:
    """Load the cache at `path` if it exists (checked against parameters and corpus), else build it."""
    if Path(path).exists():
        return load_gaze_cache(path, cfg, size, grid, studies)
    return build_gaze_cache(studies, path, cfg, size, grid, progress=progress)
