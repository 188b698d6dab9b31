"""The dynamic generator Phi: expression and pose branches that turn G0 into the posed avatar.

Following the paper (and GHA, which it extends), every attribute gets an expression residual
and a pose residual:

    X = X0 + f_exp_def(X0, theta) + f_pose_def(X0, beta)
    C = f_exp_col(F0, theta) + f_pose_col(F0, beta)
    Q = Q0 + f_exp_rot(., theta) + f_pose_rot(., beta)      (likewise S and A)

Positions are conditioned on the (encoded) canonical position; colour, rotation, scale and
opacity on the per-Gaussian feature F0. Each branch has one MLP trunk for the positions and
one for the other attributes, with a separate linear head per attribute (the paper leaves
sizes open; shared trunks keep a CPU step cheap). Output heads of residuals start at zero so
training begins from the canonical set.

Each trunk reads the code twice (our choice; the paper only says the MLPs take it): as an
input of its first layer, and as per-unit scales of every hidden layer (FiLM, Perez et al.
2018): layer k computes relu((1 + s_k(code)) * (W_k h) + b_k). A code that enters only as an
input shifts a unit by the same amount wherever the Gaussian is; a scale lets a unit that
fires on one lid follow one coefficient, so the two lids can blink apart. The scales start at
zero (the plain MLP) and multiply the weight rows, not the [N, H] activations, so they cost
nothing per Gaussian.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Width of each attribute head of the appearance trunks: colour, rotation, log-scale, opacity logit.
ATTRIBUTE_SIZES = {"color": 3, "quats": 4, "scales": 3, "opacities": 1}
#: A branch's output: displacement [N, 3] and attribute residuals by name.
BranchOutput = tuple[Tensor, dict[str, Tensor]]


@dataclass
class GeneratorConfig:
    """Sizes of the expression and pose MLPs (the paper gives none)."""

    hidden_dim: int = 64
    """Width of every hidden layer."""
    num_layers: int = 3
    """Hidden layers per trunk."""
    pos_frequencies: int = 6
    """Frequencies of the sinusoidal encoding of the canonical position."""
    pose_branch: bool = True
    """Predict pose-dependent residuals (set False for a purely expression-driven avatar)."""


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        mods += [nn.Linear(dim, hidden), nn.ReLU(inplace=True)]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*mods)


def positional_encoding(x: Tensor, frequencies: int) -> Tensor:  # [N, 3] -> [N, 3 + 6 * frequencies]
    """NeRF-style sin/cos features of x at octave frequencies (x is in head-normalised units)."""
    scales = 2.0 ** torch.arange(frequencies, device=x.device, dtype=x.dtype) * torch.pi
    xs = (x[..., None] * scales).flatten(-2)
    return torch.cat([x, xs.sin(), xs.cos()], dim=-1)


class Branch(nn.Module):
    """One conditioning branch (expression or pose): a position trunk and an appearance trunk,
    each with its FiLM scales (``*_scales``: code -> one scale per unit of every hidden layer).

    A trunk's first layer reads [per-Gaussian input, code]; its per-Gaussian product
    (:meth:`rows`) can be kept while only the code changes (:meth:`from_rows`, the expression
    editor).
    """

    def __init__(self, code_dim: int, pos_dim: int, feature_dim: int, cfg: GeneratorConfig):
        super().__init__()
        self.row_dims = (pos_dim, feature_dim)
        self.deform = mlp(pos_dim + code_dim, cfg.hidden_dim, cfg.num_layers, 3)
        self.attributes = mlp(feature_dim + code_dim, cfg.hidden_dim, cfg.num_layers, sum(ATTRIBUTE_SIZES.values()))
        self.deform_scales = nn.Linear(code_dim, cfg.hidden_dim * cfg.num_layers)
        self.attributes_scales = nn.Linear(code_dim, cfg.hidden_dim * cfg.num_layers)
        for zero_start in (self.deform[-1], self.attributes[-1], self.deform_scales, self.attributes_scales):
            nn.init.zeros_(zero_start.weight)
            nn.init.zeros_(zero_start.bias)

    def forward(self, pos_enc: Tensor, features: Tensor, code: Tensor) -> BranchOutput:
        """pos_enc [N, P], features [N, F], code [C] -> displacement [N, 3] and residuals by name.

        The code is the same for every Gaussian, so its part of each first layer is folded into
        that layer's bias: one [N, input] product per layer, no [N, input + C] concatenation.
        """
        deform = _trunk(self.deform, self.deform_scales, pos_enc, code)
        return deform, _attributes(_trunk(self.attributes, self.attributes_scales, features, code))

    def rows(self, pos_enc: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        """The code-independent product of each trunk's first layer (before its scale and bias): [N, H] twice."""
        p, f = self.row_dims
        return F.linear(pos_enc, self.deform[0].weight[:, :p]), F.linear(features, self.attributes[0].weight[:, :f])

    def from_rows(self, rows: tuple[Tensor, Tensor], code: Tensor) -> BranchOutput:
        """Finish both trunks from :meth:`rows` and the code [C]."""
        deform = _finish(self.deform, self.deform_scales, rows[0], code)
        return deform, _attributes(_finish(self.attributes, self.attributes_scales, rows[1], code))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Avatars saved before the FiLM scales load with zero scales: the very MLPs they trained.
        (Only where the dict holds this branch's trunks: a partial load, as nerfstudio's pipeline
        makes of its own keys, must leave the scales alone.)"""
        if f"{prefix}deform.0.weight" not in state_dict:
            return super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        for name in ("deform_scales", "attributes_scales"):
            for field in ("weight", "bias"):
                state_dict.setdefault(f"{prefix}{name}.{field}", torch.zeros_like(getattr(getattr(self, name), field)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _layer_scales(film: nn.Linear, code: Tensor, layers: int) -> Tensor:  # [layers, H]
    return (1 + film(code)).view(layers, -1)


def _hidden_and_head(linears: nn.Sequential, scales: Tensor, h: Tensor) -> Tensor:
    """Layers 1.. of a trunk: each hidden layer's weight rows scaled by its FiLM scales, then the head."""
    for k in range(1, len(linears) - 1):
        h = F.relu(F.linear(h, scales[k, :, None] * linears[k].weight, linears[k].bias), inplace=True)
    return linears[-1](h)


