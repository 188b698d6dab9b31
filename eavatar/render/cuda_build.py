"""Making gsplat's CUDA kernels available: find nvcc, point gsplat's build at it, build once, say why not.

gsplat 1.4 ships CUDA sources, not kernels. On first use it compiles them with nvcc (torch's JIT
extension loader) into torch's extension cache (``~/.cache/torch_extensions/py311_cu132/gsplat_cuda``,
or under ``$TORCH_EXTENSIONS_DIR``); later processes load the cached library. gsplat looks for
``nvcc`` on PATH and torch reads ``CUDA_HOME`` once, so both must be set before the first kernel call.
A GPU machine with only the NVIDIA driver has no nvcc; the package registry carries it as wheels
(CUDA 13: ``nvidia-cuda-nvcc``, ``nvidia-cuda-crt``, ``nvidia-nvvm``; the runtime headers and CCCL
come with torch), which unpack to ``site-packages/nvidia/cu13/{bin,include,lib,nvvm}``.

:func:`prepare_cuda_env` picks an nvcc of torch's CUDA version (``$CUDA_HOME``'s, the wheels', PATH's,
``/usr/local/cuda``'s) and sets ``CUDA_HOME`` and ``PATH``; :func:`build_gsplat_kernels` builds or
loads the kernels and draws one Gaussian with them; :func:`gsplat_kernels_available` is its cached
(bool, reason), which ``rasterize.choose_backend`` reads to fall back to the reference backend.
Nothing here compiles, or runs nvcc, without a CUDA device.

    python -m eavatar.render.cuda_build            # build (or load) the kernels; prints the time; exit 1 if not
    python -m eavatar.render.cuda_build --wheels   # pip requirements of the nvcc wheels for torch's CUDA

``bash scripts/setup.sh`` runs both on a machine with a GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

import torch

EXTENSION = "gsplat_cuda"  # the name gsplat builds its JIT extension under
DEFAULT_TOOLKIT = Path("/usr/local/cuda")  # where CUDA toolkit installers put it


def fix_hint() -> str:
    """What to do when the kernels are missing, for warnings and setup's output."""
    wheels = " ".join(f"'{w}'" for w in nvcc_wheels(torch.version.cuda)) or "the CUDA toolkit"
    return (
        "run `bash scripts/setup.sh` on the GPU machine (it installs nvcc from the package registry and builds them), "
        f"or install nvcc matching torch's CUDA {torch.version.cuda} (pip install {wheels}) and run "
        "`python -m eavatar.render.cuda_build`"
    )


def _major_minor(version: Optional[str]) -> Optional[tuple[int, int]]:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def nvcc_wheels(cuda_version: Optional[str]) -> list[str]:
    """pip requirements that put nvcc of ``cuda_version`` ("13.2") into site-packages/nvidia/cu13.

    Pinned to the major.minor because ``nvidia-cuda-nvcc`` requires nvvm and crt unpinned (pip
    would take the newest); the runtime (cuda_runtime.h) is pinned by torch already and CCCL
    (cub) comes with torch's dependencies at the version they chose. CUDA 12's wheels spread
    the toolkit over several directories, which torch's one ``CUDA_HOME`` cannot point at: none.

    >>> nvcc_wheels("13.2")
    ['nvidia-cuda-nvcc==13.2.*', 'nvidia-cuda-crt==13.2.*', 'nvidia-nvvm==13.2.*', 'nvidia-cuda-runtime==13.2.*', 'nvidia-cuda-cccl']
    >>> nvcc_wheels("12.4"), nvcc_wheels(None)
    ([], [])
    """
    mm = _major_minor(cuda_version)
    if mm is None or mm[0] < 13:
        return []
    v = f"{mm[0]}.{mm[1]}"
    return [f"nvidia-cuda-nvcc=={v}.*", f"nvidia-cuda-crt=={v}.*", f"nvidia-nvvm=={v}.*", f"nvidia-cuda-runtime=={v}.*", "nvidia-cuda-cccl"]


def site_package_dirs() -> list[Path]:
    """This interpreter's site-packages directories (the venv's first), existing ones only."""
    dirs: list[str] = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # some embedded interpreters lack it
        pass
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    out: list[Path] = []
    for d in dirs:
        p = Path(d)
        if p.is_dir() and p not in out:
            out.append(p)
    return out


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def nvcc_from_wheels(site_dirs: Optional[Iterable[Path]] = None) -> Optional[Path]:
    """``site-packages/nvidia/cu<major>/bin/nvcc`` from the nvcc wheels, or None when not installed.

    With several (cu13, cu14), the one of torch's CUDA major comes first.
    """
    mm = _major_minor(torch.version.cuda)
    preferred = f"cu{mm[0]}" if mm else None
    found = []
    for sp in site_package_dirs() if site_dirs is None else site_dirs:
        for nvcc in sorted(Path(sp).glob("nvidia/cu*/bin/nvcc")):
            if _executable(nvcc):
                found.append(nvcc)
    found.sort(key=lambda p: p.parent.parent.name != preferred)  # stable: site order otherwise
    return found[0] if found else None


