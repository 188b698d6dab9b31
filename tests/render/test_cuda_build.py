"""Finding nvcc (toolkit or the registry's wheels), the CUDA_HOME gsplat's build gets, and the kernels' status, without a GPU.

Fake nvcc executables are shell scripts that print a release; nothing here compiles.
"""

import os
import sys
import time
import types
from pathlib import Path

import pytest
import torch

import eavatar.render.cuda_build as cb


def fake_nvcc(root: Path, release: str) -> Path:
    """``root/bin/nvcc`` that answers ``--version`` like nvcc ``release``."""
    nvcc = root / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True, exist_ok=True)
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.86'\n")
    nvcc.chmod(0o755)
    return nvcc


def fake_wheels(site: Path, release: str = "13.2", major: str = "cu13") -> Path:
    """The layout the nvcc, crt, nvvm and runtime wheels unpack to: site/nvidia/cu13/{bin,include,lib,nvvm}."""
    top = site / "nvidia" / major
    nvcc = fake_nvcc(top, release)
    for d in ("include", "nvvm/bin", "lib"):
        (top / d).mkdir(parents=True, exist_ok=True)
    (top / "include" / "cuda_runtime.h").write_text("")
    (top / "lib" / "libcudart.so.13").write_text("")
    return nvcc


@pytest.fixture
def no_system_nvcc(monkeypatch, tmp_path):
    """No CUDA_HOME, no nvcc on PATH, no /usr/local/cuda: only what a test puts there."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin" if not any(Path(d, "nvcc").exists() for d in ("/usr/bin", "/bin")) else "")
    monkeypatch.setattr(cb, "DEFAULT_TOOLKIT", tmp_path / "no-toolkit")
    monkeypatch.setattr(torch.version, "cuda", "13.2")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_nvcc_from_wheels_finds_the_wheel_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.2")
    site = tmp_path / "site-packages"
    assert cb.nvcc_from_wheels([site]) is None  # nothing installed
    nvcc = fake_wheels(site)
    assert cb.nvcc_from_wheels([tmp_path / "elsewhere", site]) == nvcc
    fake_wheels(tmp_path / "other", "14.0", "cu14")
    assert cb.nvcc_from_wheels([tmp_path / "other", site]) == nvcc  # torch's major first
    nvcc.chmod(0o644)
    assert cb.nvcc_from_wheels([site]) is None  # not executable: not an nvcc


def test_the_site_packages_searched_by_default_are_this_interpreters():
    dirs = cb.site_package_dirs()
    assert dirs and all(d.is_dir() for d in dirs)
    assert Path(torch.__file__).parent.parent in dirs


def test_wheels_follow_torchs_cuda_version():
    assert cb.nvcc_wheels("13.2")[:3] == ["nvidia-cuda-nvcc==13.2.*", "nvidia-cuda-crt==13.2.*", "nvidia-nvvm==13.2.*"]
    assert cb.nvcc_wheels("13.0.1")[0] == "nvidia-cuda-nvcc==13.0.*"
    assert cb.nvcc_wheels("12.8") == [] and cb.nvcc_wheels(None) == []


def test_find_nvcc_prefers_torchs_version_over_an_older_toolkit(tmp_path, monkeypatch, no_system_nvcc):
    old = fake_nvcc(tmp_path / "cuda-12.4", "12.4")
    monkeypatch.setenv("CUDA_HOME", str(old.parent.parent))
    site = tmp_path / "site"
    nvcc, how = cb.find_nvcc([site])
    assert nvcc is None and "12.4" in how and "13.2" in how  # only a toolkit of another major
    wheel = fake_wheels(site, "13.2")
    assert cb.find_nvcc([site]) == (wheel, f"nvcc 13.2 at {wheel}")
    same = fake_nvcc(tmp_path / "cuda-13.2", "13.2")
    monkeypatch.setenv("CUDA_HOME", str(same.parent.parent))
    assert cb.find_nvcc([site])[0] == same  # an explicit CUDA_HOME of torch's version wins
    minor = fake_nvcc(tmp_path / "cuda-13.0", "13.0")
    monkeypatch.setenv("CUDA_HOME", str(minor.parent.parent))
    assert cb.find_nvcc([site])[0] == wheel  # exact major.minor before the same major


def test_no_nvcc_at_all_says_so(tmp_path, no_system_nvcc):
    nvcc, how = cb.find_nvcc([tmp_path / "empty"])
    assert nvcc is None and how.startswith("no nvcc found")


def test_cuda_home_of_the_wheels_gets_libcudart_so(tmp_path):
    nvcc = fake_wheels(tmp_path / "site")
    top = nvcc.parent.parent
    home = cb.cuda_home_for(nvcc, cache_root=tmp_path / "cache")
    assert home != top and home.is_relative_to(tmp_path / "cache")
    assert (home / "lib64" / "libcudart.so").resolve() == (top / "lib" / "libcudart.so.13").resolve()
    for sub in ("bin", "include", "nvvm"):
        assert (home / sub).resolve() == (top / sub).resolve()
    assert cb.cuda_home_for(nvcc, cache_root=tmp_path / "cache") == home  # again: the same links, no error


def test_cuda_home_of_a_toolkit_is_its_root(tmp_path):
    nvcc = fake_nvcc(tmp_path / "cuda", "13.2")
    (tmp_path / "cuda" / "lib64").mkdir()
    (tmp_path / "cuda" / "lib64" / "libcudart.so").write_text("")
    assert cb.cuda_home_for(nvcc, cache_root=tmp_path / "cache") == tmp_path / "cuda"


def test_prepare_cuda_env_points_path_and_torch_at_the_wheels(tmp_path, monkeypatch, no_system_nvcc):
    import torch.utils.cpp_extension as ext

    monkeypatch.setattr(ext, "CUDA_HOME", None)  # read when torch's module was imported: none then
    assert cb.prepare_cuda_env([tmp_path / "empty"])[0] is None
    wheel = fake_wheels(tmp_path / "site")
    home, how = cb.prepare_cuda_env([tmp_path / "site"])
    assert os.environ["CUDA_HOME"] == home == ext.CUDA_HOME and str(wheel) in how
    first = os.environ["PATH"].split(os.pathsep)[0]
    assert first == str(Path(home) / "bin") and (Path(first) / "nvcc").resolve() == wheel.resolve()
    cb.prepare_cuda_env([tmp_path / "site"])
    assert os.environ["PATH"].split(os.pathsep).count(first) == 1  # idempotent


@pytest.fixture
def fresh_status():
    cb.build_gsplat_kernels.cache_clear()
    yield
    cb.build_gsplat_kernels.cache_clear()


def test_without_a_cuda_device_nothing_is_compiled_and_the_answer_is_immediate(monkeypatch, fresh_status):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cb, "prepare_cuda_env", lambda *a: pytest.fail("looked for nvcc without a GPU"))
    backend_loaded = "gsplat.cuda._backend" in sys.modules
    t = time.perf_counter()
    ok, reason = cb.gsplat_kernels_available()
    assert (ok, reason.startswith("no CUDA device")) == (False, True)
    assert cb.gsplat_kernels_available() == (ok, reason)  # cached
    assert time.perf_counter() - t < 0.5
    assert ("gsplat.cuda._backend" in sys.modules) == backend_loaded  # gsplat's build was not started


@pytest.fixture
def pretend_gpu(monkeypatch, tmp_path, fresh_status):
    """A CUDA device and an nvcc, as far as build_gsplat_kernels can tell; gsplat's backend module is the test's."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cb, "prepare_cuda_env", lambda *a: (str(tmp_path / "cuda"), "nvcc 13.2 at /fake/nvcc"))
    monkeypatch.setattr(cb, "kernel_cache_dir", lambda: tmp_path / "ext")

    def backend(**attrs):
        module = types.ModuleType("gsplat.cuda._backend")
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", module)

    return backend


