"""Per-frame refinement of the tracked head pose and expression code through the renderer.

A monocular tracker's codes and poses are noisy; an avatar trained on them learns a blur of
the face and sits off it. As GaussianAvatars and PointAvatar / IMavatar do, each training
instant (sequence, timestep: every camera of it shares one head pose and one code) gets a
learnable residual of its head pose (6-DoF) and of its expression code, initialised at zero
and optimised with the avatar. Priors keep the residuals near the tracker (a penalty on their
size) and the refined trajectory smooth in time (a penalty on differences between the refined
values of neighbouring instants of a sequence).

The pose residual is parameterised as nerfstudio's ``CameraOptimizer`` does in its SO3xR3 mode
(an axis-angle rotation and a translation, the exponential map of each). The component itself
does not fit: it corrects one camera per image, while here one correction per instant is shared
by every camera of that instant and applies to the head (about the head's centre, so rotation
and translation do not trade off), its regulariser has no temporal prior, and the avatar layer
(evaluation's pose fit, the refined-subject export, the notebooks) runs without nerfstudio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from eavatar.data.subject import Subject


@dataclass
class RefinementConfig:
    """Refinement of the training frames' tracked head pose and expression code (learning rates:
    the optimiser groups ``refine_pose`` and ``refine_expression``)."""

    enabled: bool = False
    """Learn a residual of each training instant's head pose (and code, ``expression``). Off by
    default and in train_video: on d10 it fits the training frames better but not the held-out
    ones (docs/video.md); on for a subject whose poses are known to be noisy, or to export them."""
    expression: bool = False
    """Refine the codes too. Off: the generator has no fixed blendshape basis to anchor a code's
    meaning, and on the synthetic check refined codes drifted away from the truth while poses came
    back (docs/video.md, "Tracking refinement checked")."""
    start_step: int = 300
    """Warm-up: the residuals stay at zero until the avatar has a coarse head to align."""
    pose_size_weight: float = 1.0
    """Penalty on |pose residual|^2 (rotation in radians, translation in head radii)."""
    expression_size_weight: float = 0.1
    """Penalty on the mean squared expression residual."""
    pose_smooth_weight: float = 0.0
    """Penalty on the refined pose's second difference in time (|M_t - (M_t-1 + M_t+1) / 2|^2 over the
    3 x 4 world-from-head matrix, translation in head radii): smooth head motion, constant velocity free."""
    expression_smooth_weight: float = 0.0
    """Penalty on the refined code's mean squared second difference in time (a fast mouth is a large one: keep it small)."""


def training_instants(subject: Subject) -> tuple[list[tuple[str, int]], np.ndarray]:
    """The training split's instants (sequence, timestep), in time order per sequence, and each
    subject frame's instant index ([num_frames], -1 for frames outside the training split)."""
    train = subject.split("train")
    keys = sorted({(subject.sequences[i], int(subject.timesteps[i])) for i in train})
    position = {key: k for k, key in enumerate(keys)}
    frame_instant = np.full(subject.num_frames, -1, dtype=np.int64)
    for i in train:
        frame_instant[i] = position[(subject.sequences[i], int(subject.timesteps[i]))]
    return keys, frame_instant


def pose_correction(residual: Tensor, center: Tensor, radius: Tensor | float) -> Tensor:
    """[..., 6] residuals (axis-angle rotation, translation in head radii) -> [..., 4, 4] head-space
    transforms that rotate about ``center`` [3] and then translate: T(c) [R | radius t] T(-c)."""
    R = torch.linalg.matrix_exp(skew(residual[..., :3]))  # SO(3)'s exponential map, exact and differentiable at 0
    t = residual[..., 3:] * radius + center - (R @ center.unsqueeze(-1)).squeeze(-1)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=residual.dtype, device=residual.device).expand(*residual.shape[:-1], 1, 4)
    return torch.cat([torch.cat([R, t.unsqueeze(-1)], dim=-1), bottom], dim=-2)


