"""Turn a monocular video into a subject folder (MediaPipe tracking, crop, masks; params.yaml `prepare`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eavatar.config import apply_overrides, load_params


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: prepare)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--video", type=Path, help="video file with one face (video/dvc.yaml: each of params.yaml `videos`)")
    which.add_argument("--check-clip", metavar="NAME", help="only check that params.yaml `videos.NAME` is a video file and write {clip, video} to --out (video/dvc.yaml's clip stage, so a wrong entry is named before DVC looks for the file)")
    p.add_argument("--out", type=Path, default=Path("data/video"), help="subject folder to write")
    p.add_argument("--metrics", type=Path, help="JSON file for the timing (seconds, frames per second), kept out of the subject folder")


def run(args: argparse.Namespace) -> int:
    from eavatar.data.face_tracker import FaceModelMissing
    from eavatar.data.segmenter import SegmenterMissing
    from eavatar.data.video import VideoConfig, VideoError, prepare_video

    if args.check_clip:
        return check_clip(args.params, args.check_clip, args.out)
    cfg = apply_overrides(VideoConfig(), load_params(args.params, "prepare"), f"{args.params}:prepare")
    try:
        report = prepare_video(args.video, args.out, cfg)
    except (VideoError, FaceModelMissing, SegmenterMissing) as err:
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


def check_clip(params: Path, name: str, out: Path) -> int:
    """``params.yaml: videos.<name>`` names an existing file: DVC's own error for a missing dep names
    neither the params file nor the key, so the clip stage upstream of prepare says it first."""
    clips = load_params(params, "videos")
    video = clips.get(name)
    if not isinstance(video, str) or not Path(video).is_file():
        found = "no such entry" if video is None else f"{video}: no such video file"
        raise SystemExit(f"{params}: videos.{name}: {found} (each entry of `videos` is a name and the path of a clip, relative to the project)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"clip": name, "video": video}, indent=1) + "\n")
    print(f"{params}: videos.{name}: {video}")
    return 0
