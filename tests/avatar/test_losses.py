import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from eavatar.avatar.losses import LossConfig, image_losses, random_crop, training_ssim


def fake_lpips(a, b):
    return (a - b).abs().flatten(1).mean(1)


def test_identical_images_have_zero_loss():
    img = torch.rand(32, 32, 3)
    losses = image_losses(img, img.clone(), LossConfig(lpips_start_step=0), step=5, lpips_fn=fake_lpips)
    assert set(losses) == {"rgb", "lpips"}
    assert float(losses["rgb"]) < 1e-5 and float(losses["lpips"]) == 0.0


def test_lpips_joins_at_its_start_step_with_its_weight():
    pred, gt = torch.zeros(32, 32, 3), torch.ones(32, 32, 3)
    cfg = LossConfig(lpips_start_step=10, lpips_weight=0.1, lpips_crop=16)
    assert float(image_losses(pred, gt, cfg, 9, fake_lpips)["lpips"]) == 0.0
    assert float(image_losses(pred, gt, cfg, 10, fake_lpips)["lpips"]) == torch.tensor(0.1).item()
    assert "lpips" not in image_losses(pred, gt, LossConfig(lpips_weight=0.0), 10, fake_lpips)


def test_rgb_loss_mixes_l1_and_dssim():
    pred, gt = torch.full((24, 24, 3), 0.25), torch.full((24, 24, 3), 0.75)
    only_l1 = image_losses(pred, gt, LossConfig(ssim_lambda=0.0, lpips_weight=0.0), 0)["rgb"]
    torch.testing.assert_close(only_l1, torch.tensor(0.5))


def _torchmetrics_ssim(pred, gt):
    return structural_similarity_index_measure(pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None], data_range=1.0)


def _value_and_grad(fn, pred, gt):
    pred = pred.clone().requires_grad_()
    value = fn(pred, gt)
    value.backward()
    return value.detach(), pred.grad


def test_training_ssim_equals_torchmetrics_in_value_and_gradient():
    # Non-square, so a swapped axis or window matrix would show; a flat area exercises the
    # variance clamp at 0. In float64 the two agree to rounding; in float32 ours stays as close
    # to the float64 value as torchmetrics' own float32 result (the variance's cancellation).
    gen = torch.Generator().manual_seed(3)
    gt = torch.rand(40, 57, 3, generator=gen, dtype=torch.float64)
    gt[:, :20] = 0.5
    pred = (gt + 0.15 * torch.randn(gt.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    value, grad = _value_and_grad(training_ssim, pred, gt)
    ref_value, ref_grad = _value_and_grad(_torchmetrics_ssim, pred, gt)
    torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-15)
    assert float(value) < 0.9  # a real difference was measured, not two ones

    value32, grad32 = _value_and_grad(training_ssim, pred.float(), gt.float())
    tm_value32, tm_grad32 = _value_and_grad(_torchmetrics_ssim, pred.float(), gt.float())
    torch.testing.assert_close(value32.double(), ref_value, rtol=1e-6, atol=0)
    ours_err = float((grad32.double() - ref_grad).abs().max())
    their_err = float((tm_grad32.double() - ref_grad).abs().max())
    assert ours_err <= 1.5 * their_err and ours_err < 1e-5 * float(ref_grad.abs().max())
    torch.testing.assert_close(training_ssim(gt, gt.clone()), torch.ones((), dtype=gt.dtype))


def test_training_ssim_rejects_images_smaller_than_its_padding():
    with pytest.raises(ValueError, match="larger than 5 pixels"):
        training_ssim(torch.rand(5, 30, 3), torch.rand(5, 30, 3))


def test_random_crop_is_the_same_window_of_both_images():
    a = torch.arange(20 * 20 * 3, dtype=torch.float32).reshape(20, 20, 3)
    pa, pb = random_crop(a, a + 1, 8, torch.Generator().manual_seed(0))
    assert pa.shape == (8, 8, 3)
    torch.testing.assert_close(pb, pa + 1)
    full, _ = random_crop(a, a, 64)
    assert full.shape == a.shape


def test_region_weights_raise_the_mouth_and_eyes_and_change_only_l1():
    from eavatar.avatar.losses import LossConfig, image_losses, region_weights

    regions = torch.zeros(8, 8, dtype=torch.uint8)
    regions[2:4, 2:4] = 2  # mouth
    regions[5, 5] = 3  # eyes
    labels = {"skin": 1, "mouth": 2, "eyes": 3}
    assert region_weights(regions, labels, LossConfig()) is None  # the paper's loss: no region weighted
    w = region_weights(regions, labels, LossConfig(mouth_weight=3.0, eyes_weight=1.0))
    assert w[2, 2] == 4.0 and w[5, 5] == 2.0 and w[0, 0] == 1.0
    gt = torch.rand(8, 8, 3)
    pred = gt.clone()
    pred[2, 2] += 0.5  # an error in the mouth only
    cfg = LossConfig(ssim_lambda=0.0, lpips_weight=0.0)
    plain = image_losses(pred, gt, cfg, 0)["rgb"]
    weighted = image_losses(pred, gt, cfg, 0, pixel_weights=w)["rgb"]
    torch.testing.assert_close(weighted, 4.0 * plain)
