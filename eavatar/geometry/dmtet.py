"""Differentiable marching tetrahedra (DMTet's surface extraction) in plain PyTorch.

A cube grid is split into tetrahedra, the SDF is evaluated at the grid vertices, and every
tetrahedron whose vertices change sign emits one or two triangles whose vertices sit on the
sign-changing edges at the linear zero crossing

    p = (p_a * s_b - p_b * s_a) / (s_b - s_a),

so the mesh vertices are differentiable in the SDF values (and in the grid positions). The
face connectivity is discrete and carries no gradient, as in DMTet.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

#: The six edges of a tetrahedron as pairs of its local vertex slots.
TET_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_EDGE_SLOT = {pair: k for k, pair in enumerate(TET_EDGES)}


def _edge(a: int, b: int) -> int:
    return _EDGE_SLOT[(min(a, b), max(a, b))]


def _triangle_table() -> Tensor:  # [16, 2, 3] edge slots, -1 = no triangle
    """Triangles of each inside/outside pattern (bit k = vertex k inside), as edge slots.

    One vertex apart from the other three: one triangle over its three edges. Two and two
    (inside a, b; outside c, d): the crossing edges form the cycle ac, ad, bd, bc, split in two.
    Orientation is fixed at run time (it depends on each tetrahedron's handedness).
    """
    table = torch.full((16, 2, 3), -1, dtype=torch.long)
    for case in range(16):
        inside = [k for k in range(4) if case >> k & 1]
        outside = [k for k in range(4) if not case >> k & 1]
        if len(inside) in (1, 3):
            lone, rest = (inside[0], outside) if len(inside) == 1 else (outside[0], inside)
            table[case, 0] = torch.tensor([_edge(lone, r) for r in rest])
        elif len(inside) == 2:
            (a, b), (c, d) = inside, outside
            quad = [_edge(a, c), _edge(a, d), _edge(b, d), _edge(b, c)]
            table[case, 0] = torch.tensor(quad[:3])
            table[case, 1] = torch.tensor([quad[0], quad[2], quad[3]])
    return table


TRIANGLE_TABLE = _triangle_table()


@dataclass
class TetGrid:
    """A tetrahedralised cube grid over an axis-aligned box."""

    vertices: Tensor  # [V, 3] world positions
    tets: Tensor  # [T, 4] long vertex indices
    cell: float  # edge length of one cube

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]


def cube_tet_grid(resolution: int, center: Tensor, half_extent: float) -> TetGrid:
    """``resolution``^3 cubes over the cube ``center`` +- ``half_extent``, six tetrahedra per cube.

    The six tetrahedra of a cube are the Kuhn (Freudenthal) split along its 000-111 diagonal:
    one per axis order. Neighbouring cubes then share triangulated faces exactly, so the
    extracted surface is watertight.

    >>> grid = cube_tet_grid(2, torch.zeros(3), 1.0)
    >>> grid.vertices.shape, grid.tets.shape
    (torch.Size([27, 3]), torch.Size([48, 4]))
    """
    if resolution < 1:
        raise ValueError(f"cube_tet_grid: resolution must be >= 1, got {resolution}")
    n = resolution + 1
    axis = torch.linspace(-half_extent, half_extent, n)
    gx, gy, gz = torch.meshgrid(axis, axis, axis, indexing="ij")
    vertices = torch.stack([gx, gy, gz], -1).reshape(-1, 3) + torch.as_tensor(center, dtype=torch.float32).reshape(1, 3)
    idx = torch.arange(resolution)
    cx, cy, cz = torch.meshgrid(idx, idx, idx, indexing="ij")
    corner = torch.stack([cx, cy, cz], -1).reshape(-1, 3)  # [C, 3] lower corner of every cube

    def vid(offset: Tensor) -> Tensor:  # [C, 3] grid coords -> [C] vertex ids
        p = corner + offset
        return (p[:, 0] * n + p[:, 1]) * n + p[:, 2]

    tets = []
    for order in itertools.permutations(range(3)):
        step = torch.zeros(3, dtype=torch.long)
        path = [vid(step.clone())]
        for a in order:
            step[a] = 1
            path.append(vid(step.clone()))
        tets.append(torch.stack(path, -1))
    return TetGrid(vertices, torch.cat(tets, 0), 2.0 * half_extent / resolution)


def marching_tets(vertices: Tensor, tets: Tensor, sdf: Tensor) -> tuple[Tensor, Tensor]:
    """Zero level set of ``sdf`` over a tetrahedral mesh, negative inside.

    Args:
        vertices: [V, 3] tet-grid positions (may require grad).
        tets: [T, 4] long.
        sdf: [V] signed distances (may require grad).

    Returns:
        mesh vertices [M, 3] (differentiable in ``vertices`` and ``sdf``) and faces [F, 3] long,
        oriented with normals pointing outward (toward positive SDF).
    """
    if sdf.shape != vertices.shape[:1]:
        raise ValueError(f"marching_tets: sdf must be [V]={list(vertices.shape[:1])}, got {list(sdf.shape)}")
    device = vertices.device
    with torch.no_grad():
        inside = sdf.detach() < 0
        occ = inside[tets]  # [T, 4]
        count = occ.sum(1)
        active = (count > 0) & (count < 4)
        tets_a = tets[active]
        cases = (occ[active].long() * (2 ** torch.arange(4, device=device))).sum(1)
        edges = tets_a[:, torch.tensor(TET_EDGES, device=device)]  # [Ta, 6, 2]
        edges = torch.sort(edges, dim=-1).values
        crossing = inside[edges[..., 0]] != inside[edges[..., 1]]  # [Ta, 6]
        unique_edges, inverse = torch.unique(edges[crossing], dim=0, return_inverse=True)
        slot_to_vertex = torch.full(crossing.shape, -1, dtype=torch.long, device=device)
        slot_to_vertex[crossing] = inverse
        table = TRIANGLE_TABLE.to(device)[cases]  # [Ta, 2, 3] edge slots
        has_tri = table[..., 0] >= 0  # [Ta, 2]
        tet_of_tri = torch.arange(len(tets_a), device=device)[:, None].expand(-1, 2)[has_tri]
        faces = torch.gather(slot_to_vertex[tet_of_tri], 1, table[has_tri])  # [F, 3]
    a, b = unique_edges[:, 0], unique_edges[:, 1]
    sa, sb = sdf[a][:, None], sdf[b][:, None]
    mesh_vertices = (vertices[a] * sb - vertices[b] * sa) / (sb - sa)
    with torch.no_grad():
        faces = _orient_outward(mesh_vertices.detach(), faces, vertices, tets_a[tet_of_tri], inside)
    return mesh_vertices, faces


def _orient_outward(mv: Tensor, faces: Tensor, grid: Tensor, face_tets: Tensor, inside: Tensor) -> Tensor:
    """Flip faces whose normal points from the outside corners of their tet toward the inside ones."""
    normal = torch.cross(mv[faces[:, 1]] - mv[faces[:, 0]], mv[faces[:, 2]] - mv[faces[:, 0]], dim=-1)
    corners = grid[face_tets]  # [F, 4, 3]
    w_in = inside[face_tets].float()[..., None]
    outward = (corners * (1 - w_in)).sum(1) / (1 - w_in).sum(1) - (corners * w_in).sum(1) / w_in.sum(1)
    flip = (normal * outward).sum(-1) < 0
    return torch.where(flip[:, None], faces[:, [0, 2, 1]], faces)
