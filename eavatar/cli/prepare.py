"""Turn a monocular video into a subject folder (MediaPipe tracking, crop, masks; params.yaml `prepare`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eavatar.config import apply_overrides, load_params


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: prepare)")
    p.add_argument("--video", type=Path, required=True, help="video file with one face (video/dvc.yaml: each of params.yaml `videos`)")
    p.add_argument("--out", type=Path, default=Path("data/video"), help="subject folder to write")
    p.add_argument("--metrics", type=Path, help="JSON file for the timing (seconds, frames per second), kept out of the subject folder")


def run(args: argparse.Namespace) -> int:
    from eavatar.data.face_tracker import FaceModelMissing
    from eavatar.data.video import VideoConfig, VideoError, prepare_video

    cfg = apply_overrides(VideoConfig(), load_params(args.params, "prepare"), f"{args.params}:prepare")
    try:
        report = prepare_video(args.video, args.out, cfg)
    except (VideoError, FaceModelMissing) as err:
        raise SystemExit(str(err)) from None
    if report["dropped_no_face"]:
        print(f"warning: {len(report['dropped_no_face'])} frames had no face and were dropped: {report['dropped_no_face'][:20]}")
    if report["dropped_bad_mask"]:
        print(f"warning: {len(report['dropped_bad_mask'])} frames had a broken mask (area off its running median) and were dropped: {report['dropped_bad_mask'][:20]}")
    print(json.dumps(report, indent=1))
    if args.metrics:
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        args.metrics.write_text(json.dumps({k: report[k] for k in ("frames_read", "frames_kept", "seconds", "frames_per_second")}, indent=1) + "\n")
    print(f"subject written to {args.out} ({report['frames_kept']} frames, {report['frames_per_second']:.1f} frames/s)")
    return 0
