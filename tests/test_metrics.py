"""Our PSNR/SSIM agree with scikit-image's on the same arrays."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srmodel import pixelate
from srmodel.metrics import image_psnr, image_ssim


@pytest.mark.parametrize("shape", [(64, 64, 3), (83, 61, 3), (40, 50)])
def test_agree_with_scikit_image(shape):
    rng = np.random.default_rng(0)
    reference = rng.random(shape).astype(np.float32)
    reference = (reference + np.roll(reference, 1, 0) + np.roll(reference, 1, 1)) / 3  # some structure
    degraded = pixelate(reference, 40)
    assert image_psnr(reference, degraded) == pytest.approx(
        peak_signal_noise_ratio(reference, degraded, data_range=1.0), abs=1e-3
    )
    expected = structural_similarity(
        reference, degraded, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=-1 if len(shape) == 3 else None,
    )
    assert image_ssim(reference, degraded) == pytest.approx(expected, abs=2e-3)


def test_identical_images_and_tiny_images():
    image = np.full((5, 5, 3), 0.5, np.float32)
    assert image_psnr(image, image) == 100.0
    assert image_ssim(image, image) == pytest.approx(1.0)


def test_the_keras_metric_caps_identical_images_and_keeps_nan():
    """One exactly restored image must not make an epoch's mean PSNR infinite; a diverged model's NaN must not
    pass for a perfect score (image_psnr once returned 100 dB for it)."""
    from srmodel.metrics import MAX_PSNR, psnr

    rng = np.random.default_rng(1)
    reference = rng.random((3, 16, 16, 3)).astype(np.float32)
    restored = reference.copy()
    restored[1] += 0.05
    restored[2, 0, 0, 0] = np.nan
    values = np.asarray(psnr(reference, restored))
    assert values[0] == MAX_PSNR and 20 < values[1] < 40 and np.isnan(values[2])
    assert np.isnan(image_psnr(reference[2], restored[2]))
