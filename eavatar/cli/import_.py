"""Import a published dataset layout (VHAP/GaussianAvatars NeRSemble, GHA NeRSemble, INSTA, IMavatar) as a subject folder.

Images are linked in place (relative symlinks) unless --copy; the output is written to a
temporary sibling, validated, then renamed, so a failed import leaves nothing behind. The
splits follow an evaluation protocol; the split made (sequences and camera serials) is
printed, and a protocol the source cannot honour is refused unless --fallback.
Layouts, fields read, protocols and the exact commands: docs/importers.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


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
    from eavatar.data.importers.protocol import PROTOCOLS

    p.add_argument("src", type=Path, nargs="+", help="source folder in the published layout (vhap: the union export and the FREE export of one subject)")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="source layout")
    p.add_argument("--out", type=Path, required=True, help="subject folder to write")
    p.add_argument("--subject", help="subject name (default: the first source folder's name)")
    p.add_argument("--copy", action="store_true", help="copy images instead of relative symlinks (portable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--protocol", choices=PROTOCOLS, help="splits: self-reenactment (held-out sequence; multi-view default), novel-view (8/8 cameras by serial), time (last fraction; monocular default)")
    p.add_argument("--fallback", action="store_true", help="where the held-out sequence is absent, fall back (printed, recorded) instead of refusing")
    p.add_argument("--test-sequence", action="append", default=[], help="sequence held out for test (repeatable; multi-view default FREE)")
    p.add_argument("--train-cameras", type=_names, default=(), help="novel-view: camera serials to train on, e.g. 222200037,222200038 (default: NeRSemble 8/8 preset)")
    p.add_argument("--test-cameras", type=_names, default=(), help="novel-view: camera serials to test on (default: the other cameras)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="time protocol: last fraction of each sequence is test")
    p.add_argument("--no-eyes", action="store_true", help="FLAME: leave eyes_pose out of the expression code")
    p.add_argument("--flame-model", type=Path, help="optional FLAME model (.npz or chumpy-free .pkl): exact head-pose pivots")
    p.add_argument("--sequence-ranges", type=_ranges, default=(), help="gha: NAME:FIRST-LAST,... frame-folder ranges naming sequences (taken on trust)")
    p.add_argument("--lowres", action="store_true", help="gha: use the 256 px *_lowres_* images and masks")
    p.add_argument("--original-resolution", type=int, default=2048, help="gha: image width the camera intrinsics refer to")


def run(args: argparse.Namespace) -> int:
    from eavatar.data.importers import ImportOptions, SourceError, import_subject
    from eavatar.data.importers.protocol import split_report
    from eavatar.data.subject import SubjectError

    opts = ImportOptions(
        subject=args.subject, copy=args.copy, overwrite=args.overwrite, protocol=args.protocol, fallback=args.fallback,
        test_sequences=tuple(args.test_sequence), train_cameras=args.train_cameras, test_cameras=args.test_cameras,
        test_fraction=args.test_fraction, eyes=not args.no_eyes, flame_model=args.flame_model,
        sequence_ranges=args.sequence_ranges, lowres=args.lowres, original_resolution=args.original_resolution,
    )  # fmt: skip
    try:
        path = import_subject(args.format, args.src, args.out, opts)
    except (SourceError, SubjectError) as e:
        print(f"eavatar import: {e}", file=sys.stderr)
        return 2
    print(f"subject written to {path}")
    print("\n".join(split_report(path)))
    for warning in json.loads((path / "transforms.json").read_text())["source"].get("warnings", []):
        print(f"eavatar import: WARNING: {warning}", file=sys.stderr)
    return 0
