"""Exact area pooling to any grid, and the GS / GL labels."""
import numpy as np
import pytest

from egma.gaze.patch_labels import area_pool, area_pooling_matrix, hard_labels, soft_labels


def _supersampled_reference(image, grid):
    """Area means by brute force: replicate each pixel grid x grid times, so every patch border
    (at multiples of size/grid) falls on a pixel border."""
    big = np.kron(image, np.ones((grid, grid)))
    n = big.shape[0] // grid
    return big.reshape(grid, n, grid, n).mean(axis=(1, 3))


@pytest.mark.parametrize("size, grid", [(224, 7), (224, 14), (50, 7), (31, 4), (10, 10)])
def test_area_pool_equals_brute_force_area_means(size, grid):
    image = np.random.default_rng(size).random((size, size))
    np.testing.assert_allclose(area_pool(image, grid), _supersampled_reference(image, grid), rtol=1e-10)


def test_area_pool_is_block_mean_when_grid_divides_and_keeps_batch_axes():
    maps = np.random.default_rng(0).random((3, 28, 28))
    np.testing.assert_allclose(area_pool(maps, 7), maps.reshape(3, 7, 4, 7, 4).mean(axis=(2, 4)))
    matrix = area_pooling_matrix(50, 7)
    np.testing.assert_allclose(matrix.sum(axis=0), 7 / 50)   # every pixel fully shared out


def test_soft_labels_scale_rows_to_max_one_and_keep_empty_rows_empty():
    maps = np.zeros((2, 28, 28))
    maps[0, 2, 3], maps[0, 20, 20] = 1.0, 3.0
    gs = soft_labels(maps, 7)
    assert gs.shape == (2, 49)
    assert gs[0].max() == 1.0 and gs[0, 5 * 7 + 5] == 1.0 and gs[0, 0] == pytest.approx(1 / 3)
    assert not gs[1].any()
    np.testing.assert_array_equal(hard_labels(gs, 0.0)[0], gs[0] > 0)
    assert hard_labels(gs, 0.5)[0].sum() == 1
