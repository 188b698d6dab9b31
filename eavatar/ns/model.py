"""EAvatarModel: nerfstudio's Model interface around :class:`eavatar.avatar.model.HeadAvatar`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch.nn import Parameter

from eavatar.avatar.densify import DensifyConfig, Densifier
from eavatar.avatar.gaussians import PARAM_NAMES, CanonicalGaussians, load_mesh
from eavatar.avatar.lid_layer import add_lid_layer, eye_points, surface_normals
from eavatar.avatar.losses import LossConfig, image_losses, region_weights
from eavatar.avatar.model import AvatarConfig, HeadAvatar
from eavatar.avatar.refinement import RefinementConfig, TrackingRefinement
from eavatar.data.frames import ground_truth
from eavatar.data.subject import Subject
from eavatar.metrics.image import psnr
from eavatar.metrics.lpips import find_lpips_weights, load_lpips
from eavatar.ns.viewer import ExpressionControls, slider_range
from eavatar.render import Camera, RenderOutput


@dataclass
class EAvatarModelConfig(ModelConfig):
    """The EAvatar avatar, its losses and its densification schedule."""

    _target: Type = field(default_factory=lambda: EAvatarModel)
    enable_collider: bool = False
    """Rays are not sampled: a rasteriser needs no near/far collider."""
    avatar: AvatarConfig = field(default_factory=AvatarConfig)
    """Canonical Gaussians and dynamic generator."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Stage II loss weights."""
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    """Grow/prune schedule."""
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    """Per-frame refinement of the tracked head pose and expression code through the renderer (monocular video)."""
    background: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Colour behind the head, the same as the subject's images (synthetic: white)."""
    init_mesh: str = ""
    """Head-space mesh that seeds the Gaussians instead of the subject's template (Stage I: artifacts/geometry/mesh.ply)."""
    bf16_mlps: bool = True
    """Training runs the generator's MLPs in bfloat16 (torch.autocast; weights, optimiser and the rest
    of the step stay float32) where the device multiplies bf16 natively (x86 CPUs with AVX512-BF16 or
    AMX, CUDA GPUs with bf16), elsewhere in float32; evaluation and rendering are float32. Demo step
    on 2 cores: 2.6x faster MLPs (docs/benchmarks.md)."""


def ns_camera_to_camera(camera: Cameras) -> Camera:
    """One nerfstudio camera (OpenGL c2w [1, 3, 4]) as the rasteriser's Camera."""
    return Camera.from_c2w_opengl(
        camera.camera_to_worlds[0],
        float(camera.fx[0]),
        float(camera.fy[0]),
        float(camera.cx[0]),
        float(camera.cy[0]),
        int(camera.width[0]),
        int(camera.height[0]),
    )


