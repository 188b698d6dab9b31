"""Distance of a frame's expression to the training codes, and the in-range threshold taken from
training itself (its moments' distances to one another, neighbours in time left out)."""

from types import SimpleNamespace

import numpy as np
import pytest

from eavatar.metrics.coverage import ExpressionCoverage


def subject_of(train_codes: np.ndarray, cameras: int = 1) -> SimpleNamespace:
    """A stand-in subject: one training sequence of ``train_codes`` [T, d], each instant seen by ``cameras``."""
    codes = np.repeat(train_codes, cameras, axis=0).astype(np.float32)
    t = np.repeat(np.arange(len(train_codes)), cameras)
    return SimpleNamespace(expressions=codes, sequences=["s"] * len(codes), timesteps=t, split=lambda name: np.arange(len(codes)) if name == "train" else np.arange(0))


def swing(steps: int = 200) -> np.ndarray:
    """Coefficient 0 swings 0 -> 1 -> 0 twice; coefficient 1 stays at 0; coefficient 2 is 0.1 in
    the first swing and 0.13 in the second (d = 3): each moment has a twin 0.03 away."""
    phase = np.abs(((np.arange(steps) / (steps / 2)) % 2) - 1)
    return np.stack([1 - phase, np.zeros(steps), np.where(np.arange(steps) < steps // 2, 0.1, 0.13)], axis=1)


def test_a_code_between_training_codes_is_in_range_a_new_one_is_not():
    coverage = ExpressionCoverage(subject_of(swing()), window=10)
    assert coverage.threshold == pytest.approx(0.03, abs=0.005)  # the second swing revisits the first's codes
    inside, outside = coverage.distances(np.array([[0.505, 0.0, 0.1], [0.5, 0.8, 0.1]]))
    assert inside < 0.01 and outside == pytest.approx(0.8, abs=1e-6)
    assert coverage.in_range(inside) is True and coverage.in_range(outside) is False


def test_neighbours_in_time_do_not_count_as_coverage():
    """A single sweep never revisits a code: without the window every training code would have a
    near twin (its neighbour frame) and the threshold would say that anything near is covered."""
    once = swing(200)[:100]
    wide, narrow = ExpressionCoverage(subject_of(once), window=10), ExpressionCoverage(subject_of(once), window=0)
    assert wide.threshold == pytest.approx(11 * 0.01, rel=0.01)  # 0.01 per step, 11 steps away
    assert narrow.threshold == pytest.approx(0.01, rel=0.01)  # only itself left out: its neighbour frame


def test_cameras_of_one_instant_are_one_code():
    one, three = ExpressionCoverage(subject_of(swing(), cameras=1), window=10), ExpressionCoverage(subject_of(swing(), cameras=3), window=10)
    assert three.threshold == pytest.approx(one.threshold) and len(three.codes) == len(one.codes) == 200


def test_one_training_instant_gives_no_threshold():
    coverage = ExpressionCoverage(subject_of(swing()[:1]))
    assert coverage.threshold is None and coverage.in_range(0.0) is None
    assert coverage.distances(np.zeros((2, 3))).shape == (2,)
