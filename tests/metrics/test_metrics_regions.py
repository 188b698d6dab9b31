"""Region metrics: only the region's pixels count, a region absent from a frame gives None, an
identical render is perfect, and a render at the neutral code fails where the expression is."""

import math

import pytest
import torch

import eavatar.metrics.regions as regions_module
from eavatar.metrics.image import ssim, ssim_map
from eavatar.metrics.lpips import LPIPSUnavailable
from eavatar.metrics.regions import LPIPS_MIN_CROP, MIN_REGION_PIXELS, SCORED_REGIONS, region_crop, region_metrics, region_psnr

LABELS = {"background": 0, "skin": 1, "mouth": 2, "eyes": 3}


def test_error_outside_the_region_does_not_count():
    gt = torch.full((16, 16, 3), 0.5)
    pred = gt.clone()
    regions = torch.ones(16, 16, dtype=torch.uint8)
    regions[:8, :8] = 2  # 64 mouth pixels
    regions[8:, 8:] = 3  # 64 eye pixels
    pred[8:, 8:] += 0.1  # only the eyes are wrong
    pred[:8, 8:] = 0.0  # and some skin
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
    for fn in (region_psnr, region_metrics):
        with pytest.raises(ValueError, match="region map"):
            fn(torch.zeros(8, 8, 3), torch.zeros(8, 8, 3), torch.zeros(4, 4, dtype=torch.uint8), LABELS)


def test_ssim_map_averages_to_ssim():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 40, 48, 3, generator=g)
    smap = ssim_map(a, b)
    assert smap.shape == (1, 40, 48) and smap[0, :5].isnan().all() and not smap[0, 5:-5, 5:-5].isnan().any()
    assert float(smap.nanmean()) == pytest.approx(float(ssim(a, b)), abs=1e-6)


def test_region_crop_is_at_least_the_lpips_size_and_inside_the_image():
    mask = torch.zeros(64, 80, dtype=torch.bool)
    mask[1:4, 70:78] = True  # a small region in a corner
    rows, cols = region_crop(mask)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (LPIPS_MIN_CROP, LPIPS_MIN_CROP)
    assert rows.start >= 0 and cols.stop <= 80 and mask[rows, cols].sum() == mask.sum()
    mask[10:60, 5:60] = True  # larger than the minimum: the bounding box itself
    rows, cols = region_crop(mask)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (1, 60, 5, 78)
    assert region_crop(torch.zeros(64, 64, dtype=torch.bool)) is None
    assert region_crop(torch.ones(20, 20, dtype=torch.bool)) is None  # image smaller than LPIPS can take


def test_identical_render_scores_perfectly_in_every_region(head_frames, region_labels):
    f = head_frames["expressive"]
    out = region_metrics(f.rgb, f.rgb.clone(), f.regions, region_labels)
    for name in SCORED_REGIONS:
        assert out[f"{name}_pixels"] >= MIN_REGION_PIXELS
        assert out[f"{name}_psnr"] == math.inf and out[f"{name}_ssim"] == pytest.approx(1.0, abs=1e-6) and out[f"{name}_lpips"] == pytest.approx(0.0, abs=1e-7)


def test_neutral_render_fails_in_the_mouth_first(head_frames, region_labels):
    """Jaw open with a smile, rendered at the neutral code: the mouth scores worst on all three metrics;
    the eyes and brows, which the expression does not touch, stay nearly perfect."""
    gt, pred = head_frames["expressive"], head_frames["neutral"]
    out = region_metrics(pred.rgb, gt.rgb, gt.regions, region_labels)
    for other in ("skin", "eyes", "brows"):
        assert out["mouth_psnr"] < out[f"{other}_psnr"] - 3
        assert out["mouth_ssim"] < out[f"{other}_ssim"] - 0.2
        assert out["mouth_lpips"] > 2 * out[f"{other}_lpips"]
    assert out["eyes_psnr"] > 40 and out["brows_ssim"] > 0.999


def test_altered_mouth_pixels_show_only_in_the_mouth(head_frames, region_labels):
    f = head_frames["expressive"]
    pred = f.rgb.clone()
    mouth = f.regions == region_labels["mouth"]
    pred[mouth] = 1.0 - pred[mouth]
    out = region_metrics(pred, f.rgb, f.regions, region_labels)
    assert out["mouth_psnr"] < 15 and out["mouth_ssim"] < 0.5 and out["mouth_lpips"] > 0.1
    assert out["brows_psnr"] == math.inf  # no window or crop of the brows reaches the mouth


def test_absent_region_gives_none_never_zero(head_frames, region_labels):
    f = head_frames["expressive"]
    regions = f.regions.clone()
    regions[regions == region_labels["brows"]] = region_labels["skin"]  # no brows in this frame
    out = region_metrics(f.rgb * 0.5, f.rgb, regions, region_labels)
    assert out["brows_pixels"] == 0 and out["brows_psnr"] is None and out["brows_ssim"] is None and out["brows_lpips"] is None
    assert "hair_psnr" not in out  # hair is not a scored region


def test_region_lpips_is_none_without_weights(head_frames, region_labels, monkeypatch):
    def missing(*args, **kwargs):
        raise LPIPSUnavailable("no weights")

    monkeypatch.setattr(regions_module, "load_lpips", missing)
    f = head_frames["expressive"]
    out = region_metrics(f.rgb, f.rgb, f.regions, region_labels)
    assert out["mouth_lpips"] is None and out["mouth_psnr"] == math.inf
