"""HeadAvatar: canonical Gaussians + dynamic generator + rigid head pose, rendered per frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from eavatar.avatar.control import ControlKernel, SparseControlConfig, control_mask, propagate
from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig
from eavatar.avatar.generator import DynamicGenerator, GeneratorConfig
from eavatar.avatar.pose import apply_head_pose, pose_code
from eavatar.render import Camera, RenderOutput, rasterize


@dataclass
class AvatarConfig:
    """Everything that defines the avatar's architecture (not its training schedule)."""

    init: GaussianInitConfig = field(default_factory=GaussianInitConfig)
    """Seeding of the canonical Gaussians from the template mesh."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """Expression and pose MLPs."""
    control: SparseControlConfig = field(default_factory=SparseControlConfig)
    """Sparse expression control: control Gaussians move their neighbours."""
    pixel_filter: float = 0.1
    """Variance (px^2) of the screen-space low-pass on every projected Gaussian (gsplat's eps2d).
    0.1 approximates one pixel's box filter, as Mip-Splatting's 2D filter does; gsplat's default
    0.3 blurs a 3-pixel iris (one seed, 3,500 steps: eyes +0.4 dB, whole +0.1 dB; docs/method.md)."""


@dataclass
class FrameGaussians:
    """The avatar's Gaussians at one expression and pose, ready to rasterise."""

    means: Tensor  # [N, 3] world
    quats: Tensor  # [N, 4] world, unnormalised
    scales: Tensor  # [N, 3] linear
    opacities: Tensor  # [N]
    colors: Tensor  # [N, 3] in [0, 1]
    exp_displacement: Tensor  # [N, 3] head space, expression displacement in world units (after control)
    exp_magnitude: Tensor  # [N] |f_exp_def| in head radii, before control (what tau and tau_split compare)
    is_control: Tensor  # [N] bool, control Gaussians of this frame (all False when control is off)


@dataclass
class Controlled:
    """Expression displacements after sparse control."""

    displacement: Tensor  # [N, 3] head radii, control Gaussians' displacements propagated to their neighbours
    magnitude: Tensor  # [N] |f_exp_def| before control
    is_control: Tensor  # [N] bool (all False when control is off)


class HeadAvatar(nn.Module):
    """The whole avatar; ``frame`` evaluates Phi for (theta, head pose), ``render`` rasterises it."""

    def __init__(self, canonical: CanonicalGaussians, d_exp: int, cfg: AvatarConfig, center: Tensor, radius: float):
        super().__init__()
        self.cfg = cfg
        self.canonical = canonical
        self.generator = DynamicGenerator(d_exp, cfg.init.feature_dim, cfg.generator)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32).reshape(3))  # [3]
        self.register_buffer("radius", torch.tensor(float(radius)))  # head radius, the unit of displacements
        self._reach: tuple | None = None  # (key, [N]), see expression_reach

    @classmethod
    def from_canonical(cls, canonical: CanonicalGaussians, d_exp: int, cfg: AvatarConfig) -> "HeadAvatar":
        means = canonical.params["means"].detach()
        center = means.mean(0)
        return cls(canonical, d_exp, cfg, center, float((means - center).norm(dim=-1).max()))

    @property
    def d_exp(self) -> int:
        return self.generator.d_exp

    def normalized_means(self) -> Tensor:
        """[N, 3] canonical centres in head radii about the centre: what the generator and control read."""
        return (self.canonical.params["means"] - self.center) / self.radius

    def frame(self, expression: Tensor, head_pose: Tensor, bf16: bool = False, control_set: Tensor | None = None) -> FrameGaussians:
        """Gaussians at expression theta [d_exp] and world-from-head pose [4, 4] (``bf16``: the
        generator's MLPs in bfloat16 where native, :class:`DynamicGenerator`; training uses it;
        ``control_set``: sparse control's set, when the caller keeps one, :meth:`control_set`)."""
        normalized = self.normalized_means()
        exp_dx, pose_dx, attrs = self.generator(normalized, self.canonical.params["features"], expression, pose_code(head_pose), bf16)
        return self.compose(self.control(normalized, exp_dx, control_set=control_set, bf16=bf16), pose_dx, attrs, head_pose)

    @torch.no_grad()
    def expression_reach(self, normalized: Tensor | None = None, bf16: bool = False) -> Tensor:
        """[N] head radii: how far the farthest single coefficient at 1 (the others at 0) moves
        each Gaussian from where the neutral code puts it; what tau compares under
        ``select="expression"``. One pass of the position trunk per coefficient; kept until a
        parameter changes."""
        normalized = self.normalized_means() if normalized is None else normalized
        key = (bf16, *((id(t), t._version, tuple(t.shape)) for t in (self.canonical.params["means"], *self.generator.expression.parameters())))
        if self._reach is None or self._reach[0] != key:
            codes = torch.cat([torch.zeros(1, self.d_exp), torch.eye(self.d_exp)]).to(normalized)
            probe = self.generator.expression_deform(normalized.detach(), codes, bf16)  # [1 + d_exp, N, 3]
            self._reach = (key, (probe[1:] - probe[0]).norm(dim=-1).amax(0))
        return self._reach[1]

    def control_set(self, normalized: Tensor | None = None, bf16: bool = False) -> Tensor:
        """[N] bool: sparse control's Gaussians under ``select="expression"``: reach > tau."""
        return self.expression_reach(normalized, bf16) > self.cfg.control.tau

    def control(self, normalized: Tensor, exp_dx: Tensor, kernel: ControlKernel | None = None, control_set: Tensor | None = None, bf16: bool = False) -> Controlled:
        """Sparse expression control on the expression displacements [N, 3] (``kernel``: the
        precomputed neighbourhoods of ``normalized`` when it does not change, no gradients;
        ``control_set``: a set from :meth:`control_set` to use instead of computing it)."""
        cfg = self.cfg.control
        magnitude = exp_dx.detach().norm(dim=-1)
        if not cfg.enabled:
            return Controlled(exp_dx, magnitude, torch.zeros_like(magnitude, dtype=torch.bool))
        if cfg.select == "frame":
            is_control, source = control_mask(exp_dx, cfg.tau), exp_dx
        else:
            is_control = self.control_set(normalized, bf16) if control_set is None else control_set
            if len(is_control) != len(exp_dx):
                raise ValueError(f"control set of {len(is_control)} Gaussians for an avatar of {len(exp_dx)}")
            source = self._motion_from_neutral(normalized, exp_dx, is_control, bf16)
        if kernel is not None:
            return Controlled(kernel.propagate(exp_dx, is_control, source), magnitude, is_control)
        moved = propagate(normalized.detach(), exp_dx, is_control, cfg.radius, cfg.sigma, source, falloff=cfg.falloff)
        return Controlled(moved, magnitude, is_control)

    def _motion_from_neutral(self, normalized: Tensor, exp_dx: Tensor, is_control: Tensor, bf16: bool) -> Tensor:
        """[N, 3]: f(theta) - f(0) on control Gaussians (differentiable), 0 elsewhere."""
        idx = torch.nonzero(is_control).squeeze(1)
        neutral = self.generator.expression_deform(normalized.index_select(0, idx), torch.zeros(1, self.d_exp, device=exp_dx.device), bf16)[0]
        return torch.zeros_like(exp_dx).index_copy(0, idx, exp_dx.index_select(0, idx) - neutral)

    def compose(self, controlled: Controlled, pose_dx: Tensor, attrs: dict[str, Tensor], head_pose: Tensor) -> FrameGaussians:
        """The frame's Gaussians: G0 plus the generator's residuals, then the rigid head pose."""
        p = self.canonical.params
        means_head = p["means"] + self.radius * (controlled.displacement + pose_dx)
        means, quats = apply_head_pose(means_head, p["quats"] + attrs["quats"], head_pose)
        return FrameGaussians(
            means=means,
            quats=quats,
            scales=torch.exp(p["scales"] + attrs["scales"]),
            opacities=torch.sigmoid(p["opacities"] + attrs["opacities"][:, 0]),
            colors=torch.sigmoid(attrs["color"]),
            exp_displacement=self.radius * controlled.displacement,
            exp_magnitude=controlled.magnitude,
            is_control=controlled.is_control,
        )

    def render(self, camera: Camera, expression: Tensor, head_pose: Tensor, background: Tensor) -> RenderOutput:
        """Render one frame; ``background`` [3] fills where alpha < 1."""
        return self.rasterize(self.frame(expression, head_pose), camera, background)

    def rasterize(self, g: FrameGaussians, camera: Camera, background: Tensor) -> RenderOutput:
        return rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, camera, background=background, eps2d=self.cfg.pixel_filter)