def _trunk(net: nn.Sequential, film: nn.Linear, inputs: Tensor, code: Tensor) -> Tensor:
    """``net`` on [inputs, code] for every row, FiLM-scaled, with the code's columns folded into the first bias."""
    linears, n = net[::2], inputs.shape[-1]  # Linear, ReLU, ..., Linear: the Linears
    scales = _layer_scales(film, code, len(linears) - 1)
    first = linears[0]
    code_part = torch.addmv(first.bias, first.weight[:, n:], code)
    return _hidden_and_head(linears, scales, F.relu(F.linear(inputs, scales[0, :, None] * first.weight[:, :n], code_part), inplace=True))


def _finish(net: nn.Sequential, film: nn.Linear, rows: Tensor, code: Tensor) -> Tensor:
    """:func:`_trunk` from the first layer's kept product ``rows`` [N, H]."""
    linears = net[::2]
    scales = _layer_scales(film, code, len(linears) - 1)
    first = linears[0]
    code_part = torch.addmv(first.bias, first.weight[:, first.in_features - code.shape[-1] :], code)
    return _hidden_and_head(linears, scales, F.relu(torch.addcmul(code_part, rows, scales[0]), inplace=True))


def _attributes(out: Tensor) -> dict[str, Tensor]:
    """The appearance trunk's output [N, 11] split into its residuals by name."""
    return dict(zip(ATTRIBUTE_SIZES, out.split(list(ATTRIBUTE_SIZES.values()), dim=-1)))


class DynamicGenerator(nn.Module):
    """Phi: (canonical Gaussians, theta, beta) -> head-space Gaussians of one frame."""

    def __init__(self, d_exp: int, feature_dim: int, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.d_exp = d_exp
        pos_dim = 3 + 6 * cfg.pos_frequencies
        self.expression = Branch(d_exp, pos_dim, feature_dim, cfg)
        self.pose = Branch(6, pos_dim, feature_dim, cfg) if cfg.pose_branch else None

    def forward(
        self, normalized_means: Tensor, features: Tensor, expression: Tensor, pose: Tensor, bf16: bool = False
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Residuals of one frame.

        Args:
            normalized_means: [N, 3] canonical centres, centred and divided by the head radius.
            features: [N, F] per-Gaussian features F0.
            expression: [d_exp] theta.
            pose: [6] beta (axis-angle, translation).
            bf16: run the MLPs' matrix products in bfloat16 (torch.autocast) where the device
                does them natively (:func:`native_bfloat16`); the outputs are float32 either way.

        Returns:
            exp_displacement [N, 3], pose_displacement [N, 3] (head-radius units) and the summed
            attribute outputs {"color", "quats", "scales", "opacities"}.
        """
        self.check_expression(expression)
        pos_enc = positional_encoding(normalized_means, self.cfg.pos_frequencies)
        with bfloat16_autocast(normalized_means.device) if bf16 else contextlib.nullcontext():
            exp_out = self.expression(pos_enc, features, expression)
            pose_out = None if self.pose is None else self.pose(pos_enc, features, pose)
        exp_dx, pose_dx, attrs = combine(exp_out, pose_out)
        return exp_dx.float(), pose_dx.float(), {k: v.float() for k, v in attrs.items()}

    def expression_deform(self, normalized_means: Tensor, codes: Tensor, bf16: bool = False) -> Tensor:
        """f_exp_def alone at each code of ``codes`` [K, d_exp]: [K, N, 3] (head radii). What
        sparse control's selection probes; the position encoding and the first layer's
        per-Gaussian product are computed once for all K."""
        self.check_expression(codes)
        branch = self.expression
        pos_enc = positional_encoding(normalized_means, self.cfg.pos_frequencies)
        with bfloat16_autocast(normalized_means.device) if bf16 else contextlib.nullcontext():
            rows = F.linear(pos_enc, branch.deform[0].weight[:, : branch.row_dims[0]])
            out = torch.stack([_finish(branch.deform, branch.deform_scales, rows, code) for code in codes])
        return out.float()

    def check_expression(self, expression: Tensor) -> None:
        if expression.shape[-1] != self.d_exp:
            raise ValueError(f"expression has {expression.shape[-1]} values, the avatar was trained with d_exp={self.d_exp}")


@lru_cache(maxsize=None)
def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (faster than float32), not emulated:
    x86 CPUs with AVX512-BF16 or AMX, CUDA GPUs with bf16 support."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities()
        return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    return False


def bfloat16_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """torch.autocast to bfloat16 on ``device`` where it is native (see :func:`native_bfloat16`), else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=native_bfloat16(device))


def combine(exp_out: BranchOutput, pose_out: BranchOutput | None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """(exp displacement, pose displacement, summed attribute residuals) from the two branches' outputs."""
    exp_dx, attrs = exp_out
    if pose_out is None:
        return exp_dx, torch.zeros_like(exp_dx), attrs
    pose_dx, pose_attrs = pose_out
    return exp_dx, pose_dx, {k: attrs[k] + pose_attrs[k] for k in attrs}