def skew(v: Tensor) -> Tensor:
    """[..., 3] -> [..., 3, 3]: the cross-product matrix [v]x."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)


def rotation_degrees(residual: Tensor) -> Tensor:
    """[..., 6] -> [...]: the rotation angle of pose residuals, in degrees."""
    return torch.rad2deg(residual[..., :3].norm(dim=-1))


class TrackingRefinement(nn.Module):
    """Residuals of the training instants' head poses [T, 6] and expression codes [T, d_exp].

    The tracked values they refine are kept beside them (buffers rebuilt from the subject, not
    saved): the temporal prior compares an instant's refined values with its neighbours'.
    """

    def __init__(self, cfg: RefinementConfig, instants: list[tuple[str, int]], frame_instant: np.ndarray, tracked_expression: Tensor, tracked_pose: Tensor):
        super().__init__()
        self.cfg = cfg
        self.instants = list(instants)
        T, d_exp = tracked_expression.shape
        self.pose = nn.Parameter(torch.zeros(T, 6))
        self.expression = nn.Parameter(torch.zeros(T, d_exp))
        self.register_buffer("frame_instant", torch.as_tensor(frame_instant, dtype=torch.long), persistent=False)
        self.register_buffer("tracked_expression", tracked_expression.float(), persistent=False)
        self.register_buffer("tracked_pose", tracked_pose.float(), persistent=False)
        inside = [a[0] == b[0] for a, b in zip(self.instants, self.instants[1:])]  # k and k + 1 in one sequence
        self.has_neighbours = [0 < k < T - 1 and inside[k - 1] and inside[k] for k in range(T)]

    @classmethod
    def for_subject(cls, cfg: RefinementConfig, subject: Subject) -> "TrackingRefinement":
        instants, frame_instant = training_instants(subject)
        first = np.zeros(len(instants), dtype=np.int64)  # one frame of each instant: its cameras share its controls
        for i in subject.split("train")[::-1]:
            first[frame_instant[i]] = i
        return cls(cfg, instants, frame_instant, torch.as_tensor(subject.expressions[first]), torch.as_tensor(subject.head_poses[first]))

    def instant_of(self, frame_index: int) -> int:
        """The training instant of a subject frame, or -1 (not a training frame)."""
        return int(self.frame_instant[frame_index]) if 0 <= frame_index < len(self.frame_instant) else -1

    def refine(self, instant: int, expression: Tensor, head_pose: Tensor, center: Tensor, radius: Tensor | float) -> tuple[Tensor, Tensor]:
        """A training frame's code [d_exp] and world-from-head pose [4, 4] with the residuals of its
        instant (the code's only with ``cfg.expression``)."""
        code = expression + self.expression[instant] if self.cfg.expression else expression
        return code, head_pose @ pose_correction(self.pose[instant], center, radius)

    def refined(self, instants: Tensor | int, center: Tensor, radius: Tensor | float) -> tuple[Tensor, Tensor]:
        """Refined codes [..., d_exp] and world-from-head poses [..., 4, 4] of training instants."""
        idx = torch.as_tensor(instants, device=self.pose.device)
        return self.tracked_expression[idx] + self.expression[idx], self.tracked_pose[idx] @ pose_correction(self.pose[idx], center, radius)

    def prior_loss(self, instant: int, center: Tensor, radius: Tensor | float) -> dict[str, Tensor]:
        """The priors at ``instant`` (the frame being trained): the size of its residuals, and the
        second difference of the refined trajectory through it (inside a sequence)."""
        cfg = self.cfg
        size = cfg.pose_size_weight * self.pose[instant].square().sum()
        losses = {"refine_size": size + cfg.expression_size_weight * self.expression[instant].square().mean() if cfg.expression else size}
        if (cfg.pose_smooth_weight > 0 or cfg.expression_smooth_weight > 0) and self.has_neighbours[instant]:
            code, pose = self.refined(torch.arange(instant - 1, instant + 2), center, radius)
            scale = torch.tensor([1.0, 1.0, 1.0, 1.0 / float(radius)], device=pose.device)  # translation in head radii
            top = pose[:, :3, :] * scale
            losses["refine_smooth"] = cfg.pose_smooth_weight * (top[1] - (top[0] + top[2]) / 2).square().sum() + cfg.expression_smooth_weight * (
                code[1] - (code[0] + code[2]) / 2
            ).square().mean()
        return losses

    @torch.no_grad()
    def summary(self, labels: list[str]) -> dict[str, float]:
        """Root-mean-square size of the residuals: rotation (degrees), translation (head radii) and each coefficient."""
        out = {
            "pose_rotation_deg": float(rotation_degrees(self.pose).square().mean().sqrt()),
            "pose_translation": float(self.pose[:, 3:].norm(dim=-1).square().mean().sqrt()),
            "expression": float(self.expression.square().mean().sqrt()),
        }
        out.update({f"expression/{label}": float(v) for label, v in zip(labels, self.expression.square().mean(0).sqrt())})
        return out

    def export(self) -> dict:
        """What ``avatar.pt`` carries: the instants and their residuals (plain tensors)."""
        return {
            "instants": [[s, t] for s, t in self.instants],
            "pose": self.pose.detach().cpu().clone(),
            "expression": self.expression.detach().cpu().clone(),
        }
