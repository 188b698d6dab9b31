"""PSNR (plain and masked), SSIM against scikit-image, LPIPS wrapper and image_metrics."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from eavatar.metrics.image import image_metrics, lpips, psnr, ssim
from eavatar.metrics.lpips import load_lpips


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def noisy(x, std, seed=1):
    return (x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)


def test_psnr_of_known_mse():
    gt = rand(16, 12, 3) * 0.8
    torch.testing.assert_close(psnr(gt + 0.1, gt), torch.tensor(20.0))
    batch_pred = torch.stack([gt + 0.1, gt + 0.01])  # 20 dB and 40 dB: per frame, then the mean
    torch.testing.assert_close(psnr(batch_pred, torch.stack([gt, gt])), torch.tensor(30.0))


@pytest.mark.parametrize("mask_shape", ["hw", "hw1", "bhw", "bhw1"])
def test_masked_psnr_ignores_outside(mask_shape):
    gt = torch.zeros(2, 8, 8, 3)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:6, 1:7] = True
    pred = torch.where(mask[..., None], 0.1, 1.0).expand(2, 8, 8, 3)  # wrong by 1 outside the mask
    m = {"hw": mask, "hw1": mask[..., None], "bhw": mask.expand(2, 8, 8), "bhw1": mask.expand(2, 8, 8)[..., None]}
    torch.testing.assert_close(psnr(pred, gt, m[mask_shape]), torch.tensor(20.0))
    assert psnr(pred, gt) < 5


def test_masked_psnr_rejects_bad_masks():
    x = rand(8, 8, 3)
    with pytest.raises(ValueError, match="empty"):
        psnr(x, x * 0.5, torch.zeros(8, 8))
    with pytest.raises(ValueError, match="does not match"):
        psnr(x, x, torch.ones(7, 8))


def test_ssim_identical_is_one_and_drops_with_noise():
    gt = rand(2, 40, 36, 3)
    torch.testing.assert_close(ssim(gt, gt), torch.tensor(1.0))
    low, high = float(ssim(noisy(gt, 0.05), gt)), float(ssim(noisy(gt, 0.2), gt))
    assert 1.0 > low > high


@pytest.mark.parametrize("shape", [(32, 32, 3), (3, 40, 28, 3)])
def test_ssim_matches_scikit_image(shape):
    gt = rand(*shape)
    pred = noisy(gt, 0.1)
    frames = zip(pred.reshape(-1, *shape[-3:]).numpy(), gt.reshape(-1, *shape[-3:]).numpy())
    expected = np.mean([
        structural_similarity(p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1)
        for p, g in frames
    ])
    torch.testing.assert_close(ssim(pred, gt), torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        psnr(rand(8, 8, 3), rand(8, 8, 4))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(rand(8, 8, 3), rand(8, 8, 3))


def test_lpips_wrapper_channels_last_and_differentiable():
    gt = rand(2, 48, 48, 3)
    pred = noisy(gt, 0.2).requires_grad_(True)
    d = lpips(pred, gt)
    expected = load_lpips("alex")(pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2)).mean()
    torch.testing.assert_close(d, expected)
    d.backward()
    assert pred.grad.abs().sum() > 0
    torch.testing.assert_close(lpips(gt[0], gt[0]), torch.tensor(0.0))


def test_image_metrics_dict():
    gt = rand(48, 48, 3)
    pred = noisy(gt, 0.1)
    m = image_metrics(pred, gt)
    assert set(m) == {"psnr", "ssim", "lpips"}
    assert all(isinstance(v, float) for v in m.values())
    assert m["psnr"] == pytest.approx(float(psnr(pred, gt)))
    assert 0 < m["lpips"] < 1 and 0 < m["ssim"] < 1
    mask = torch.zeros(48, 48)
    mask[10:30, 10:30] = 1
    assert image_metrics(pred, gt, mask)["psnr"] == pytest.approx(float(psnr(pred, gt, mask)))


def test_contour_band_and_the_error_in_it():
    from eavatar.metrics.image import contour_band, contour_errors

    mask = torch.zeros(20, 20, dtype=torch.bool)
    mask[5:15, 5:15] = True
    band = contour_band(mask, width=2)
    assert band.sum() == 14 * 14 - 6 * 6 and band[5, 5] and band[3, 3] and not band[2, 2] and not band[10, 10]
    gt = torch.zeros(20, 20, 3)
    on_edge, inside = gt.clone(), gt.clone()
    on_edge[4, 4:16] = 0.5
    inside[10, 10] = 0.5
    assert contour_errors(on_edge, gt, mask) == {"sq_error": pytest.approx(12 * 3 * 0.25), "sq_error_contour": pytest.approx(12 * 3 * 0.25)}
    assert contour_errors(inside, gt, mask[..., None])["sq_error_contour"] == 0.0
