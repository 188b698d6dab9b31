"""``eavatar``: one command, one subcommand per pipeline stage.

Expected errors (a bad subject, a missing file, an unreadable checkpoint, bad params: see
``eavatar.errors``, and a stage's ``raise SystemExit("<message>")``) print one line,
``eavatar <stage>: error: <file>: <what is wrong> (<fix>)``, on stderr and exit with status 2,
without a traceback; ``--debug`` (or ``EAVATAR_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import NoReturn

from eavatar.cli import ablation, evaluate, export, geometry, prepare, prior, render, synthetic, train
from eavatar.cli import import_, refine_export
from eavatar.errors import EAvatarError
from eavatar.quiet import silence_known_warnings

STAGES = {"synthetic": synthetic, "prepare": prepare, "train": train, "evaluate": evaluate, "render": render, "export": export, "ablation": ablation, "prior": prior, "geometry": geometry}
STAGES["import"] = import_  # `eavatar import` (module import_: `import` is a keyword)
STAGES["refine-export"] = refine_export

DEBUG_ENV = "EAVATAR_DEBUG"
#: Exit status of an expected error (argparse uses 2 for a bad command line, too).
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
#: Errors a user causes and can fix, printed as one line. Anything else is a bug: full traceback.
EXPECTED = (EAvatarError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eavatar", description="EAvatar pipeline stages (see README and dvc.yaml).")
    debug_help = f"show the full traceback of an error (also: {DEBUG_ENV}=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="stage", required=True)
    for name, module in STAGES.items():
        p = sub.add_parser(name, help=module.__doc__.strip().splitlines()[0], description=module.__doc__)
        module.add_arguments(p)
        # also after the stage name (`eavatar train --debug`); SUPPRESS keeps `eavatar --debug train`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def debug_requested(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def error_message(err: BaseException) -> str:
    """One line naming the file: an OSError's ``[Errno 2] ... 'path'`` becomes ``path: No such file or directory``."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror and not isinstance(err, EAvatarError):
        return f"{err.filename}: {err.strerror}"
    text = str(err).strip()
    return text or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one stage; its status (0) on success. An expected error prints one line on stderr and
    raises ``SystemExit`` with status ``EXIT_ERROR`` (as argparse does for a bad command line),
    the line being the exception's text for in-process callers."""
    silence_known_warnings()  # our output, not our dependencies' deprecation notices
    args = build_parser().parse_args(argv)
    prog = f"eavatar {args.stage}"
    try:
        return STAGES[args.stage].run(args) or 0
    except EXPECTED as err:
        if debug_requested(args):
            raise
        _exit(f"{prog}: error: {error_message(err)}", EXIT_ERROR)
    except SystemExit as err:  # `raise SystemExit("<file>: <field>: ...")`: the same line, prefix and status
        if not isinstance(err.code, str):
            raise
        if debug_requested(args):
            traceback.print_exc()
        _exit(f"{prog}: error: {err.code}", EXIT_ERROR)
    except KeyboardInterrupt:
        if debug_requested(args):
            raise
        _exit(f"{prog}: interrupted", EXIT_INTERRUPTED)


def _exit(line: str, status: int) -> NoReturn:
    """Print ``line`` on stderr and exit with ``status``: a SystemExit whose text is ``line`` (the
    interpreter prints nothing more for an integer status, and no traceback)."""
    print(line, file=sys.stderr)
    exit_ = SystemExit(line)
    exit_.code = status
    raise exit_ from None


if __name__ == "__main__":
    sys.exit(main())
