"""The gaze cache: round trip, cheap batches, and refusal to mix parameters or corpora."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from egma.config import GazeConfig
from egma.datasets.study import FixationTable, Reading, Study, Transcript
from egma.gaze.cache import GazeCacheMismatch, build_gaze_cache, gaze_cache, load_gaze_cache
from egma.gaze.heatmaps import study_heatmaps
from egma.gaze.patch_labels import soft_labels

CFG = replace(GazeConfig(), fixation_method="dataset")


def _study(k, n_sentences):
    rng = np.random.default_rng(k)
    words = [f"finding{k}x{i}" for i in range(n_sentences)]
    tokens, start = [], []
    for i, w in enumerate(words):
        tokens += [w, "."]
        start += [2.0 * i + 1, 2.0 * i + 1.5]
    t = np.array(start)
    fix = FixationTable(np.arange(0, 2.0 * n_sentences, 0.4), np.arange(0, 2.0 * n_sentences, 0.4) + 0.3,
                        rng.uniform(10, 190, 5 * n_sentences), rng.uniform(10, 290, 5 * n_sentences))
    reading = Reading(f"r{k}", "a", "reflacx", Transcript(tokens, t, t + 0.4), fixations=fix)
    return Study(f"s{k}", "p", "d", Path("x"), (300, 200), [w + "." for w in words], readings=[reading])


@pytest.fixture
def studies():
    return [_study(0, 3), _study(1, 1), Study("nogaze", "p", "d", Path("x"), (300, 200), ["a."]), _study(2, 4)]


def test_round_trip_and_batches(tmp_path, studies):
    cache = build_gaze_cache(studies, tmp_path / "gaze.pt", CFG, 64, 7, progress=False)
    assert len(cache) == 3 and "nogaze" not in cache
    expected = soft_labels(study_heatmaps(studies[3], CFG, 64).maps, 7)
    np.testing.assert_allclose(cache.soft("s2").float().numpy(), expected, atol=1e-3)   # float16
    assert cache.study_sentences("s2") == studies[3].report_sentences

    gs, gl, mask, has_gaze = cache.batch(["s1", "nogaze", "s2"])
    assert gs.shape == (3, 4, 49) and gs.dtype == torch.float32
    assert mask.sum(1).tolist() == [1, 0, 4] and has_gaze.tolist() == [True, False, True]
    assert torch.equal(gl, gs > CFG.patch_label_threshold) and not gs[1].any()


def test_existing_cache_is_never_overwritten_unasked(tmp_path, studies):
    path = tmp_path / "gaze.pt"
    build_gaze_cache(studies, path, CFG, 64, 7, progress=False)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        build_gaze_cache(studies, path, replace(CFG, sigma_deg=2.0), 64, 7, progress=False)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))
    assert len(gaze_cache(studies, path, CFG, 64, 7)) == 3   # loads, does not rebuild
    assert path.read_bytes() == before
    build_gaze_cache(studies, path, replace(CFG, sigma_deg=2.0), 64, 7, overwrite=True, progress=False)
    assert path.read_bytes() != before


@pytest.mark.parametrize("change", [dict(sigma_deg=2.0), dict(eye_voice_lead_s=0.1), dict(fixation_method="ivt")])
def test_changed_parameters_are_refused_by_name(tmp_path, studies, change):
    path = tmp_path / "gaze.pt"
    build_gaze_cache(studies, path, CFG, 64, 7, progress=False)
    with pytest.raises(GazeCacheMismatch, match=next(iter(change))):
        load_gaze_cache(path, replace(CFG, **change), 64, 7)
    with pytest.raises(GazeCacheMismatch, match="grid"):
        load_gaze_cache(path, CFG, 64, 14)


def test_threshold_applies_at_load_and_other_corpus_is_refused(tmp_path, studies):
    path = tmp_path / "gaze.pt"
    build_gaze_cache(studies, path, CFG, 64, 7, progress=False)
    strict = load_gaze_cache(path, replace(CFG, patch_label_threshold=0.5), 64, 7)
    gs, gl, _, _ = strict.batch(["s0"])
    assert torch.equal(gl, gs > 0.5) and gl.sum() < (gs > 0).sum()
    with pytest.raises(GazeCacheMismatch, match="another corpus"):
        gaze_cache(studies[:2], path, CFG, 64, 7)