def nvcc_version(nvcc: Path) -> Optional[tuple[int, int]]:
    """(major, minor) from ``nvcc --version``, None when it does not run."""
    try:
        out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def nvcc_candidates(site_dirs: Optional[Iterable[Path]] = None) -> list[Path]:
    """Every nvcc found, in order of preference: $CUDA_HOME's, $CUDA_PATH's, the wheels', PATH's, /usr/local/cuda's."""
    cands: list[Optional[Path]] = [Path(os.environ[v]) / "bin" / "nvcc" for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    cands.append(nvcc_from_wheels(site_dirs))
    which = shutil.which("nvcc")
    cands += [Path(which) if which else None, DEFAULT_TOOLKIT / "bin" / "nvcc"]
    out: list[Path] = []
    seen: set[str] = set()
    for c in cands:
        if c is not None and _executable(c) and os.path.realpath(c) not in seen:
            seen.add(os.path.realpath(c))
            out.append(c)
    return out


def find_nvcc(site_dirs: Optional[Iterable[Path]] = None) -> tuple[Optional[Path], str]:
    """The nvcc to build with and how it was chosen: the first of :func:`nvcc_candidates` of torch's
    CUDA major.minor, else the first of its major (torch warns and builds); None with the reason."""
    want = _major_minor(torch.version.cuda)
    if want is None:
        return None, "this torch is built without CUDA"
    cands = nvcc_candidates(site_dirs)
    if not cands:
        return None, f"no nvcc found (no CUDA toolkit, no nvidia-cuda-nvcc wheel; torch is built with CUDA {torch.version.cuda})"
    versions = [(c, nvcc_version(c)) for c in cands]
    for match in (lambda v: v == want, lambda v: v is not None and v[0] == want[0]):
        for c, v in versions:
            if match(v):
                return c, f"nvcc {v[0]}.{v[1]} at {c}"
    seen = ", ".join(f"{c} ({'%d.%d' % v if v else 'does not run'})" for c, v in versions)
    return None, f"no nvcc of torch's CUDA {torch.version.cuda} (found {seen})"


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eavatar"


def _symlink(link: Path, target: Path) -> None:
    """``link`` -> ``target``, replacing a stale link; safe when two processes race."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def cuda_home_for(nvcc: Path, cache_root: Optional[Path] = None) -> Path:
    """The CUDA_HOME that holds ``nvcc``: its toolkit's root, or for the wheels a small directory of links.

    torch links extensions with ``-L$CUDA_HOME/lib64 -lcudart``, which needs ``libcudart.so``; the
    runtime wheel ships only ``libcudart.so.13``. So a wheel root without it gets a stand-in
    (``~/.cache/eavatar/cuda-home/<hash>``) whose bin, include and nvvm link to the wheels' and
    whose lib64 has libcudart.so -> the wheel's libcudart.so.13. (nvcc finds cicc and the headers
    relative to the path it is called by, ``bin/../nvvm`` and ``bin/../include``: hence the links.)
    """
    top = Path(os.path.realpath(nvcc)).parent.parent
    if any((top / d / "libcudart.so").exists() for d in ("lib64", "lib")):
        return top
    runtimes = sorted((top / "lib").glob("libcudart.so.*"))
    if not runtimes:
        return top  # no runtime library at all: torch's link step will say so
    home = (cache_root or _cache_root()) / "cuda-home" / hashlib.sha1(str(top).encode()).hexdigest()[:12]
    (home / "lib64").mkdir(parents=True, exist_ok=True)
    for sub in ("bin", "include", "nvvm"):
        if (top / sub).is_dir():
            _symlink(home / sub, top / sub)
    _symlink(home / "lib64" / "libcudart.so", runtimes[0])
    return home


def prepare_cuda_env(site_dirs: Optional[Iterable[Path]] = None) -> tuple[Optional[str], str]:
    """Set CUDA_HOME, and PATH's first nvcc, to :func:`find_nvcc`'s before gsplat's first kernel call.

    Returns (CUDA_HOME or None, how it was chosen or why there is none). Also updates torch's
    ``cpp_extension.CUDA_HOME`` when that module was imported before (it reads the variable once).
    """
    nvcc, how = find_nvcc(site_dirs)
    if nvcc is None:
        return None, how
    home = cuda_home_for(nvcc)
    os.environ["CUDA_HOME"] = str(home)
    bin_dir = str(home / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    os.environ["PATH"] = os.pathsep.join([bin_dir, *path])
    ext = sys.modules.get("torch.utils.cpp_extension")
    if ext is not None:
        ext.CUDA_HOME = str(home)
    return str(home), how


def kernel_cache_dir() -> Path:
    """Where gsplat's JIT build lives (the directory gsplat itself asks torch for)."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(EXTENSION, verbose=False))