def test_a_failed_build_is_a_reason_not_an_exception(monkeypatch, pretend_gpu):
    log = "Error building extension 'gsplat_cuda': [1/27] nvcc ... isect_tiles.cu\nFAILED: isect_tiles.cuda.o\nisect_tiles.cu(12): error: namespace cub has no member Sum\nninja: build stopped"

    def failed_build(name):  # `from gsplat.cuda._backend import _C` raises, as torch's failed build does
        raise RuntimeError(log)

    pretend_gpu(__getattr__=failed_build)
    ok, reason = cb.gsplat_kernels_available()
    assert not ok
    assert reason == (
        "gsplat's CUDA build failed with nvcc 13.2 at /fake/nvcc: RuntimeError: Error building extension 'gsplat_cuda': "
        "[1/27] nvcc ... isect_tiles.cu (isect_tiles.cu(12): error: namespace cub has no member Sum)"
    )
    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", None)  # any exception of the import, not only the build's
    cb.build_gsplat_kernels.cache_clear()
    assert cb.gsplat_kernels_available()[1].startswith("gsplat's CUDA build failed with nvcc 13.2 at /fake/nvcc: ModuleNotFoundError")


def test_gsplat_without_nvcc_and_kernels_that_do_not_run(monkeypatch, pretend_gpu, tmp_path):
    pretend_gpu(_C=None)
    assert cb.gsplat_kernels_available() == (False, "gsplat found no nvcc on PATH (chose nvcc 13.2 at /fake/nvcc)")
    cb.build_gsplat_kernels.cache_clear()
    pretend_gpu(_C=object())

    def no_kernel_image():
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device\nmore")

    monkeypatch.setattr(cb, "_draw_one_gaussian", no_kernel_image)
    ok, reason = cb.gsplat_kernels_available()
    assert not ok and reason == (
        "gsplat's kernels are built but fail to run: RuntimeError: CUDA error: no kernel image is available for execution "
        f"on the device (built for another GPU? delete {tmp_path / 'ext'})"
    )


