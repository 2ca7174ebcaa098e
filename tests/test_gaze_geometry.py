"""Pad-to-square + resize: images, masks, points and patches stay in register."""
import numpy as np
import pytest
import torch

from egma.gaze.geometry import (image_extent_in_model, pad_to_square, points_to_model, points_to_patch,
                                square_frame, to_model_frame)
from egma.gaze.patch_labels import area_pool


@pytest.mark.parametrize("hw", [(300, 200), (200, 300), (250, 250), (301, 198)])
def test_padding_is_centred_and_shared_by_numpy_and_torch(hw):
    image = np.random.default_rng(0).random(hw)
    padded = pad_to_square(image, value=-1.0)
    side, top, left = square_frame(hw)
    assert padded.shape == (side, side)
    np.testing.assert_array_equal(padded[top:top + hw[0], left:left + hw[1]], image)
    assert (padded == -1).sum() == side * side - image.size
    assert abs(top - (side - hw[0] - top)) <= 1 and abs(left - (side - hw[1] - left)) <= 1
    np.testing.assert_allclose(pad_to_square(torch.from_numpy(image)[None], -1.0)[0].numpy(), padded)
    np.testing.assert_allclose(to_model_frame(torch.from_numpy(image).float(), 64).numpy(),
                               to_model_frame(image.astype(np.float32), 64), atol=1e-6)


@pytest.mark.parametrize("hw", [(600, 420), (420, 600), (512, 512)])
@pytest.mark.parametrize("grid", [7, 14])
def test_a_fixated_pixel_lands_on_its_patch(hw, grid):
    """Paint a small spot, push the image through pad + resize + area pooling: the brightest
    patch is the one points_to_patch predicts."""
    rng = np.random.default_rng(1)
    checked = 0
    for x, y in rng.uniform(0, 1, (40, 2)) * np.array([hw[1], hw[0]]):
        u, v = points_to_model(x, y, hw, grid)
        if min(u % 1, 1 - u % 1, v % 1, 1 - v % 1) < 0.1:   # too close to a patch border to call
            continue
        image = np.zeros(hw, np.float32)
        image[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3] = 1.0
        pooled = area_pool(to_model_frame(image, 224), grid)
        assert np.argmax(pooled) == points_to_patch(x, y, hw, grid)
        checked += 1
    assert checked >= 10


def test_points_off_the_image_have_no_patch():
    assert points_to_patch(np.array([-1.0, 10.0, 10.0]), np.array([10.0, 10.0, 700.0]), (600, 420), 7).tolist()[::2] == [-1, -1]


@pytest.mark.parametrize("hw", [(600, 420), (420, 600)])
def test_image_extent_matches_a_resized_white_image(hw):
    rows, cols = image_extent_in_model(hw, 224)
    white = to_model_frame(np.ones(hw, np.float32), 224)
    np.testing.assert_array_equal(np.outer(rows, cols) > 0, white > 0.5)


def test_uint8_images_stay_uint8():
    image = np.full((40, 30), 200, np.uint8)
    out = to_model_frame(image, 16)
    assert out.dtype == np.uint8 and out.max() == 200
