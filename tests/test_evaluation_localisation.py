"""egma.evaluation.localisation on constructed maps: pointing game, map AUROC, CC, KL, NSS, the model frame."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from egma.evaluation import localisation as loc


def test_boxes_to_mask_and_model_frame_padding():
    mask = loc.boxes_to_mask([(0, 0, 20, 10)], (10, 20))   # a landscape image, fully covered
    assert mask.all()
    region = loc.region_in_model_frame(mask, 20)            # padded 5 rows above and below, same scale
    assert not region[:5].any() and region[5:15].all() and not region[15:].any()
    assert loc.boxes_to_mask([(1.2, 0.0, 3.0, 2.0)], (3, 4)).tolist() == [[False, True, True, False]] * 2 + \
        [[False] * 4]


def test_pointing_game_hits_and_misses_and_splits_ties():
    region = np.zeros((14, 14), bool)
    region[:7, :7] = True                                    # the top-left patch of a 2 x 2 grid
    assert loc.pointing_game(np.array([[1.0, 0.0], [0.0, 0.0]]), region) == 1.0
    assert loc.pointing_game(np.array([[0.0, 0.0], [0.0, 1.0]]), region) == 0.0
    assert loc.pointing_game(np.ones((2, 2)), region) == pytest.approx(0.25)
    assert loc.pointing_game(np.array([[1.0, 1.0], [0.0, 0.0]]), region, mode="nearest") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="empty"):
        loc.pointing_game(np.ones((2, 2)), np.zeros((14, 14), bool))


def test_map_auroc_perfect_inverse_and_against_sklearn():
    region = np.zeros((8, 8), bool)
    region[:4] = True
    top = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert loc.map_auroc(top, region, mode="nearest") == 1.0
    assert loc.map_auroc(-top, region, mode="nearest") == 0.0
    rng = np.random.default_rng(0)
    grid = rng.random((4, 4))
    up = loc.upsample_map(grid, 8)
    valid = np.ones((8, 8), bool)
    valid[:, 0] = False
    assert loc.map_auroc(grid, region, valid) == pytest.approx(roc_auc_score(region[valid], up[valid]))


def test_gaze_agreement_measures():
    rng = np.random.default_rng(0)
    gaze = rng.random((16, 16))
    assert loc.pearson_cc(gaze, 3 * gaze + 1) == pytest.approx(1.0)
    assert loc.pearson_cc(gaze, -gaze) == pytest.approx(-1.0)
    assert loc.kl_divergence(gaze, gaze) == pytest.approx(0.0, abs=1e-4)   # eps: about -256 * 1e-7
    assert loc.kl_divergence(gaze, 2 * gaze + 5) == pytest.approx(loc.kl_divergence(gaze, gaze), abs=1e-9)   # shift and scale removed
    assert loc.kl_divergence(gaze, rng.random((16, 16))) > loc.kl_divergence(gaze, gaze + 0.01 * rng.random((16, 16)))
    p, q = loc.as_distribution(gaze), loc.as_distribution(np.ones((16, 16)))
    assert loc.kl_divergence(gaze, np.ones((16, 16))) == pytest.approx((p * np.log(1e-7 + p / (q + 1e-7))).sum())


def test_nss_on_a_constructed_map():
    saliency = np.zeros((4, 4))
    saliency[1, 2] = 1.0                                      # mean 1/16, sd sqrt(15)/16
    z_peak = (1 - 1 / 16) / (np.sqrt(15) / 16)
    assert loc.nss(saliency, [2.5], [1.5]) == pytest.approx(z_peak)
    assert loc.nss(saliency, [2.5, 0.1], [1.5, 0.1]) == pytest.approx((z_peak + (-1 / 16) / (np.sqrt(15) / 16)) / 2)
    assert loc.nss(saliency, [2.5, 9.0], [1.5, 1.0]) == pytest.approx(z_peak)    # off-map point dropped
    assert loc.nss(np.ones((4, 4)), [1.0], [1.0]) == 0.0


def test_patch_similarity_map_shape():
    patches = np.eye(4)
    assert loc.patch_similarity_map(patches, np.array([0, 0, 1, 0])).tolist() == [[0, 0], [1, 0]]
    with pytest.raises(ValueError):
        loc.patch_similarity_map(np.ones((5, 2)), np.ones(2))
