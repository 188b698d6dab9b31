#!/usr/bin/env bash
# The GPU check (docs/benchmarks.md, "GPU check"): setup, which on a GPU machine installs nvcc and
# builds gsplat's CUDA kernels, then benchmarks/gpu_check.py (arguments passed on). One JSON summary
# on stdout and in benchmarks/results/gpu_check.json. Without a GPU: exits 2 at once, one line.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "no GPU: nvidia-smi not found (no NVIDIA driver); run this on a machine with an NVIDIA GPU" >&2
  exit 2
fi
bash scripts/setup.sh >&2  # stdout stays the JSON summary
exec .venv/bin/python benchmarks/gpu_check.py "$@"
