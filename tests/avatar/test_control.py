"""Sparse control against a direct evaluation of the paper's formula."""

import math

import pytest
import torch

from eavatar.avatar.control import ControlKernel, control_mask, neighbour_pairs, propagate


def direct(points, disp, is_control, radius, sigma, falloff=False):
    """The formula, one Gaussian at a time (``falloff``: divided by max(1, sum k))."""
    out = disp.clone()
    for j in range(len(points)):
        if is_control[j]:
            continue
        reach = [i for i in range(len(points)) if is_control[i] and (points[j] - points[i]).norm() <= radius]
        if not reach:
            continue
        k = torch.stack([torch.exp(-((points[j] - points[i]) ** 2).sum() / sigma**2) for i in reach])
        w = k / (max(k.sum(), 1.0) if falloff else k.sum())
        out[j] = disp[j] + sum(w[n] * disp[i] for n, i in enumerate(reach))
    return out


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(200, 3, generator=g, dtype=torch.float64)
    disp = torch.randn(200, 3, generator=g, dtype=torch.float64) * 0.1
    return points, disp


@pytest.mark.parametrize("falloff", [False, True])
def test_matches_the_direct_formula(cloud, falloff):
    points, disp = cloud
    is_control = control_mask(disp, 0.15)
    assert 0 < int(is_control.sum()) < 200
    moved = propagate(points, disp, is_control, 0.25, 0.1, falloff=falloff)
    torch.testing.assert_close(moved, direct(points, disp, is_control, 0.25, 0.1, falloff))


def test_falloff_fades_with_distance_and_is_the_normalised_blend_where_controls_crowd():
    """Beside one control Gaussian: weight exp(-d^2 / sigma^2), so the motion is continuous at
    the radius (the normalised blend jumps from 1 to 0 there); among many, their sum passes one
    and the two blends agree."""
    sigma, radius = 0.1, 0.2
    points = torch.tensor([[0.0, 0, 0], [0.05, 0, 0], [0.1999, 0, 0], [0.2001, 0, 0]])
    disp = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    is_control = torch.tensor([True, False, False, False])
    fall = propagate(points, disp, is_control, radius, sigma, falloff=True)[:, 0]
    norm = propagate(points, disp, is_control, radius, sigma, falloff=False)[:, 0]
    torch.testing.assert_close(fall[1:], torch.tensor([math.exp(-0.25), math.exp(-0.1999**2 / 0.01), 0.0]))
    assert float(norm[2]) == 1.0 and float(norm[3]) == 0.0  # the jump at the radius
    assert float(fall[2]) < 0.02
    crowd = torch.cat([torch.zeros(8, 3) + torch.linspace(-0.01, 0.01, 8)[:, None], torch.tensor([[0.03, 0, 0]])])
    moves = torch.cat([torch.ones(8, 3), torch.zeros(1, 3)])
    in_crowd = torch.tensor([True] * 8 + [False])
    torch.testing.assert_close(
        propagate(crowd, moves, in_crowd, radius, sigma, falloff=True)[8], propagate(crowd, moves, in_crowd, radius, sigma, falloff=False)[8]
    )


def test_weights_sum_to_one_controls_keep_their_own_and_unreached_do_not_move():
    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.5, 0, 0], [0.2, 0, 0], [5.0, 0, 0]])
    disp = torch.tensor([[0.0, 1, 0], [0.0, 1, 0], [0.0, 0, 0], [0.0, 0, 0], [0.0, 0, 0]])
    is_control = torch.tensor([True, True, False, False, False])
    out = propagate(points, disp, is_control, radius=0.6, sigma=0.3, falloff=False)
    torch.testing.assert_close(out[:2], disp[:2])  # control Gaussians unchanged
    torch.testing.assert_close(out[2], torch.tensor([0.0, 1.0, 0.0]))  # equidistant: blend of two equal moves
    assert 0.999 < float(out[3, 1]) < 1.001  # weights normalised even when one control dominates
    torch.testing.assert_close(out[4], disp[4])  # reached by none


def test_threshold_is_strict_and_edges_of_the_radius_count():
    disp = torch.tensor([[0.3, 0, 0], [0.2999, 0, 0], [0.3001, 0, 0]])
    assert control_mask(disp, 0.3).tolist() == [False, False, True]
    points = torch.tensor([[0.0, 0, 0], [0.5, 0, 0], [0.5000001, 0, 0]])
    j, i = neighbour_pairs(torch.tensor([[0.0, 0, 0], [0.5, 0, 0], [0.6, 0, 0]]), torch.tensor([True, False, False]), 0.5)
    assert j.tolist() == [1] and i.tolist() == [0]
    assert len(neighbour_pairs(points, torch.zeros(3, dtype=torch.bool), 1.0)[0]) == 0


@pytest.mark.parametrize("radius", [0.08, 0.02, 3.0])  # cells of the radius; widened past 64 a side (an outlier far out); one cell
def test_grid_pairs_equal_brute_force(radius):
    g = torch.Generator().manual_seed(1)
    points = torch.rand(3000, 3, generator=g, dtype=torch.float64)
    points[0] = torch.tensor([40.0, -3.0, 7.0])
    is_control = torch.rand(3000, generator=g) < 0.05
    j, i = neighbour_pairs(points, is_control, radius)
    d = torch.cdist(points, points)
    expected = torch.nonzero((d <= radius) & (~is_control)[:, None] & is_control[None, :])
    assert len(expected) > 0
    assert sorted(zip(j.tolist(), i.tolist())) == sorted(map(tuple, expected.tolist()))


def test_gradients_reach_control_displacements(cloud):
    points, disp = cloud
    disp = disp.clone().requires_grad_(True)
    is_control = control_mask(disp, 0.15)
    out = propagate(points, disp, is_control, 0.25, 0.1, falloff=False)
    out[~is_control].sum().backward()
    assert disp.grad[is_control].abs().sum() > 0


@pytest.mark.parametrize("falloff", [False, True])
def test_control_kernel_equals_propagate_for_fixed_points(cloud, falloff):
    points, disp = cloud
    kernel = ControlKernel(points, 0.25, 0.1, falloff=falloff)  # once; then per frame only the control set changes
    for tau in (0.1, 0.15, 0.2):
        is_control = control_mask(disp * tau / 0.15, 0.15)
        expected = propagate(points, disp * tau / 0.15, is_control, 0.25, 0.1, falloff=falloff)
        torch.testing.assert_close(kernel.propagate(disp * tau / 0.15, is_control), expected, rtol=1e-5, atol=1e-6)
    none = torch.zeros(len(points), dtype=torch.bool)
    torch.testing.assert_close(kernel.propagate(disp, none), disp)


def test_a_separate_source_is_what_neighbours_receive(cloud):
    """propagate(..., source=s): every row keeps its own displacement; neighbours add the blend of
    the control Gaussians' ``s`` (their motion from neutral), in the kernel as in the tensor path."""
    points, disp = cloud
    is_control = control_mask(disp, 0.15)
    source = torch.randn_like(disp) * 0.05
    expected = disp + direct(points, source * is_control[:, None], is_control, 0.25, 0.1) - source * is_control[:, None]
    torch.testing.assert_close(propagate(points, disp, is_control, 0.25, 0.1, source=source, falloff=False), expected)
    torch.testing.assert_close(ControlKernel(points, 0.25, 0.1, falloff=False).propagate(disp, is_control, source), expected, rtol=1e-5, atol=1e-6)
