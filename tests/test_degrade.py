"""pixelate: the tutorial's operation, exact about shape, for every dtype and layout."""

import cv2
import numpy as np
import pytest

from srmodel import pixelate
from srmodel.degrade import bicubic_from_small, downscale, small_size


def tutorial_pixelate(image, scale_percent=40):
    """The tutorial's function, verbatim in behaviour (it changes the size when percent doesn't divide)."""
    width = int(image.shape[1] * scale_percent / 100)
    height = int(image.shape[0] * scale_percent / 100)
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    width = int(small.shape[1] * 100 / scale_percent)
    height = int(small.shape[0] * 100 / scale_percent)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("size", [80, 250])
def test_equals_tutorial_on_tutorial_sizes(size):
    rng = np.random.default_rng(size)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pixelate(image, 40), tutorial_pixelate(image, 40))


@pytest.mark.parametrize("shape", [(83, 61, 3), (61, 83), (1, 1, 3), (1, 1), (2, 7, 4), (3, 3, 1), (5, 1000, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_keeps_shape_and_dtype(shape, dtype):
    rng = np.random.default_rng(0)
    image = rng.random(shape)
    if np.issubdtype(dtype, np.integer):
        image = (image * np.iinfo(dtype).max).astype(dtype)
    else:
        image = image.astype(dtype)
    for percent in (1, 25, 40, 60, 99.5, 100):
        out = pixelate(image, percent)
        assert out.shape == image.shape and out.dtype == image.dtype


def test_percent_100_is_identity_and_small_side_at_least_one():
    image = np.arange(30, dtype=np.uint8).reshape(5, 6)
    np.testing.assert_array_equal(pixelate(image, 100), image)
    assert small_size(1, 1, 1) == (1, 1)
    assert downscale(np.zeros((10, 20, 3), np.uint8), 40).shape == (4, 8, 3)


def test_pixelation_removes_detail():
    rng = np.random.default_rng(1)
    image = rng.random((64, 64, 3)).astype(np.float32)
    out = pixelate(image, 25)
    assert np.abs(out - image).mean() > 0.1
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("percent", [0, -5, 100.01, 250, float("nan"), "abc", None])
def test_bad_percent(percent):
    with pytest.raises(ValueError, match="percent"):
        pixelate(np.zeros((4, 4, 3), np.uint8), percent)


@pytest.mark.parametrize("image", [np.zeros((0, 5, 3), np.uint8), np.zeros((5, 0), np.uint8), np.zeros((3,), np.uint8)])
def test_bad_images(image):
    with pytest.raises(ValueError, match="Received"):
        pixelate(image)


def test_not_an_array():
    with pytest.raises(TypeError):
        pixelate([[1, 2], [3, 4]])


def test_tf_version_matches_numpy():
    import tensorflow as tf

    from srmodel.degrade import pixelate_tf

    rng = np.random.default_rng(2)
    for shape, percent in [((80, 80, 3), 40.0), ((83, 61, 3), 27.5), ((250, 250, 3), 60.0)]:
        image = rng.random(shape).astype(np.float32)
        out = pixelate_tf(tf.constant(image), tf.constant(percent)).numpy()
        assert out.shape == shape
        assert np.abs(out - pixelate(image, percent)).max() <= 1 / 255


def test_bicubic_from_small_baseline():
    image = np.random.default_rng(3).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    out = bicubic_from_small(image, 40)
    assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.parametrize("channels", [2, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
def test_alpha_edges_get_no_dark_fringe(channels, dtype):
    # Opaque white beside fully transparent black: the blocks across the edge are partly transparent, but white.
    white = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    image = np.zeros((10, 10, channels), dtype)
    image[:, :6] = white
    out = pixelate(image, 40)
    assert out.dtype == dtype
    partly = (out[..., -1] > 0) & (out[..., -1] < white)
    assert partly.any()
    np.testing.assert_allclose(out[..., :-1][partly], white, rtol=1e-6)
    np.testing.assert_array_equal(out[..., -1], pixelate(image[..., -1], 40))  # alpha itself: plain pixelation


def test_opaque_alpha_pixelates_like_the_colour_alone():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((33, 47, 1), 255, np.uint8)], axis=2)
    assert np.abs(pixelate(rgba, 40)[..., :3].astype(int) - pixelate(rgb, 40).astype(int)).max() <= 1
    np.testing.assert_array_equal(pixelate(rgba, 100), rgba)


@pytest.mark.parametrize("dtype", ["<u2", ">u2", ">f4"])
def test_any_byte_order_gives_the_same_pixels(dtype):
    rng = np.random.default_rng(4)
    native = (rng.random((20, 30, 3)) * (65535 if "u" in dtype else 1)).astype(np.dtype(dtype).newbyteorder("="))
    np.testing.assert_array_equal(pixelate(native.astype(dtype), 40), pixelate(native, 40))
