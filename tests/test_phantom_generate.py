"""The phantom generator end to end: determinism, reader round trip, corpus realism, partial trees."""
from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from egma.config import PhantomConfig
from egma.datasets import read_chexpert_5x200, read_mimic_eye, read_rsna, read_siim
from egma.datasets.errors import IncompleteDatasetError
from egma.phantom.generate import generate_phantom, plan_studies, simulate_study
from egma.phantom.truth import load_study_masks, load_truth

CFG = PhantomConfig(n_studies=14, image_size=256, multi_reader_fraction=0.3, egd_fraction=0.4,
                    n_per_class_5x200=2, n_per_class_8x200=1, n_rsna=10, n_siim=10, n_chexpert_train=8,
                    downstream_image_size=128, seed=3)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return generate_phantom(tmp_path_factory.mktemp("phantom") / "tree", CFG, workers=1, progress=False)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_tree_whatever_the_workers(tree, tmp_path):
    again = generate_phantom(tmp_path / "again", CFG, workers=2, progress=False)
    first, second = _digests(tree), _digests(again)
    assert len(first) > 100
    assert first == second


def test_another_seed_gives_another_tree(tree, tmp_path):
    other = generate_phantom(tmp_path / "other", PhantomConfig(**{**CFG.__dict__, "seed": 4}), progress=False)
    assert _digests(tree) != _digests(other)


def test_existing_tree_is_never_overwritten_silently(tree):
    with pytest.raises(FileExistsError, match="exists"):
        generate_phantom(tree, CFG, progress=False)


def _close(a, b, atol):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], atol=atol, rtol=0)


def test_readers_return_what_the_generator_made(tree):
    read = {s.dicom_id: s for s in read_mimic_eye(tree / "mimic-eye")}
    expected = [simulate_study(job, CFG) for job in plan_studies(CFG)]
    assert sorted(read) == sorted(e.study.dicom_id for e in expected)
    n_sources = set()
    for e in expected:
        want, got = e.study, read[e.study.dicom_id]
        assert (got.study_id, got.subject_id, got.split, got.image_size) == \
               (want.study_id, want.subject_id, want.split, want.image_size)
        assert got.report_sentences == want.report_sentences
        for label, value in want.labels.items():
            assert (math.isnan(value) and math.isnan(got.labels[label])) or got.labels[label] == value, label
        got_readings = {r.reading_id: r for r in got.readings}
        assert sorted(got_readings) == sorted(r.reading_id for r in want.readings)
        for w in want.readings:
            g = got_readings[w.reading_id]
            n_sources.add(w.source)
            assert g.source == w.source
            assert g.transcript.tokens == w.transcript.tokens
            _close(g.transcript.t_start, w.transcript.t_start, 1e-3)
            _close(g.transcript.t_end, w.transcript.t_end, 1e-3)
            _close(g.samples.t, w.samples.t, 1e-3)
            _close(g.samples.x, w.samples.x, 0.05)
            _close(g.samples.y, w.samples.y, 0.05)
            assert g.samples.rate_hz == w.samples.rate_hz
            np.testing.assert_allclose(g.samples.px_per_deg, w.samples.px_per_deg, rtol=1e-3)
            _close(g.fixations.t_start, w.fixations.t_start, 1e-3)
            _close(g.fixations.t_end, w.fixations.t_end, 1e-3)
            _close(g.fixations.x, w.fixations.x, 0.05)
    assert n_sources == {"reflacx", "egd-cxr"}


def test_truth_sidecar_matches_the_reports_and_masks(tree):
    truth = load_truth(tree / "phantom_truth")
    assert len(truth["studies"]) == CFG.n_studies
    for dicom_id, study in truth["studies"].items():
        masks = load_study_masks(tree / "phantom_truth", dicom_id)
        assert masks["anatomy:lungs"].shape == tuple(study["image_size"])
        for finding in study["findings"]:
            assert masks[f"finding:{finding['name']}"].any()


def test_phantom_corpus_gaze_statistics_match_real_radiologists(tree):
    durations, amplitudes = [], []
    for study in read_mimic_eye(tree / "mimic-eye"):
        width = study.image_size[1]
        for reading in study.readings:
            f = reading.fixations
            durations.append(f.duration)
            amplitudes.append(np.hypot(np.diff(f.x), np.diff(f.y)) / width)
    durations, amplitudes = np.concatenate(durations), np.concatenate(amplitudes)
    assert 0.22 <= np.median(durations) <= 0.34
    assert 0.10 <= np.median(amplitudes) <= 0.25


def test_downstream_sets_are_readable_in_their_real_formats(tree):
    five = read_chexpert_5x200(tree / "chexpert" / "CheXpert-v1.0-small", csv="chexpert_5x200.csv",
                               n_per_class=CFG.n_per_class_5x200)
    assert len(five.paths) == 5 * CFG.n_per_class_5x200
    assert all(Path(p).is_file() for p in five.paths)
    rsna = read_rsna(tree / "rsna")
    assert len(rsna.paths) == CFG.n_rsna
    siim = read_siim(tree / "siim")
    assert len(siim.paths) == CFG.n_siim
    for i in range(len(siim.paths)):
        assert siim.mask(i).any() == bool(siim.labels[i, 0])


def test_a_partial_tree_is_reported_not_used(tree, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tree / "mimic-eye", broken)
    gaze = next(broken.rglob("gaze.csv"))
    gaze.unlink()
    with pytest.raises(IncompleteDatasetError, match="gaze.csv"):
        read_mimic_eye(broken)
    with pytest.warns(UserWarning):
        studies = read_mimic_eye(broken, allow_partial=True)
    complete = read_mimic_eye(tree / "mimic-eye")
    missing = gaze.parent.name   # the reading whose gaze is gone is left out, the rest is kept
    assert missing not in {r.reading_id for s in studies for r in s.readings}
    assert sum(len(s.readings) for s in studies) == sum(len(s.readings) for s in complete) - 1