@dataclass(frozen=True)
class KernelStatus:
    ok: bool
    reason: str  # "ok", or why the kernels are not there
    seconds: Optional[float] = None  # building or loading them, and one test draw
    cached: bool = False  # a build from an earlier process was loaded
    cuda_home: Optional[str] = None


def _short(e: BaseException) -> str:
    """One line from an exception; for a failed build, its first line and first compiler error."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    head = f"{type(e).__name__}: {lines[0][:200] if lines else ''}"
    error = next((ln for ln in lines[1:] if "error" in ln.lower()), None)
    return f"{head} ({error[:300]})" if error else head


def _draw_one_gaussian() -> None:
    """One Gaussian through gsplat's forward kernels: a build for another GPU fails here, not mid-run."""
    from gsplat import rasterization

    dev = torch.device("cuda")
    one = torch.ones(1, device=dev)
    K = torch.tensor([[[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]]], device=dev)
    _, alpha, _ = rasterization(
        torch.tensor([[0.0, 0.0, 2.0]], device=dev), torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=dev),
        torch.full((1, 3), 0.2, device=dev), 0.9 * one, torch.ones(1, 3, device=dev), torch.eye(4, device=dev)[None], K, 16, 16,
    )
    torch.cuda.synchronize()
    if not float(alpha.max()) > 0.5:
        raise RuntimeError(f"drew nothing (max alpha {float(alpha.max()):.3f})")


_lock = threading.Lock()


@lru_cache(maxsize=None)
def build_gsplat_kernels() -> KernelStatus:
    """Build (first time, minutes) or load gsplat's kernels, then draw one Gaussian; never raises.

    Once per process. Without a CUDA device it returns at once: nothing is compiled and nvcc is
    not run.
    """
    if not torch.cuda.is_available():
        return KernelStatus(False, "no CUDA device (torch.cuda.is_available() is False)")
    with _lock:
        try:
            home, how = prepare_cuda_env()
        except Exception as e:  # e.g. no writable cache for the wheels' CUDA_HOME links
            return KernelStatus(False, f"could not set up CUDA_HOME: {_short(e)}")
        if home is None:
            return KernelStatus(False, how)
        t = time.perf_counter()
        try:
            cached = (kernel_cache_dir() / f"{EXTENSION}.so").exists()
            from gsplat.cuda._backend import _C  # builds, or loads the cached build
        except Exception as e:  # a failed build raises from the import; nothing else should stop a run
            return KernelStatus(False, f"gsplat's CUDA build failed with {how}: {_short(e)}", cuda_home=home)
        if _C is None:
            return KernelStatus(False, f"gsplat found no nvcc on PATH (chose {how})", cuda_home=home)
        try:
            _draw_one_gaussian()
        except Exception as e:  # e.g. a cached build for another GPU: delete it, the next use rebuilds
            return KernelStatus(False, f"gsplat's kernels are built but fail to run: {_short(e)} (built for another GPU? delete {kernel_cache_dir()})", cuda_home=home)
        return KernelStatus(True, "ok", round(time.perf_counter() - t, 1), cached, home)


def gsplat_kernels_available() -> tuple[bool, str]:
    """(True, "ok") when gsplat's kernels run here; else (False, why). Cached; cheap without a GPU."""
    status = build_gsplat_kernels()
    return status.ok, status.reason


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", action="store_true", help="print the pip requirements of the nvcc wheels for torch's CUDA (exit 1: none)")
    args = ap.parse_args(argv)
    if args.wheels:
        wheels = nvcc_wheels(torch.version.cuda)
        print(" ".join(wheels))
        return 0 if wheels else 1
    status = build_gsplat_kernels()
    if status.ok:
        what = "loaded from the cache" if status.cached else "built"
        print(f"gsplat kernels: {what} in {status.seconds:.1f} s ({kernel_cache_dir()}; CUDA_HOME={status.cuda_home})")
        return 0
    print(
        f"WARNING: gsplat's CUDA kernels are not available: {status.reason}.\n"
        "  Training and rendering on CUDA will use the slower plain-PyTorch (reference) rasteriser.\n"
        f"  Fix: {fix_hint()}.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