def test_an_unwritable_cache_is_a_reason_not_an_exception(monkeypatch, pretend_gpu):
    def no_cache(*a):
        raise PermissionError(13, "Permission denied", "/root/.cache/eavatar")

    monkeypatch.setattr(cb, "prepare_cuda_env", no_cache)
    ok, reason = cb.gsplat_kernels_available()
    assert not ok and reason.startswith("could not set up CUDA_HOME: PermissionError: [Errno 13] Permission denied")


def test_built_kernels_report_time_and_cache(monkeypatch, pretend_gpu, tmp_path, capsys):
    pretend_gpu(_C=object())
    monkeypatch.setattr(cb, "_draw_one_gaussian", lambda: None)
    status = cb.build_gsplat_kernels()
    assert status.ok and status.reason == "ok" and not status.cached and status.seconds >= 0
    assert cb.main([]) == 0 and "gsplat kernels: built in" in capsys.readouterr().out
    cb.build_gsplat_kernels.cache_clear()
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "gsplat_cuda.so").write_text("")
    assert cb.build_gsplat_kernels().cached
    assert cb.main([]) == 0 and "loaded from the cache" in capsys.readouterr().out


def test_main_warns_with_the_fix_and_lists_the_wheels(monkeypatch, capsys, fresh_status):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.2")
    assert cb.main([]) == 1
    err = capsys.readouterr().err
    assert "WARNING: gsplat's CUDA kernels are not available: no CUDA device" in err
    assert "slower plain-PyTorch" in err and "bash scripts/setup.sh" in err and "nvidia-cuda-nvcc==13.2.*" in err
    assert cb.main(["--wheels"]) == 0
    assert capsys.readouterr().out.split() == cb.nvcc_wheels("13.2")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    assert cb.main(["--wheels"]) == 1
