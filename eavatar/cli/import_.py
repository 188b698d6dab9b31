"""Import a published dataset layout (VHAP/GaussianAvatars NeRSemble, GHA NeRSemble, INSTA, IMavatar) as a subject folder.

Images are linked in place (relative symlinks) unless --copy; the output is written to a
temporary sibling, validated, then renamed, so a failed import leaves nothing behind.
Layouts, fields read and the mapping: docs/importers.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _ranges(text: str) -> tuple[tuple[str, int, int], ...]:
    """NAME:FIRST-LAST,NAME:FIRST-LAST -> ((name, first, last), ...)."""
    out = []
    for item in text.split(","):
        name, _, span = item.partition(":")
        first, _, last = span.partition("-")
        if not name or not first.isdigit() or not last.isdigit():
            raise argparse.ArgumentTypeError(f"expected NAME:FIRST-LAST, got {item!r}")
        out.append((name, int(first), int(last)))
    return tuple(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from eavatar.data.importers import FORMATS

    p.add_argument("src", type=Path, help="source folder in the published layout")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="source layout")
    p.add_argument("--out", type=Path, required=True, help="subject folder to write")
    p.add_argument("--subject", help="subject name (default: the source folder's name)")
    p.add_argument("--copy", action="store_true", help="copy images instead of relative symlinks (portable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--test-sequence", action="append", default=[], help="sequence held out for test (repeatable; multi-view default FREE)")
    p.add_argument("--train-cameras", type=_ints, default=(), help="camera_index list to train on, e.g. 0,1,2 (novel-view protocol)")
    p.add_argument("--test-cameras", type=_ints, default=(), help="camera_index list held out for novel view (split val)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="without held-out sequences: last fraction of each sequence is test")
    p.add_argument("--no-eyes", action="store_true", help="FLAME: leave eyes_pose out of the expression code")
    p.add_argument("--flame-model", type=Path, help="optional FLAME model (.npz or chumpy-free .pkl): exact head-pose pivots")
    p.add_argument("--sequence-ranges", type=_ranges, default=(), help="gha: NAME:FIRST-LAST,... frame-folder ranges naming sequences")
    p.add_argument("--lowres", action="store_true", help="gha: use the 256 px *_lowres_* images and masks")
    p.add_argument("--original-resolution", type=int, default=2048, help="gha: image width the camera intrinsics refer to")


def run(args: argparse.Namespace) -> int:
    from eavatar.data.importers import ImportOptions, SourceError, import_subject
    from eavatar.data.subject import SubjectError

    opts = ImportOptions(
        subject=args.subject, copy=args.copy, overwrite=args.overwrite, test_sequences=tuple(args.test_sequence),
        train_cameras=args.train_cameras, test_cameras=args.test_cameras, test_fraction=args.test_fraction,
        eyes=not args.no_eyes, flame_model=args.flame_model, sequence_ranges=args.sequence_ranges,
        lowres=args.lowres, original_resolution=args.original_resolution,
    )  # fmt: skip
    try:
        path = import_subject(args.format, args.src, args.out, opts)
    except (SourceError, SubjectError) as e:
        print(f"eavatar import: {e}", file=sys.stderr)
        return 2
    print(f"subject written to {path}")
    return 0
