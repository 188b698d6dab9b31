#!/usr/bin/env bash
# The main job: the whole DVC pipeline on the synthetic subject, then where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
dvc repro
echo
echo "== metrics/eval.json (all of it: dvc metrics show metrics/eval.json; per frame: artifacts/eval/per_frame_<split>.csv)"
python - <<'PY'
import json
splits = json.load(open("metrics/eval.json"))["splits"]
keys = ["num_frames", "psnr", "ssim", "lpips", "mouth_psnr", "eyes_psnr", "brows_psnr", "skin_psnr", "flicker"]
print(f"{'split':<16}" + "".join(f"{k:>12}" for k in keys))
for name, m in splits.items():
    print(f"{name:<16}" + "".join(f"{m[k]:>12.4g}" if isinstance(m.get(k), (int, float)) else f"{'-':>12}" for k in keys))
PY
echo
echo "== Stage I mesh against the ground truth (metrics/geometry.json): dvc metrics show metrics/geometry.json"
echo
echo "wall time of dvc repro: $(( $(date +%s) - start )) s"
echo "renders:      artifacts/render/ (test_sequence.mp4, orbit.mp4, canonical.ply, orbit_expression.ply)"
echo "eval samples: artifacts/eval/sample_*.png (ground truth | render)"
echo "MLflow runs:  mlflow ui --backend-store-uri sqlite:///$(pwd)/mlflow.db   (then open http://127.0.0.1:5000)"