class EAvatarModel(Model):
    """Trains a HeadAvatar; the viewer sees the expression set in ``viewer_expression``."""

    config: EAvatarModelConfig

    def populate_modules(self):
        super().populate_modules()
        subject: Subject = self.kwargs["metadata"]["subject"]
        if not self.config.init_mesh and subject.template_mesh is None:
            raise ValueError(f"{subject.root}/transforms.json: template_mesh is required to seed the Gaussians (or set init_mesh)")
        seed_mesh = load_mesh(self.config.init_mesh or subject.template_mesh)  # EAvatar: the Stage I mesh when given
        init = self.config.avatar.init
        canonical = CanonicalGaussians.from_mesh(seed_mesh, init)
        self.avatar = HeadAvatar.from_canonical(canonical, subject.d_exp, self.config.avatar)
        if init.lid_layer:
            points = canonical.params["means"].detach().double().numpy()
            normals = surface_normals(seed_mesh, points)
            added = add_lid_layer(canonical, normals, eye_points(points, normals, subject), init, float(self.avatar.radius))
            CONSOLE.print(f"lid layer: {added} Gaussians in front of the eyes" if added else f"lid layer: none (no seed lands on the eyes of {subject.root}'s region maps)")
        self.expression_labels = list(subject.expression_labels)
        self.register_buffer("background", torch.tensor(self.config.background, dtype=torch.float32))
        train = subject.split("train")
        # The viewer has no per-frame data: it shows the avatar at a chosen code and the first training pose.
        self.register_buffer("viewer_expression", torch.zeros(subject.d_exp))
        self.register_buffer("viewer_head_pose", torch.as_tensor(subject.head_poses[train[0]], dtype=torch.float32))
        codes = subject.expressions[train]  # [T, d_exp]
        ranges = [slider_range(codes[:, k]) for k in range(subject.d_exp)]
        self.expression = ExpressionControls(self.expression_labels, ranges, [0.0] * subject.d_exp, self.set_viewer_coefficient)
        self.densifier = Densifier(self.config.densify, float(self.avatar.radius))
        if self.config.loss.lpips_weight > 0:
            find_lpips_weights("alex")  # fails here, with how to install the weights, not mid-training
        self.step = 0
        self.optimizers: Dict[str, torch.optim.Optimizer] = {}
        self.last_render: Optional[RenderOutput] = None
        self.last_exp_magnitude: Optional[torch.Tensor] = None
        self.last_num_control = 0
        self.train_control_set: Optional[Tuple[int, torch.Tensor]] = None  # (step computed, [N] bool), see training_control_set
        self.refinement = TrackingRefinement.for_subject(self.config.refinement, subject) if self.config.refinement.enabled else None
        self.last_instant = -1  # the training instant of the latest training render (-1: none refined)

    def set_viewer_coefficient(self, k: int, value: float) -> None:
        """What an expression slider does: the viewer renders with ``viewer_expression``."""
        self.viewer_expression[k] = value

    # -- optimisation -------------------------------------------------------------------------
    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = {name: [self.avatar.canonical.params[name]] for name in PARAM_NAMES}
        groups["generator"] = list(self.avatar.generator.parameters())
        if self.refinement is not None:
            groups["refine_pose"] = [self.refinement.pose]
            if self.config.refinement.expression:
                groups["refine_expression"] = [self.refinement.expression]
        return groups

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        def before(step: int) -> None:
            self.step = step
            self.optimizers = attributes.optimizers.optimizers

        def after(step: int) -> None:
            if self.last_render is not None:
                params = self.avatar.canonical.params
                self.densifier.step(params, {k: self.optimizers[k] for k in PARAM_NAMES}, step, self.last_render, self.last_exp_magnitude)
                self.last_render = None
                if step % self.config.densify.refine_every == 0:  # Gaussians may have been added, removed or reordered
                    self.train_control_set = None

        return [
            TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], before),
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], after),
        ]

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):  # type: ignore[override]
        """Resize the canonical tensors to the checkpoint's N (densification changes it) before loading.

        Resized in place: the optimisers nerfstudio built before loading hold these very
        Parameters, and the densifier edits them through the optimisers; new Parameter objects
        would leave both working on the old ones.
        """
        canonical = self.avatar.canonical
        for name in PARAM_NAMES:
            param = canonical.params[name]
            param.data = torch.zeros(state_dict[f"avatar.canonical.params.{name}"].shape, dtype=param.dtype, device=param.device)
        result = super().load_state_dict(state_dict, strict=strict, **kwargs)
        self.expression.set_all(self.viewer_expression.tolist())  # sliders show the checkpoint's viewer expression
        return result

    def get_extra_state(self) -> dict:
        """What a resumed run needs besides the tensors: the densifier's statistics and the RNG."""
        densify = {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in self.densifier.state.items()}
        return {"densify": densify, "last_splits": self.densifier.last_splits, "torch_rng": torch.get_rng_state()}

    def set_extra_state(self, state: dict) -> None:
        device = self.background.device
        self.densifier.state = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in state["densify"].items()}
        self.densifier.last_splits = int(state["last_splits"])
        torch.set_rng_state(state["torch_rng"])

    # -- rendering ----------------------------------------------------------------------------
    def frame_controls(self, camera: Cameras) -> Tuple[torch.Tensor, torch.Tensor]:
        """Expression [d_exp] and head pose [4, 4] of a dataset camera, or the viewer's."""
        meta = camera.metadata or {}
        if "expression" in meta:
            return meta["expression"].reshape(-1, self.avatar.d_exp)[0], meta["head_pose"].reshape(-1, 4, 4)[0]
        return self.viewer_expression, self.viewer_head_pose

    def refined_controls(self, camera: Cameras, expression: torch.Tensor, head_pose: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """A training frame's code and pose with its instant's residuals, once the warm-up is over
        (before it, and outside training, the tracked ones: the residuals get no gradient)."""
        self.last_instant = -1
        meta = camera.metadata or {}
        if self.refinement is None or not self.training or "frame_index" not in meta or self.step < self.config.refinement.start_step:
            return expression, head_pose
        instant = self.refinement.instant_of(int(meta["frame_index"].reshape(-1)[0]))
        if instant < 0:
            return expression, head_pose
        self.last_instant = instant
        return self.refinement.refine(instant, expression, head_pose, self.avatar.center, self.avatar.radius)

    def get_outputs(self, camera: Cameras) -> Dict[str, torch.Tensor]:  # type: ignore[override]
        if not isinstance(camera, Cameras) or camera.shape[0] != 1:
            raise ValueError("EAvatarModel renders one nerfstudio Cameras at a time")
        expression, head_pose = self.refined_controls(camera, *self.frame_controls(camera))
        bf16 = self.training and self.config.bf16_mlps
        frame = self.avatar.frame(expression, head_pose, bf16=bf16, control_set=self.training_control_set(bf16) if self.training else None)
        out = self.avatar.rasterize(frame, ns_camera_to_camera(camera), self.background)
        if self.training:
            self.last_render, self.last_exp_magnitude = out, frame.exp_magnitude
            self.last_num_control = int(frame.is_control.sum())
        return {"rgb": out.rgb, "accumulation": out.alpha, "depth": out.depth}

    def training_control_set(self, bf16: bool) -> Optional[torch.Tensor]:
        """Sparse control's set during training (``select="expression"``): recomputed every
        ``control.refresh_every`` steps and after each densification, not at every step (it
        costs a pass of the position trunk per coefficient; evaluation always computes it)."""
        control = self.avatar.cfg.control
        if not (control.enabled and control.select == "expression"):
            return None
        held = self.train_control_set
        if held is None or len(held[1]) != len(self.avatar.canonical) or self.step - held[0] >= control.refresh_every or self.step < held[0]:
            self.train_control_set = held = (self.step, self.avatar.control_set(bf16=bf16).clone())
        return held[1]

    def get_outputs_for_camera(self, camera: Cameras, obb_box=None) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.get_outputs(camera.to(self.device))

    # -- losses and metrics -------------------------------------------------------------------
    def _gt(self, batch) -> torch.Tensor:
        """The target: the image (and its fg mask, when the subject has masks) over the background."""
        return ground_truth(batch["image"], batch.get("mask"), self.background)

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        lpips_fn = load_lpips("alex", device=self.device) if self.config.loss.lpips_weight > 0 else None  # cached, not a submodule
        weights = None
        if "regions" in batch:
            weights = region_weights(batch["regions"].to(self.device), self.kwargs["metadata"]["subject"].region_labels, self.config.loss)
        losses = image_losses(outputs["rgb"], self._gt(batch), self.config.loss, self.step, lpips_fn, weights)
        if self.refinement is not None:  # the keys from step 0 (zero before the warm-up): every log has the same columns
            zero = torch.zeros((), device=self.device)
            priors = self.refinement.prior_loss(self.last_instant, self.avatar.center, self.avatar.radius) if self.training and self.last_instant >= 0 else {}
            losses.update({key: priors.get(key, zero) for key in ("refine_size", "refine_smooth")})
        return losses

    def get_metrics_dict(self, outputs, batch) -> Dict[str, torch.Tensor]:
        return {
            "psnr": psnr(outputs["rgb"].detach(), self._gt(batch)),
            "num_gaussians": torch.tensor(float(len(self.avatar.canonical))),
            "num_control": torch.tensor(float(self.last_num_control)),  # control-set size of this frame
            "deformation_splits": torch.tensor(float(self.densifier.last_splits)),  # at the latest refinement
            **self.refinement_sizes(),
        }

    def refinement_sizes(self) -> Dict[str, torch.Tensor]:
        """RMS of the tracking residuals (rotation degrees, translation head radii, code), for the logs."""
        if self.refinement is None:
            return {}
        summary = self.refinement.summary([])
        return {f"refine_{k}": torch.tensor(v) for k, v in summary.items()}

    def get_image_metrics_and_images(self, outputs, batch):
        from eavatar.metrics.image import image_metrics

        gt = self._gt(batch)
        metrics = {k: v for k, v in image_metrics(outputs["rgb"], gt).items() if isinstance(v, float)}
        return metrics, {"img": torch.cat([gt, outputs["rgb"]], dim=1)}
