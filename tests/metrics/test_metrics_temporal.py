"""Flicker: zero when the render changes as the truth does, and counted only across consecutive timesteps."""

import pytest
import torch

from eavatar.metrics.temporal import FlickerMeter, flicker


def test_static_error_is_not_flicker_but_jitter_is():
    gt = torch.rand(5, 8, 8, 3, generator=torch.Generator().manual_seed(0))
    assert flicker(gt + 0.2, gt).abs().max() < 1e-4  # constant offset: no flicker
    jitter = gt.clone()
    jitter[2] += 0.1  # one frame pops: two transitions see it
    assert flicker(jitter, gt).tolist() == pytest.approx([0.0, 25.5, 25.5, 0.0], abs=1e-4)


def test_meter_pairs_consecutive_timesteps_per_camera_only():
    m = FlickerMeter()
    a, b = torch.zeros(4, 4, 3), torch.full((4, 4, 3), 0.2)
    m.add("s", 0, 0, a, a)
    m.add("s", 1, 0, a, a)  # another camera: no pair with camera 0
    m.add("s", 0, 1, b, a)  # pairs with (s, 0, 0): render moved by 0.2, truth did not
    m.add("s", 0, 3, a, a)  # timestep 2 missing: no pair
    assert m.values == pytest.approx([51.0])
    assert m.mean() == pytest.approx(51.0)
    with pytest.raises(ValueError, match="time order"):
        m.add("s", 0, 2, a, a)


def test_no_pairs_is_none():
    m = FlickerMeter()
    m.add("s", 0, 0, torch.zeros(2, 2, 3), torch.zeros(2, 2, 3))
    assert m.mean() is None
