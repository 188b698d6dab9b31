"""Interactive expression editing for JupyterLab: sliders in, avatar image out.

The notebook (notebooks/02_expression_editing.ipynb) only lays this out; the logic lives
here so it is tested like the rest of the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from eavatar.avatar.drive import orbit_camera
from eavatar.avatar.frozen import FrozenAvatar
from eavatar.avatar.model import HeadAvatar
from eavatar.data.expression_labels import group_labels
from eavatar.data.frames import to_uint8
from eavatar.data.subject import Subject
from eavatar.threads import cpu_threads


def head_pose_matrix(reference: Tensor, yaw_deg: float, pitch_deg: float) -> Tensor:
    """The reference world-from-head pose turned by yaw (about y) then pitch (about x), in head space."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    Ry = torch.tensor([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]], dtype=torch.float32)
    Rx = torch.tensor([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]], dtype=torch.float32)
    turn = torch.eye(4)
    turn[:3, :3] = Ry @ Rx
    return reference.cpu() @ turn


def render_threads() -> int:
    """The editor's compute threads: all cores but one, at most 4.

    The spare core is the browser's and Jupyter's, which decode and ship every frame. On 2
    cores that is one thread: a slider move at 20,000 Gaussians took 44 ms with 1 thread and
    32 ms with 2 on idle cores, but with one other busy process 2 threads gave 57 ms median and
    158 ms p90 against 44 / 47 ms (OpenMP threads wait on each other; docs/benchmarks.md).
    """
    return max(1, min(4, (os.cpu_count() or 1) - 1))


@dataclass
class EditorState:
    """What the sliders set."""

    expression: Tensor  # [d_exp]
    yaw: float = 0.0
    pitch: float = 0.0
    azimuth: float = 0.0
    elevation: float = 0.0


class ExpressionEditor:
    """Renders an avatar at an editable expression, head pose and orbit camera."""

    def __init__(self, avatar: HeadAvatar, subject: Subject, reference_head_pose: Tensor, background: Tensor, size: int = 256, threads: int | None = None):
        if subject.d_exp != avatar.d_exp:
            raise ValueError(f"{subject.transforms_path}: {subject.d_exp} expression coefficients, the avatar expects {avatar.d_exp}")
        self.avatar = avatar.eval()
        self.frozen = FrozenAvatar(self.avatar)  # a slider re-runs only what it changes
        self.subject = subject
        self.labels = list(subject.expression_labels)
        self.reference = reference_head_pose.float().cpu()
        self.background = background.to(avatar.center.device)
        self.size = size
        self.threads = render_threads() if threads is None else threads  # compute threads while rendering (cpu_threads)
        self.state = EditorState(torch.zeros(len(self.labels)))

    def set(self, label: str, value: float) -> None:
        if label not in self.labels:
            raise KeyError(f"unknown expression '{label}' (known: {', '.join(self.labels)})")
        self.state.expression[self.labels.index(label)] = float(value)

    def preset(self, name: str) -> None:
        """'neutral', 'max:<label>' (one coefficient at its training maximum), or 'frame:<index>' of the subject."""
        train = self.subject.split("train")
        if name == "neutral":
            self.state.expression = torch.zeros(len(self.labels))
        elif name.startswith("max:"):
            label = name[4:]
            self.state.expression = torch.zeros(len(self.labels))
            self.set(label, float(self.subject.expressions[train, self.labels.index(label)].max()))
        elif name.startswith("frame:"):
            self.state.expression = torch.as_tensor(self.subject.expressions[int(name[6:])], dtype=torch.float32).clone()
        else:
            raise ValueError(f"unknown preset {name!r} (neutral, max:<label>, frame:<index>)")

    def presets(self) -> list[str]:
        return ["neutral", *(f"max:{label}" for label in self.labels), f"frame:{int(self.subject.split('test')[0])}"]

    def render(self, expression: Tensor | None = None) -> np.ndarray:
        """uint8 [H, W, 3] of the current state (or of ``expression`` with the current pose and camera)."""
        with torch.inference_mode(), cpu_threads(self.threads):
            return self._render(expression)

    def _render(self, expression: Tensor | None) -> np.ndarray:
        s = self.state
        device = self.avatar.center.device
        pose = head_pose_matrix(self.reference, s.yaw, s.pitch).to(device)
        camera = orbit_camera(self.avatar, self.subject, self.reference.to(device), s.azimuth, s.elevation, self.size)
        code = (s.expression if expression is None else expression).to(device)
        return to_uint8(self.frozen.render(camera, code, pose, self.background).rgb)

    def track(self, sequence: str) -> Tensor:
        """The expression track [T, d_exp] of one of the subject's sequences (any camera), for cross-reenactment."""
        frames = [i for i in self.subject.frames_of_sequence(sequence)]
        by_time = {int(self.subject.timesteps[i]): i for i in frames}
        return torch.as_tensor(self.subject.expressions[[by_time[t] for t in sorted(by_time)]], dtype=torch.float32)

    def save_image(self, path: str | Path) -> Path:
        import imageio.v3 as iio

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, self.render())
        return path

    def save_video(self, path: str | Path, track: Tensor, fps: int = 25) -> Path:
        from eavatar.pipeline.render import write_video

        return write_video(Path(path), [self.render(code) for code in track], fps)

    def save_ply(self, path: str | Path) -> Path:
        from eavatar.avatar.ply import export_frame_ply

        device = self.avatar.center.device
        pose = head_pose_matrix(self.reference, self.state.yaw, self.state.pitch).to(device)
        return export_frame_ply(path, self.avatar, self.state.expression.to(device), pose)


