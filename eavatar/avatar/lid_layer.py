"""A second, nearly transparent layer of Gaussians just in front of the eyes: the lids' own.

Seeded from one surface, the Gaussians over an eye must draw the eyeball while the lid is
open and the lid when it closes, by changing colour with the blink. The avatar then renders a
blend of iris and lid at every blink value and loses the lid's 1-2 px edge even on open eyes
(docs/method.md, "Training": open-eye frames 21.7 dB, against 23.4 for an avatar that never
sees a blink). A few Gaussians a lid's thickness in front of the eyes, with features of their
own and almost no opacity at the start, give the appearance branch somewhere to draw the lid
(its opacity rises with the blink) while the eyeball behind keeps its texture.

The eyes are found from the subject's region maps: a seed point is an eye point when, over
the training frames that see it (its surface faces the camera), it projects onto the
``eyes`` region in most of them. Subjects without region maps get no layer.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig
from eavatar.data.frames import frame_camera, load_region_map
from eavatar.data.subject import Subject

#: Every how many training frames a region map is read (the eyes do not need all of them).
FRAME_STRIDE = 5
#: A point seen in fewer frames than this is never an eye point.
MIN_VIEWS = 3


def surface_normals(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:  # [N, 3] -> [N, 3]
    """Outward unit normal of the mesh face nearest to each point (the seeds lie on it)."""
    _, _, faces = trimesh.proximity.closest_point(mesh, points)
    return np.asarray(mesh.face_normals[faces], dtype=np.float64)


def eye_points(points: np.ndarray, normals: np.ndarray, subject: Subject, label: str = "eyes") -> np.ndarray:  # -> [N] bool
    """Head-space points [N, 3] that land on the ``label`` region in most training frames that face them."""
    if label not in subject.region_labels:
        return np.zeros(len(points), dtype=bool)
    value = subject.region_labels[label]
    hits = np.zeros(len(points))
    views = np.zeros(len(points))
    for index in subject.split("train")[::FRAME_STRIDE]:
        path = subject.region_paths[index]
        if path is None:
            continue
        pose = subject.head_poses[index].astype(np.float64)
        world = points @ pose[:3, :3].T + pose[:3, 3]
        world_normals = normals @ pose[:3, :3].T
        facing = np.einsum("ij,ij->i", subject.c2w[index][:3, 3] - world, world_normals) > 0
        u, v, in_view = (t.numpy() for t in frame_camera(subject, int(index)).pixels(torch.from_numpy(world)))
        seen = facing & in_view
        regions = load_region_map(path).numpy()
        hits[seen] += regions[v[seen], u[seen]] == value
        views += seen
    return (views >= MIN_VIEWS) & (hits > 0.5 * views)


@torch.no_grad()
def add_lid_layer(canonical: CanonicalGaussians, normals: np.ndarray, eyes: np.ndarray, cfg: GaussianInitConfig, radius: float) -> int:
    """Append, for each eye Gaussian, a copy ``cfg.lid_offset`` head radii out along its normal,
    at opacity ``cfg.lid_opacity`` and with a fresh feature; returns how many were added."""
    select = torch.as_tensor(np.asarray(eyes, dtype=bool))
    count = int(select.sum())
    if count == 0:
        return 0
    params = canonical.params
    new = {name: params[name].detach()[select].clone() for name in params}
    new["means"] += cfg.lid_offset * radius * torch.as_tensor(normals[eyes], dtype=new["means"].dtype)
    new["opacities"] = torch.logit(torch.full((count,), cfg.lid_opacity))
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    new["features"] = 0.1 * torch.randn(new["features"].shape, generator=generator)  # as from_points draws them
    for name in params:
        params[name] = torch.nn.Parameter(torch.cat([params[name].detach(), new[name]]))
    return count
