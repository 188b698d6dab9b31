"""A synthetic head seen from the front at an expressive code and at the neutral code.

Rendered by the synthetic subject's mesh renderer (eavatar.data.synthetic), so the ground truth
has exact region maps and meshes; small (128 px, mesh level 4) and ray cast in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import trimesh

from eavatar.data.synthetic import EXPRESSION_LABELS, HEAD_HEIGHT, REGION_LABELS, ProceduralHead, render_head

RESOLUTION = 128


@dataclass
class HeadFrame:
    """One frontal view of the head at an expression: image, region labels, labelled mesh."""

    rgb: torch.Tensor  # [H, W, 3] in [0, 1] over white
    regions: torch.Tensor  # [H, W] uint8
    mesh: trimesh.Trimesh  # head space
    vertex_regions: np.ndarray  # [V] region label of each vertex


def code(**values: float) -> np.ndarray:
    out = np.zeros(len(EXPRESSION_LABELS))
    for name, v in values.items():
        out[EXPRESSION_LABELS.index(name)] = v
    return out


def labelled_mesh(head: ProceduralHead, expression: np.ndarray) -> tuple[trimesh.Trimesh, np.ndarray]:
    """The head's mesh and each vertex's region (the label its texture gives at that vertex)."""
    vertices, canon = head.geometry(expression)
    part = np.zeros(len(vertices), dtype=np.int8)
    part[head.faces.ravel()] = np.repeat(head.parts, 3)
    _, labels = head.albedo(canon, part, expression, with_regions=True)
    return trimesh.Trimesh(vertices, head.faces, process=False), labels.astype(np.int64)


def frontal_view(head: ProceduralHead, expression: np.ndarray) -> HeadFrame:
    focal = 0.75 * RESOLUTION / (HEAD_HEIGHT * 1.1)
    c2w = np.eye(4)
    c2w[2, 3] = 1.0  # at distance 1 on +z, looking down -z at the face
    ((rgb, _, regions),) = render_head(head, expression, np.eye(4), [c2w], (focal, focal, RESOLUTION / 2, RESOLUTION / 2), (RESOLUTION, RESOLUTION), 2)
    mesh, labels = labelled_mesh(head, expression)
    return HeadFrame(torch.tensor(rgb, dtype=torch.float32), torch.from_numpy(regions), mesh, labels)


@pytest.fixture(scope="session")
def head_frames() -> dict[str, HeadFrame]:
    """{"expressive": jaw open with a smile, "neutral": the same head at the zero code}."""
    head = ProceduralHead(0, 4)
    return {"expressive": frontal_view(head, code(jaw_open=1.0, smile=0.6)), "neutral": frontal_view(head, np.zeros(len(EXPRESSION_LABELS)))}


@pytest.fixture(scope="session")
def region_labels() -> dict[str, int]:
    return dict(REGION_LABELS)