def png_bytes(image: np.ndarray) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", image, extension=".png", compress_level=1)  # lossless; level 1 is 2.5x faster to encode than the default 6 (same size within 20%)


def build_widget(editor: ExpressionEditor, out_dir: str | Path = "editor_outputs"):
    """The editing panel: grouped expression sliders, head pose, orbit, presets, playback, save buttons.

    Every control re-renders the image on change. Returns (panel, controls by name).
    """
    import ipywidgets as W

    image = W.Image(value=png_bytes(editor.render()), format="png", width=editor.size, height=editor.size)
    controls: dict[str, W.Widget] = {}
    status = W.Label("")
    busy = {"on": False}

    def redraw(*_):
        if not busy["on"]:
            image.value = png_bytes(editor.render())

    def slider(name, lo, hi, value, step, on_change):
        w = W.FloatSlider(value=value, min=lo, max=hi, step=step, description=name, continuous_update=True, style={"description_width": "110px"})
        w.observe(lambda ch: (on_change(ch["new"]), redraw()), names="value")
        controls[name] = w
        return w

    groups = []
    for group, labels in group_labels(editor.labels).items():
        sliders = [slider(label, 0.0, 1.0, 0.0, 0.01, lambda v, label=label: editor.set(label, v)) for label in labels]
        groups.append(W.VBox([W.HTML(f"<b>{group}</b>"), *sliders]))

    def sync_sliders():
        busy["on"] = True
        for label, value in zip(editor.labels, editor.state.expression.tolist()):
            controls[label].value = round(value, 2)
        busy["on"] = False
        redraw()

    pose = [
        slider("head yaw", -45, 45, 0.0, 1.0, lambda v: setattr(editor.state, "yaw", v)),
        slider("head pitch", -30, 30, 0.0, 1.0, lambda v: setattr(editor.state, "pitch", v)),
        slider("camera orbit", -180, 180, 0.0, 1.0, lambda v: setattr(editor.state, "azimuth", v)),
        slider("camera elevation", -45, 45, 0.0, 1.0, lambda v: setattr(editor.state, "elevation", v)),
    ]
    preset = W.Dropdown(options=editor.presets(), description="preset")
    preset.observe(lambda ch: (editor.preset(ch["new"]), sync_sliders()), names="value")
    controls["preset"] = preset

    sequence = W.Dropdown(options=editor.subject.sequence_names(), description="drive with")
    track = {"codes": editor.track(sequence.value)}
    play = W.Play(value=0, min=0, max=len(track["codes"]) - 1, interval=120, description="play")

    def on_sequence(ch):
        track["codes"] = editor.track(ch["new"])
        play.max = len(track["codes"]) - 1
        play.value = 0

    def on_frame(ch):
        editor.state.expression = track["codes"][ch["new"]].clone()
        sync_sliders()

    sequence.observe(on_sequence, names="value")
    play.observe(on_frame, names="value")
    controls.update(sequence=sequence, play=play)

    out_dir = Path(out_dir)

    def save(kind):
        def handler(_):
            if kind == "image":
                path = editor.save_image(out_dir / "current.png")
            elif kind == "video":
                path = editor.save_video(out_dir / f"{sequence.value}.mp4", track["codes"])
            else:
                path = editor.save_ply(out_dir / "current.ply")
            status.value = f"saved {path}"

        return handler

    buttons = []
    for kind in ("image", "video", "ply"):
        b = W.Button(description=f"save {kind}")
        b.on_click(save(kind))
        controls[f"save {kind}"] = b
        buttons.append(b)

    panel = W.HBox(
        [
            W.VBox([image, W.HBox([sequence, play]), W.HBox(buttons), status]),
            W.VBox([preset, *groups, W.HTML("<b>pose and camera</b>"), *pose]),
        ]
    )
    controls["image"] = image
    return panel, controls
