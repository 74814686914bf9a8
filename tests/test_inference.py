"""Enhancer: tiling equals a whole-image pass, every supported shape/dtype round-trips, threads are safe."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from srmodel.inference import Enhancer

TOL = 1 / 255 + 1e-6


@pytest.fixture(scope="module", autouse=True)
def float32_compute():
    """Tiling and layouts are checked in float32, with exact tolerances; a random-weight network
    amplifies bfloat16 rounding far beyond a trained one, whose bfloat16 error tests/test_precision.py measures."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SRMODEL_PRECISION", "float32")
        yield


@pytest.fixture(scope="module")
def model():
    """The default architecture with seeded random weights everywhere (its tail starts at zero,
    which would make it the identity and every tiling test trivially pass)."""
    from srmodel.architectures import build_model

    return _random_kernels(build_model("default"), seed=0)


def _random_kernels(net, seed: int):
    """Seeded random convolution kernels, scaled by fan-in so that the signal neither dies nor explodes."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if isinstance(layer, keras.layers.Conv2D):
            shape = tuple(layer.kernel.shape)
            layer.kernel.assign(rng.normal(0.0, 0.5 / np.sqrt(np.prod(shape[:3])), shape).astype("float32"))
    return net


@pytest.fixture(scope="module")
def whole(model):
    """Never tiles the small test images."""
    return Enhancer(model, config={"architecture": {"name": "default"}}, tile_size=4096)


@pytest.fixture(scope="module")
def tiled(model):
    return Enhancer(model, tile_size=64, tile_margin=48)


def _random(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == np.uint16:
        return rng.integers(0, 65536, shape, dtype=np.uint16)
    return rng.random(shape).astype(dtype)


def test_tiled_equals_untiled(whole, tiled):
    image = _random((150, 203, 3), np.float32)
    a, b = tiled.enhance(image), whole.enhance(image)
    assert np.abs(b - image).mean() > 0.05  # The network really changes the image.
    assert np.abs(a - b)[48:-48, 48:-48].max() <= TOL
    assert np.abs(a - b).max() <= TOL  # Tiles reach the real border, so even the border matches.


def test_without_margin_tiles_differ(model, whole):
    """Shows the test above is sensitive: with no context margin the tile seams appear."""
    image = _random((150, 203, 3), np.float32)
    seamy = Enhancer(model, tile_size=64, tile_margin=0).enhance(image)
    assert np.abs(seamy - whole.enhance(image)).max() > 5 / 255


def test_deeper_models_get_wider_margins_and_still_tile_exactly():
    from srmodel.architectures import build_model
    from srmodel.inference import context_margin

    assert context_margin(build_model("default", blocks=8), minimum=0) == 40  # 18 convs at half resolution
    assert context_margin(build_model("tutorial-autoencoder"), minimum=0) == 24
    deep = _random_kernels(build_model("default", blocks=16), seed=1)
    tiled = Enhancer(deep, tile_size=64)
    assert tiled.tile_margin == 72
    image = _random((150, 203, 3), np.float32)
    whole = Enhancer(deep, tile_size=4096).enhance(image)
    exact = np.abs(tiled.enhance(image) - whole).max()
    short = np.abs(Enhancer(deep, tile_size=64, tile_margin=24).enhance(image) - whole).max()
    assert exact <= TOL and short > 10 * exact  # far context matters little, but it is not nothing


def test_no_seams_on_flat_image(tiled):
    """A flat input gives a flat output up to the model's 2-pixel pixel-shuffle pattern: the
    result repeats with period 2 everywhere away from the border, so no line marks a tile edge."""
    image = np.full((200, 200, 3), 0.4, np.float32)
    out = tiled.enhance(image)[48:-48, 48:-48]
    assert np.abs(out[2:] - out[:-2]).max() <= TOL
    assert np.abs(out[:, 2:] - out[:, :-2]).max() <= TOL


@pytest.mark.parametrize(
    "shape", [(1, 1, 3), (3, 3, 3), (83, 61, 3), (1, 1), (83, 61), (3, 3, 1), (83, 61, 2), (83, 61, 4)]
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_shape_and_dtype_kept(tiled, shape, dtype):
    out = tiled.enhance(_random(shape, dtype))
    assert out.shape == shape and out.dtype == dtype
    if np.issubdtype(dtype, np.floating):
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_rgba_alpha_untouched(tiled):
    image = _random((83, 130, 4))
    out = tiled.enhance(image)
    np.testing.assert_array_equal(out[..., 3], image[..., 3])
    # Alpha is not fed to the network: RGB results do not depend on it.
    other = image.copy()
    other[..., 3] = 255 - other[..., 3]
    np.testing.assert_array_equal(tiled.enhance(other)[..., :3], out[..., :3])


def test_gray_matches_replicated_rgb(tiled):
    gray = _random((70, 90))
    out = tiled.enhance(gray)
    assert out.ndim == 2
    rgb = tiled.enhance(np.repeat(gray[..., None], 3, axis=2).astype(np.float32) / 255)
    assert np.abs(out / 255 - rgb.mean(axis=2)).max() <= TOL


def test_gray_alpha_is_gray_with_its_alpha_untouched(tiled):
    gray_alpha = _random((70, 90, 2))
    out = tiled.enhance(gray_alpha)
    assert out.shape == (70, 90, 2)
    np.testing.assert_array_equal(out[..., 1], gray_alpha[..., 1])
    np.testing.assert_array_equal(out[..., 0], tiled.enhance(gray_alpha[..., 0]))


def test_uint16_keeps_precision(tiled):
    ramp = np.linspace(0.3, 0.7, 300, dtype=np.float64)
    image = np.rint(np.tile(ramp[None, :, None], (40, 1, 3)) * 65535).astype(np.uint16)
    out = tiled.enhance(image)
    assert out.dtype == np.uint16
    assert len(np.unique(out)) > 256
    as8 = tiled.enhance(np.rint(image / 257).astype(np.uint8))
    assert np.abs(out / 65535 - as8 / 255).max() <= 2 / 255


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_gray_stored_as_rgb_comes_back_gray(tiled, dtype):
    gray = _random((70, 150))  # several 64-pixel tiles
    image = np.repeat(gray[..., None], 3, axis=2)
    image = image.astype(np.float32) / 255 if dtype == np.float32 else image.astype(dtype) * (257 if dtype == np.uint16 else 1)
    out = tiled.enhance(image)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 1], out[..., 2])
    rgba = np.concatenate([image, image[..., :1]], axis=2)  # with alpha too, which stays untouched
    out_rgba = tiled.enhance(rgba)
    np.testing.assert_array_equal(out_rgba[..., :3], out)
    np.testing.assert_array_equal(out_rgba[..., 3], rgba[..., 3])
    colour = image.copy()
    colour[0, 0, 0] = colour[0, 0, 1] // 2  # one pixel of colour: a colour image, left as the network made it
    assert not np.array_equal(tiled.enhance(colour)[..., 0], tiled.enhance(colour)[..., 1])


def test_big_endian_input_matches_native(tiled):
    image = _random((40, 50, 3)).astype(np.uint16) * 257  # e.g. np.asarray of a big-endian 16-bit TIFF
    out = tiled.enhance(image.astype(">u2"))
    np.testing.assert_array_equal(out, tiled.enhance(image))


def test_float_input_matches_uint8(tiled):
    image = _random((40, 50, 3))
    out8 = tiled.enhance(image)
    outf = tiled.enhance(image.astype(np.float64) / 255)
    assert outf.dtype == np.float64
    assert np.abs(outf - out8 / 255).max() <= TOL


def test_progress_counts_up_to_total(model):
    calls = []
    Enhancer(model, tile_size=32).enhance(_random((70, 100, 3)), progress=lambda d, t: calls.append((d, t)))
    totals = {t for _, t in calls}
    assert totals == {3 * 4}
    assert [d for d, _ in calls] == list(range(1, 13))
    single = []
    Enhancer(model, tile_size=512).enhance(_random((5, 5, 3)), progress=lambda d, t: single.append((d, t)))
    assert single == [(1, 1)]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((4, 4, 3, 1), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((4, 4, 3), np.int32),
        np.zeros((4, 4, 3), bool),
        np.full((4, 4, 3), np.nan, np.float32),
    ],
)
def test_rejects_bad_arrays(tiled, bad):
    with pytest.raises(ValueError, match="Received: shape="):
        tiled.enhance(bad)


def test_rejects_bad_tile_size(model):
    with pytest.raises(ValueError, match="Received: tile_size=0"):
        Enhancer(model, tile_size=0)


def test_info_has_architecture_and_metrics(model):
    enhancer = Enhancer(
        model,
        config={"architecture": {"name": "default"}},
        metrics={"psnr": 30.0},
        info={"source": "user/repo", "revision": "abc"},
    )
    info = enhancer.info
    assert info == {"source": "user/repo", "revision": "abc", "architecture": "default", "metrics": {"psnr": 30.0},
                    "precision": "float32"}  # from $SRMODEL_PRECISION, set above
    info["source"] = "changed"
    assert enhancer.info["source"] == "user/repo"


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    """Runs work(0) ... work(count - 1) in threads released together; re-raises the first error here."""
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:  # One thread per call: all reach the barrier.
        list(pool.map(run, range(count)))


def test_concurrent_calls_give_same_results(tiled):
    images = [_random((90, 110, 3), seed=s) for s in range(4)]
    expected = [tiled.enhance(im) for im in images]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = tiled.enhance(images[i % 4])

    _in_threads(8, work)
    for i, out in results.items():
        np.testing.assert_array_equal(out, expected[i % 4])


def test_many_small_simultaneous_calls_stay_exact(model):
    """Many short runs at once: with one traced function shared between threads, TensorFlow 2.21's oneDNN
    kernels returned a wrong image about once in a thousand calls here, and crashed the process on 16×16."""
    enhancer = Enhancer(model, tile_size=4096)
    images = [_random((16, 16 + 8 * (s % 2), 3), seed=s) for s in range(4)]
    expected = [enhancer.enhance(im) for im in images]
    wrong: list[tuple[int, int]] = []

    def work(i: int) -> None:
        for k in range(150):
            j = (i + k) % len(images)
            if not np.array_equal(enhancer.enhance(images[j]), expected[j]):
                wrong.append((i, k))

    _in_threads(8, work)
    assert not wrong, f"{len(wrong)} of 1200 simultaneous calls differ from the same call made alone"
    # One traced copy per simultaneous caller at most, all back in the pool.
    assert 1 <= len(enhancer._idle_runs) <= 8


def test_no_retracing_across_tile_sizes(model):
    enhancer = Enhancer(model, tile_size=32)
    for shape in [(5, 7, 3), (40, 33, 3), (100, 70, 3)]:
        enhancer.enhance(_random(shape))
    # One concrete function, traced once in __init__, serves every tile shape of calls made one at a time.
    (run,) = enhancer._idle_runs
    assert run.structured_input_signature[0][0].shape.as_list() == [None, None, None, 3]


# ------------------------------------------------------------------------------------- self-ensemble


def test_self_ensemble_is_the_mean_of_the_eight_views(whole):
    """Each view is restored by a plain pass and turned back.

    The sides are even but not multiples of 8: the model's grid is 2, so no view may be padded (padding
    more than the model does cost 0.5 dB on 250×250 faces, all of it near the border).
    """
    image = _random((42, 50, 3), np.float32, seed=3)
    views = []
    for turns in range(4):
        for mirror in (False, True):
            view = np.rot90(image, turns)
            view = view[:, ::-1] if mirror else view
            out = whole.enhance(np.ascontiguousarray(view))
            views.append(np.rot90(out[:, ::-1] if mirror else out, -turns))
    expected = np.mean(views, axis=0)
    got = whole.enhance(image, self_ensemble=True)
    assert np.abs(got - expected).max() <= 1e-5
    # Sensitive: the random network is far from symmetric, so the ensemble is not one plain pass.
    assert np.abs(got - whole.enhance(image)).mean() > 0.01


def test_self_ensemble_tiles_without_seams(model, whole):
    """Odd sides: each tile is edge-padded like the whole image, so the kept centres still match."""
    image = _random((150, 203, 3), np.float32, seed=4)
    tiled = Enhancer(model, tile_size=64, tile_margin=48)
    a, b = tiled.enhance(image, self_ensemble=True), whole.enhance(image, self_ensemble=True)
    assert np.abs(a - b).max() <= TOL


@pytest.mark.parametrize("shape, dtype", [((37, 53), np.uint8), ((30, 41, 4), np.uint16), ((17, 9, 1), np.float32), ((19, 23, 2), np.uint8)])
def test_self_ensemble_keeps_shape_dtype_and_alpha(whole, shape, dtype):
    image = _random(shape, dtype, seed=5)
    out = whole.enhance(image, self_ensemble=True)
    assert out.shape == image.shape and out.dtype == image.dtype
    if len(shape) == 3 and shape[2] in (2, 4):
        np.testing.assert_array_equal(out[..., -1], image[..., -1])


def test_self_ensemble_rejects_non_booleans(whole):
    with pytest.raises(TypeError, match="Received: self_ensemble='yes'"):
        whole.enhance(_random((8, 8, 3)), self_ensemble="yes")


def test_grid_multiple_is_what_the_model_pads_to(model):
    from srmodel.architectures import build_model
    from srmodel.inference import grid_multiple

    assert grid_multiple(model) == 2
    assert grid_multiple(build_model("tutorial-autoencoder")) == 4


def test_tiles_align_to_a_grid_that_does_not_divide_eight():
    """A `default` with block_size 3 folds 3x3 cells: tiles must start on multiples of 24, not 8."""
    from srmodel.architectures import build_model

    coarse = _random_kernels(build_model("default", blocks=2, block_size=3), seed=2)
    tiled = Enhancer(coarse, tile_size=40)
    assert (tiled.tile_size, tiled.tile_margin % 24) == (48, 0)
    image = _random((150, 203, 3), np.float32)
    whole = Enhancer(coarse, tile_size=4096).enhance(image)
    assert np.abs(whole - image).mean() > 0.05
    assert np.abs(tiled.enhance(image) - whole).max() <= TOL


def test_automatic_tiles_are_large_for_narrow_models_and_512_for_wide_ones():
    """Margins are recomputed per tile, so the default model's 88-pixel margins call for big tiles, while
    the tutorial's 64 full-resolution channels would take far more memory per pixel."""
    from srmodel.architectures import build_model
    from srmodel.inference import automatic_tile_size, widest_feature_map

    default, tutorial = build_model("default"), build_model("tutorial-autoencoder")
    assert (widest_feature_map(default), widest_feature_map(tutorial)) == (8.0, 64.0)
    assert Enhancer(default).tile_size == 1024 and Enhancer(tutorial).tile_size == 512
    assert automatic_tile_size(default, margin=400) == 512  # huge margins: the budget keeps tiles small
    assert Enhancer(default, tile_size=256).tile_size == 256  # an explicit size wins
