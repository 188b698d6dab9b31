#!/usr/bin/env bash
# The main job: the whole DVC pipeline on the synthetic subject, then where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
dvc repro
echo
echo "== test-split metrics (dvc metrics show metrics/eval.json)"
dvc metrics show metrics/eval.json
echo
echo "== Stage I mesh against the ground truth (metrics/geometry.json): dvc metrics show metrics/geometry.json"
echo
echo "wall time of dvc repro: $(( $(date +%s) - start )) s"
echo "renders:      artifacts/render/ (test_sequence.mp4, orbit.mp4, canonical.ply, orbit_expression.ply)"
echo "eval samples: artifacts/eval/sample_*.png (ground truth | render)"
echo "MLflow runs:  mlflow ui --backend-store-uri sqlite:///$(pwd)/mlflow.db   (then open http://127.0.0.1:5000)"
