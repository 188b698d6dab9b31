# The two commands of the README: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup demo test test-quick bench

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
