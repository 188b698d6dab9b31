"""FrozenAvatar: a trained avatar evaluated frame after frame, recomputing only what changed.

An editor's slider moves one input at a time. The per-Gaussian parts of the generator (the
position encoding and every trunk's first layer on it) depend on neither expression nor pose;
the expression branch and the control set depend on the expression only; the pose branch on
the pose only; and an orbiting camera changes none of them. So a slider on an expression
re-runs the expression branch and control, a head-pose slider the pose branch, a camera
slider only the rasteriser.

Control's neighbourhoods are fixed too (:class:`ControlKernel`). It is a snapshot: the
canonical Gaussians, the MLPs and the control settings are read when it is built and whenever
they changed since (a parameter replaced or updated in place by an optimiser); an in-place
write through ``.data`` is not seen, so build a new one after training such an avatar.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from eavatar.avatar.control import ControlKernel
from eavatar.avatar.generator import BranchOutput, combine, positional_encoding
from eavatar.avatar.model import Controlled, FrameGaussians, HeadAvatar
from eavatar.avatar.pose import pose_code
from eavatar.render import Camera, RenderOutput


class _LastValue:
    """The result of ``fn(key)`` for the last key it was asked for (one entry: sliders move one way)."""

    def __init__(self, fn: Callable[[Tensor], object]):
        self.fn, self.key, self.value = fn, None, None

    def __call__(self, key: Tensor):
        if self.key is None or self.key.shape != key.shape or not torch.equal(self.key, key):
            self.value, self.key = self.fn(key), key.detach().clone()
        return self.value


class FrozenAvatar:
    """``frame`` and ``render`` of a :class:`HeadAvatar`, equal to its own, with the unchanged parts reused."""

    def __init__(self, avatar: HeadAvatar):
        self.avatar = avatar
        self._stamp: Optional[tuple] = None
        self._refresh()

    def _parameters_stamp(self) -> tuple:
        control = self.avatar.cfg.control
        params = tuple((id(t), t.data_ptr(), t._version, tuple(t.shape)) for t in self.avatar.parameters())
        return params + ((control.enabled, control.radius, control.sigma),)

    @torch.no_grad()
    def _refresh(self) -> None:
        """Recompute the per-Gaussian terms if any parameter changed since they were computed."""
        stamp = self._parameters_stamp()
        if stamp == self._stamp:
            return
        avatar, generator = self.avatar, self.avatar.generator
        self.normalized = avatar.normalized_means().detach()
        features = avatar.canonical.params["features"].detach()
        pos_enc = positional_encoding(self.normalized, generator.cfg.pos_frequencies)
        branches = {"expression": generator.expression, "pose": generator.pose}
        rows = {name: b.rows(pos_enc, features) for name, b in branches.items() if b is not None}
        control = avatar.cfg.control
        self._kernel = ControlKernel(self.normalized, control.radius, control.sigma, falloff=control.falloff) if control.enabled else None
        self._expression = _LastValue(lambda code: self._controlled(generator.expression.from_rows(rows["expression"], code)))
        self._pose = _LastValue(lambda code: None if generator.pose is None else generator.pose.from_rows(rows["pose"], code))
        self._frame = _LastValue(self._compose)
        self._stamp = stamp

    def _controlled(self, out: BranchOutput) -> tuple[BranchOutput, Controlled]:
        return out, self.avatar.control(self.normalized, out[0], self._kernel)

    def _compose(self, key: Tensor) -> FrameGaussians:
        expression, head_pose = key[: self.avatar.d_exp], key[self.avatar.d_exp :].reshape(4, 4)
        exp_out, controlled = self._expression(expression)
        _, pose_dx, attrs = combine(exp_out, self._pose(pose_code(head_pose)))
        return self.avatar.compose(controlled, pose_dx, attrs, head_pose)

    @torch.no_grad()
    def frame(self, expression: Tensor, head_pose: Tensor) -> FrameGaussians:
        """:meth:`HeadAvatar.frame` (no gradients)."""
        self.avatar.generator.check_expression(expression)
        self._refresh()
        return self._frame(torch.cat([expression.reshape(-1), head_pose.reshape(-1)]))

    def render(self, camera: Camera, expression: Tensor, head_pose: Tensor, background: Tensor) -> RenderOutput:
        """:meth:`HeadAvatar.render` (no gradients)."""
        with torch.no_grad():
            return self.avatar.rasterize(self.frame(expression, head_pose), camera, background)
