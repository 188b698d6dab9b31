"""Region PSNR: only the region's pixels count, and a region too small is skipped."""

import pytest
import torch

from eavatar.metrics.regions import MIN_REGION_PIXELS, region_psnr

LABELS = {"background": 0, "skin": 1, "mouth": 2, "eyes": 3}


def test_error_outside_the_region_does_not_count():
    gt = torch.full((16, 16, 3), 0.5)
    pred = gt.clone()
    regions = torch.ones(16, 16, dtype=torch.uint8)
    regions[:8, :8] = 2  # 64 mouth pixels
    regions[8:, 8:] = 3  # 64 eye pixels
    pred[8:, 8:] += 0.1  # only the eyes are wrong
    pred[:8, 8:] = 0.0  # and some skin, which no region score sees
    out = region_psnr(pred, gt, regions, LABELS)
    assert out["mouth_psnr"] == float("inf")
    assert out["eyes_psnr"] == pytest.approx(20.0, abs=1e-3)


def test_small_or_unnamed_regions_are_skipped():
    gt = torch.zeros(8, 8, 3)
    regions = torch.zeros(8, 8, dtype=torch.uint8)
    regions.view(-1)[: MIN_REGION_PIXELS - 1] = 2
    out = region_psnr(gt + 0.1, gt, regions, {"mouth": 2})
    assert out == {"mouth_psnr": None}  # "eyes" not named by the subject: no key at all


def test_region_map_must_match_the_image():
    with pytest.raises(ValueError, match="region map"):
        region_psnr(torch.zeros(8, 8, 3), torch.zeros(8, 8, 3), torch.zeros(4, 4, dtype=torch.uint8), LABELS)
