"""The ablation of sparse control, deformation-aware splitting and the prior, as DVC experiments.

  eavatar ablation run      one variant at one seed: train, evaluate, mouth and eye crops (ablation/dvc.yaml's run stage)
  eavatar ablation queue    one DVC experiment per variant x seed, `dvc queue start -j N`, wait
  eavatar ablation report   metrics/ablation.json, docs/ablation.md and figures from the finished experiments

`make ablation` runs queue then report. Each subcommand is its own module (run_.py: `run` is
this package's entry point), imported by name here, so the run stage's code deps (its import
closure, scripts/dvc_deps.py) do not include the queue or the report: editing the page never
re-runs a training.
"""

from __future__ import annotations

import argparse
import importlib

ACTIONS = ("run", "queue", "report")


def _module(action: str):
    return importlib.import_module(f"{__name__}.{action}_" if action == "run" else f"{__name__}.{action}")  # by name: see the module docstring


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the docstring's lines
    sub = p.add_subparsers(dest="action", required=True, metavar="{" + ",".join(ACTIONS) + "}")
    for action in ACTIONS:
        module = _module(action)
        first = module.__doc__.strip().splitlines()[0]
        module.add_arguments(sub.add_parser(action, help=first, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))


def run(args: argparse.Namespace) -> int:
    return _module(args.action).run(args)
