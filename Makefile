# The two commands of the README: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup demo test test-quick bench ablation

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	python -m pytest -q

test-quick: setup
	python -m pytest -q -m "not slow"

bench: setup
	python benchmarks/bench_rasterizer.py
	python benchmarks/bench_editor_latency.py

# The ablation (its own DVC pipeline: 4 variants x 3 seeds, 45 minutes on 2 cores shared with other jobs), then the cost of its components.
ablation: setup
	dvc repro ablation/dvc.yaml
	python benchmarks/bench_control_cost.py
