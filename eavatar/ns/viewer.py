"""Expression sliders in nerfstudio's viewer (the pattern map4d uses for time).

nerfstudio installs every ``ViewerElement`` it finds among the pipeline's attributes, walking
into ``nn.Module`` children and making one GUI folder per attribute on the way. So the sliders
sit on small parameter-free modules, one per face region, under ``model.expression``:
Custom Elements / model / expression / jaw / jaw_open. Their callbacks write into the model's
``viewer_expression`` buffer, which the viewer's cameras (no per-frame metadata) render with.

The viewer opens facing the head (:class:`FaceTheHead`, a ``ViewerControl`` on the datamanager):
nerfstudio's default camera assumes a z-up world, and subjects are y up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from nerfstudio.viewer.viewer_elements import ViewerButton, ViewerControl, ViewerSlider
from torch import nn

from eavatar.data.expression_labels import group_labels
from eavatar.data.subject import Subject


def slider_range(values: np.ndarray) -> tuple[float, float]:  # [T] one coefficient over the training frames
    """[0, 1] widened to the coefficient's training range (FLAME-like spaces are signed and exceed 1)."""
    lo, hi = float(min(0.0, values.min(initial=0.0))), float(max(1.0, values.max(initial=1.0)))
    return math.floor(round(lo * 10, 6)) / 10, math.ceil(round(hi * 10, 6)) / 10


class ExpressionControls(nn.Module):
    """One ``ViewerSlider`` per expression label, in a folder per face region, and a reset button.

    ``write(k, value)`` stores coefficient k; it is the only link to the model (no module cycle).
    """

    def __init__(self, labels: list[str], ranges: list[tuple[float, float]], initial: list[float], write: Callable[[int, float], None]):
        super().__init__()
        self.labels = list(labels)
        self._write = write
        self.sliders: dict[str, ViewerSlider] = {}
        for group, members in group_labels(self.labels).items():
            folder = nn.Module()
            for label in members:
                k = self.labels.index(label)
                slider = ViewerSlider(label, float(initial[k]), ranges[k][0], ranges[k][1], step=0.01, cb_hook=lambda e, k=k: write(k, float(e.value)))
                setattr(folder, f"e{k:03d}_{label}", slider)  # dir() order = the subject's label order (no leading digit: Module.__dir__ drops those)
                self.sliders[label] = slider
            self.add_module(group, folder)
        self.reset = ViewerButton("reset expression", cb_hook=lambda _: self.set_all([0.0] * len(self.labels)))

    def set_all(self, values: list[float]) -> None:
        """Move every slider (the GUI's when installed) and the expression they drive."""
        for label, value in zip(self.labels, values):
            self.sliders[label].value = float(value)
            self._write(self.labels.index(label), float(value))


@dataclass(frozen=True)
class HeadView:
    """The viewer's first camera, in nerfstudio world units: in front of the face, head up.

    nerfstudio leaves viser's default camera (world z up, looking down from a corner), which for
    a y-up subject is a tilted view of the top of the head. This view comes from the subject's
    data, so training, checkpoints and renders are untouched.
    """

    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    up: tuple[float, float, float]
    fov: float  # vertical, radians


def head_centre(subject: Subject) -> np.ndarray:  # [3] head space
    """Centre of the template mesh's bounding box (head space), else the head-space origin."""
    if subject.template_mesh is None:
        return np.zeros(3)
    from eavatar.avatar.gaussians import load_mesh

    return np.asarray(load_mesh(subject.template_mesh).bounds, dtype=np.float64).mean(0)


def front_view(subject: Subject) -> HeadView:
    """Facing the head of the first training frame (the pose the viewer renders with), from its
    +z axis (the face's direction in head space), at the training cameras' median distance,
    with the head's +y up and the first training camera's vertical field of view."""
    train = subject.split("train")
    pose = np.asarray(subject.head_poses[train[0]], dtype=np.float64)  # world-from-head, the model's viewer_head_pose
    centre = pose[:3, :3] @ head_centre(subject) + pose[:3, 3]
    up, front = pose[:3, 1], pose[:3, 2]
    distance = float(np.median(np.linalg.norm(subject.c2w[train, :3, 3] - centre, axis=-1)))
    height, fy = float(subject.image_sizes[train[0], 1]), float(subject.intrinsics[train[0], 1])
    return HeadView(_floats(centre + distance * front), _floats(centre), _floats(up), 2.0 * math.atan(height / (2.0 * fy)))


def _floats(v: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(x) for x in v)  # type: ignore[return-value]


class FaceTheHead(ViewerControl):
    """Turns the viewer to a :class:`HeadView`: the scene's up direction, and each new client's camera.

    A ``ViewerControl`` is nerfstudio's public hook into its viewer: the viewer finds it among the
    pipeline's attributes (like the sliders) and hands it the viser server.
    """

    def __init__(self, view: HeadView):
        self.view = view

    def _setup(self, viewer) -> None:  # nerfstudio's Viewer, while it builds its GUI
        super()._setup(viewer)
        self.viser_server.scene.set_up_direction(self.view.up)
        self.viser_server.on_client_connect(self.face_the_head)  # runs once the client has sent its camera

    def face_the_head(self, client) -> None:
        from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO as scale

        view = self.view
        with client.atomic():
            client.camera.fov = view.fov
            client.camera.position = tuple(scale * x for x in view.position)  # moves look_at along: set it after
            client.camera.look_at = tuple(scale * x for x in view.look_at)
            client.camera.up_direction = view.up
