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
