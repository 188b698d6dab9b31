"""A frame's camera, controls and ground truth: one convention for training, evaluation and notebooks."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from eavatar.data.frames import frame_camera, frame_controls, ground_truth, load_ground_truth, read_mask
from eavatar.data.subject import load_subject
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject

CYAN = np.array([0, 200, 220], np.uint8)


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    cfg = SyntheticConfig(resolution=32, n_cameras=2, n_train_sequences=1, n_test_sequences=1, timesteps_per_sequence=2, mesh_subdivisions=3)
    return load_subject(generate_synthetic_subject(tmp_path_factory.mktemp("frames") / "s", cfg))


def test_images_that_keep_their_background_give_the_white_composited_truth(subject, tmp_path):
    """The importers link images in place, backgrounds and all: the fg mask removes them."""
    white = [torch.as_tensor(iio.imread(p), dtype=torch.float32) / 255 for p in subject.image_paths]
    for path in subject.image_paths:  # the same subject photographed in front of a cyan wall
        image, mask = iio.imread(path), iio.imread(str(path).replace("/images/", "/masks/"))
        iio.imwrite(path, np.where(mask[..., None] > 0, image, CYAN))
    for i, expected in enumerate(white):
        truth = load_ground_truth(subject, i, torch.ones(3))
        torch.testing.assert_close(truth, expected)
        assert (torch.as_tensor(iio.imread(subject.image_paths[i])) == torch.as_tensor(CYAN)).all(-1).any()  # there was a wall
    black = load_ground_truth(subject, 0, torch.zeros(3))
    assert black[0, 0].tolist() == [0.0, 0.0, 0.0]  # another background is another target


def test_nerfstudio_batch_mask_gives_the_same_truth(subject):
    """What the model gets: a uint8 image and nerfstudio's bool [H, W, 1] mask, on the model's device."""
    image = torch.as_tensor(iio.imread(subject.image_paths[0]))
    mask = read_mask(subject.mask_paths[0])
    assert mask.dtype == torch.bool and mask.shape == (*image.shape[:2], 1)
    background = torch.ones(3)
    torch.testing.assert_close(ground_truth(image, mask, background), load_ground_truth(subject, 0, background))


def test_scale_comes_from_the_dtype_not_the_values():
    g = torch.Generator().manual_seed(0)
    dark = torch.randint(0, 40, (6, 5, 3), generator=g, dtype=torch.uint8)  # max <= 39: still 0..255 levels
    as_float = dark.float() / 255  # the same picture as floats, max < 1
    torch.testing.assert_close(ground_truth(dark), as_float)
    torch.testing.assert_close(ground_truth(as_float), as_float)  # a dark float image is not divided again
    torch.testing.assert_close(ground_truth(dark.numpy()), as_float)
    ones = torch.ones(2, 2, 3, dtype=torch.uint8)  # the old check `max > 1` left this at 1.0
    torch.testing.assert_close(ground_truth(ones), torch.full((2, 2, 3), 1 / 255))


def test_alpha_and_mask_composite_over_the_background():
    rgba = torch.tensor([[[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.5]]])  # [1, 2, 4]
    bg = torch.tensor([0.0, 0.0, 1.0])
    torch.testing.assert_close(ground_truth(rgba, None, bg), torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]]]))
    mask = torch.tensor([[0, 255]], dtype=torch.uint8)  # [H, W] uint8: 0 keeps nothing of the first pixel
    torch.testing.assert_close(ground_truth(rgba, mask, bg), torch.tensor([[[0.0, 0.0, 1.0], [0.5, 0.0, 0.5]]]))
    gray = ground_truth(np.array([[0, 255]], np.uint8))
    assert gray.shape == (1, 2, 3) and gray[0, 1].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="mask is"):
        ground_truth(rgba, torch.ones(3, 3, dtype=torch.bool))


def test_frame_camera_and_controls_are_the_subjects(subject):
    cam = frame_camera(subject, 1)
    fx, fy, cx, cy = subject.intrinsics[1]
    assert (cam.width, cam.height) == tuple(int(v) for v in subject.image_sizes[1])
    torch.testing.assert_close(cam.K, torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32))
    torch.testing.assert_close(cam.camera_center, torch.as_tensor(subject.c2w[1, :3, 3], dtype=torch.float32))
    expression, head_pose = frame_controls(subject, 1)
    assert expression.shape == (subject.d_exp,) and head_pose.shape == (4, 4)
    torch.testing.assert_close(head_pose, torch.as_tensor(subject.head_poses[1]))
