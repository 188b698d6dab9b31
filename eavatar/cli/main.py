"""``eavatar``: one command, one subcommand per pipeline stage."""

from __future__ import annotations

import argparse
import sys

from eavatar.cli import ablation, evaluate, export, geometry, prepare, prior, render, synthetic, train
from eavatar.cli import import_

STAGES = {"synthetic": synthetic, "prepare": prepare, "train": train, "evaluate": evaluate, "render": render, "export": export, "ablation": ablation, "prior": prior, "geometry": geometry}
STAGES["import"] = import_  # `eavatar import` (module import_: `import` is a keyword)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eavatar", description="EAvatar pipeline stages (see README and dvc.yaml).")
    sub = parser.add_subparsers(dest="stage", required=True)
    for name, module in STAGES.items():
        p = sub.add_parser(name, help=module.__doc__.strip().splitlines()[0], description=module.__doc__)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return STAGES[args.stage].run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
