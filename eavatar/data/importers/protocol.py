"""Evaluation protocols written as splits: which sequences and cameras a subject trains and tests on.

EAvatar measures self-reenactment on a held-out sequence (NeRSemble's FREE) seen from every
camera, and novel view on the training sequences seen from 8 cameras it never trained on
(the training sequences, as GaussianAvatars' novel-view split does). A protocol the source
cannot honour is refused unless the caller allows the format's fallback; what was done is
recorded in transforms.json (`source.protocol`, `source.warnings`) and printed by
`eavatar import`, so a number measured on a fallback split cannot pass for the protocol.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from eavatar.data.importers.common import ImportOptions, SourceError, fail

PROTOCOLS = ("self-reenactment", "novel-view", "time")

#: NeRSemble's 16 camera serials in the key order of its camera_params.json (VHAP's camera_index
#: follows it), and NeRSemble's own training-camera order: trained on n cameras, NeRSemble
#: uses the first n (tobias-kirschstein/nersemble src/nersemble/constants.py:1-5,
#: src/nersemble/nerfstudio/dataparser/nersemble_dataparser.py:165-166).
NERSEMBLE_SERIALS = ("222200042", "222200044", "222200046", "222200040", "222200036", "222200048", "220700191", "222200041",
                     "222200037", "222200038", "222200047", "222200043", "222200049", "222200039", "222200045", "221501007")  # fmt: skip
NERSEMBLE_TRAIN_ORDER = (8, 7, 9, 4, 10, 5, 13, 2, 12, 1, 14, 0, 3, 6, 11, 15)

#: The 8 train / 8 test preset of the novel-view protocol. The EAvatar paper names no
#: serials; these are NeRSemble's first 8 training cameras (the central ones, frontal
#: 222200037 first) and the other 8 (docs/importers.md, "Cameras by serial").
NERSEMBLE_8_8 = (
    tuple(sorted(NERSEMBLE_SERIALS[i] for i in NERSEMBLE_TRAIN_ORDER[:8])),
    tuple(sorted(NERSEMBLE_SERIALS[i] for i in NERSEMBLE_TRAIN_ORDER[8:])),
)


def make_splits(frames: list[dict], opts: ImportOptions, where: str, held_default: tuple[str, ...] = (), fallback: tuple[str, ...] = (), hint: str = "") -> tuple[dict, dict, list[str]]:
    """(splits, record for source.protocol, warnings) of the protocol `opts` asks for.

    `held_default`: what the format holds out when nothing is named (FREE for NeRSemble);
    `fallback`: what --fallback holds out when that is absent (empty: the time split);
    `hint`: why the source lacks it and how to get it, for the refusal.
    """
    names = list(dict.fromkeys(f["sequence"] for f in frames))
    for s in opts.test_sequences:
        if s not in names:
            raise fail(where, "test_sequences", f"no sequence {s!r} (have {names})")
    wanted = list(opts.test_sequences) or list(held_default)
    name = opts.protocol or ("self-reenactment" if wanted else "time")
    if name not in PROTOCOLS:
        raise fail(where, "protocol", f"unknown {name!r} (have {', '.join(PROTOCOLS)})")
    if name != "novel-view" and (opts.train_cameras or opts.test_cameras):
        raise fail(where, "train_cameras" if opts.train_cameras else "test_cameras", "only --protocol novel-view splits cameras")
    if name == "time" and opts.test_sequences:
        raise fail(where, "test_sequences", "the time protocol holds out no sequence; use --protocol self-reenactment")
    held, warnings = [s for s in wanted if s in names], []
    if name == "self-reenactment" and (not wanted or len(held) < len(wanted)):
        held, name, warning = _fall_back(names, wanted, opts, where, fallback, hint)
        warnings.append(warning)
    if held and len(held) == len(names):
        raise fail(where, "test_sequences", f"every sequence {names} is held out; nothing is left to train on")
    train = [s for s in names if s not in held]
    record: dict = {"name": name, "held_out": held} | ({"fallback": True} if warnings else {})
    if name == "self-reenactment":
        splits = {"train": {"sequences": train}, "test": {"sequences": held}}
    elif name == "novel-view":
        train_cams, test_cams = camera_split(frames, opts, where)
        index = {str(f["camera_id"]): f["camera_index"] for f in frames}
        splits = {"train": {"sequences": train, "cameras": sorted(index[c] for c in train_cams)}, "test": {"sequences": train, "cameras": sorted(index[c] for c in test_cams)}}
        record.update(train_cameras=train_cams, test_cameras=test_cams)
    else:
        splits, record["test_fraction"] = time_splits(frames, opts.test_fraction), opts.test_fraction
    return splits, record, warnings


def _fall_back(names: list[str], wanted: list[str], opts: ImportOptions, where: str, fallback: tuple[str, ...], hint: str) -> tuple[list[str], str, str]:
    """(held-out sequences, protocol, warning) instead of self-reenactment on `wanted`; a refusal without opts.fallback."""
    missing = [s for s in wanted if s not in names]
    problem = f"self-reenactment holds out {missing}, absent from the sequences {names}" if missing else f"self-reenactment needs a held-out sequence: name one of {names} with --test-sequence"
    instead = f"hold out {list(fallback)}" if fallback else f"test on the last {opts.test_fraction:g} of each sequence's timesteps (time protocol)"
    if not opts.fallback:
        raise fail(where, "test_sequences", f"{problem}{'; ' + hint if hint else ''}. Pass --fallback to {instead} instead")
    return list(fallback), "self-reenactment" if fallback else "time", f"{problem}: fell back to {instead}; this is not EAvatar's self-reenactment protocol"


def camera_split(frames: list[dict], opts: ImportOptions, where: str) -> tuple[list[str], list[str]]:
    """(train, test) camera serials: those named (one list given: the other cameras), else the NeRSemble 8/8 preset."""
    if any(f.get("camera_id") is None for f in frames):
        raise fail(where, "camera_id", "novel-view chooses cameras by serial, and this source names none (one camera?)")
    have = sorted({str(f["camera_id"]) for f in frames})
    train, test = list(opts.train_cameras), list(opts.test_cameras)
    if not train and not test:
        train, test = map(list, NERSEMBLE_8_8)
        missing = sorted(set(train + test) - set(have))
        if missing:
            raise fail(where, "train_cameras", f"the NeRSemble 8/8 preset needs cameras {missing}, which this source lacks (have {have}); name them with --train-cameras and --test-cameras")
    for field_name, chosen in (("train_cameras", train), ("test_cameras", test)):
        unknown = sorted(set(chosen) - set(have))
        if unknown:
            raise fail(where, field_name, f"unknown camera serial {unknown} (have {have})")
    train = train or [c for c in have if c not in test]
    test = test or [c for c in have if c not in train]
    if set(train) & set(test) or not train or not test:
        raise fail(where, "test_cameras", f"train {train} and test {test} must be non-empty and disjoint")
    return sorted(train), sorted(test)


def time_splits(frames: list[dict], test_fraction: float) -> dict:
    """Last ceil(fraction * T) timesteps of each sequence are test, the rest train (monocular protocol)."""
    if not 0.0 < test_fraction < 1.0:
        raise SourceError(f"test_fraction: expected a value in (0, 1), got {test_fraction}")
    cut: dict[str, int] = {}
    for seq in dict.fromkeys(f["sequence"] for f in frames):
        steps = sorted({f["timestep_index"] for f in frames if f["sequence"] == seq})
        n_test = min(len(steps) - 1, math.ceil(test_fraction * len(steps)))
        if n_test < 1:
            raise SourceError(f"sequence {seq!r}: {len(steps)} timestep(s) cannot be split into train and test")
        cut[seq] = steps[len(steps) - n_test]
    test = [i for i, f in enumerate(frames) if f["timestep_index"] >= cut[f["sequence"]]]
    train = [i for i, f in enumerate(frames) if f["timestep_index"] < cut[f["sequence"]]]
    return {"train": {"frames": train}, "test": {"frames": test}}


def split_report(subject_path: Path) -> list[str]:
    """What `eavatar import` prints: the protocol, then per split its frames, sequences and camera serials."""
    from eavatar.data.subject import load_subject

    subject = load_subject(subject_path, check_files=False)
    doc = json.loads(subject.transforms_path.read_text())
    record = doc.get("source", {}).get("protocol", {})
    held = f", held out {', '.join(record['held_out'])}" if record.get("held_out") else ""
    last = f", test: the last {record['test_fraction']:g} of each sequence" if "test_fraction" in record else ""
    fallback = " (a fallback, not EAvatar's protocol)" if record.get("fallback") else ""
    lines = [f"protocol: {record.get('name', '?')}{held}{last}{fallback}"]
    cameras = [str(f["camera_index"] if f.get("camera_id") is None else f["camera_id"]) for f in doc["frames"]]  # serials where named
    for name in subject.splits:
        idx = subject.split(name)
        seqs = list(dict.fromkeys(subject.sequences[i] for i in idx))
        cams = sorted({cameras[i] for i in idx})
        lines.append(f"  {name}: {len(idx)} frames; {len(seqs)} sequence(s) {', '.join(seqs)}; {len(cams)} camera(s) {', '.join(cams)}")
    return lines
