import torch

from eavatar.avatar.losses import LossConfig, image_losses, random_crop


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
