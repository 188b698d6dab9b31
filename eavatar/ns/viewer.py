"""Expression sliders in nerfstudio's viewer (the pattern map4d uses for time).

nerfstudio installs every ``ViewerElement`` it finds among the pipeline's attributes, walking
into ``nn.Module`` children and making one GUI folder per attribute on the way. So the sliders
sit on small parameter-free modules, one per face region, under ``model.expression``:
Custom Elements / model / expression / jaw / jaw_open. Their callbacks write into the model's
``viewer_expression`` buffer, which the viewer's cameras (no per-frame metadata) render with.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from nerfstudio.viewer.viewer_elements import ViewerButton, ViewerSlider
from torch import nn

from eavatar.editor import group_labels


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
