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

# The ablation as DVC experiments (4 variants x 3 seeds at 3,500 steps; about an hour on 2 idle cores, JOBS=1):
# the subject and Stage I mesh it needs (cached by DVC, where each queued experiment checks them out), one
# experiment per run on JOBS queue workers (DVC's run cache replays the unchanged ones), the report from the
# finished experiments (metrics/ablation.json, docs/ablation.md), then the cost of its components.
JOBS ?= 1
ablation: setup
	dvc repro dvc.yaml:geometry
	eavatar ablation queue --jobs $(JOBS)
	eavatar ablation report
	python benchmarks/bench_control_cost.py
