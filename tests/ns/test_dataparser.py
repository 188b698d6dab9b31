"""The dataparser hands nerfstudio the subject's cameras with expression, pose and frame index."""

import pytest
import torch

from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
from eavatar.ns.dataparser import EAvatarDataParserConfig

TINY = dict(resolution=24, n_cameras=2, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=2, mesh_subdivisions=3)


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    return generate_synthetic_subject(tmp_path_factory.mktemp("dp") / "s", SyntheticConfig(**TINY))


def test_train_and_test_splits_carry_per_frame_controls(subject_dir):
    parser = EAvatarDataParserConfig(data=subject_dir).setup()
    train = parser.get_dataparser_outputs("train")
    test = parser.get_dataparser_outputs("test")
    assert len(train.image_filenames) == 2 * 2 * 2 and len(test.image_filenames) == 1 * 2 * 2
    meta = train.cameras.metadata
    assert meta["expression"].shape == (8, 6) and meta["head_pose"].shape == (8, 16) and meta["frame_index"].shape == (8, 1)
    subject = train.metadata["subject"]
    i = int(test.cameras.metadata["frame_index"][3])
    torch.testing.assert_close(test.cameras.metadata["expression"][3], torch.as_tensor(subject.expressions[i]))
    torch.testing.assert_close(test.cameras.camera_to_worlds[3], torch.as_tensor(subject.c2w[i, :3, :4], dtype=torch.float32))
    assert train.mask_filenames is not None
    # nerfstudio's 'val' maps to the subject's test split when there is no 'val'
    assert parser.get_dataparser_outputs("val").image_filenames == test.image_filenames


def test_a_broken_subject_fails_with_the_file_named(tmp_path):
    (tmp_path / "transforms.json").write_text("{")
    with pytest.raises(ValueError, match="transforms.json: broken JSON"):
        EAvatarDataParserConfig(data=tmp_path).setup().get_dataparser_outputs("train")


def test_the_dataset_hands_each_frame_its_region_map(subject_dir):
    """The loss's region weights need the frame's own region map, not another frame's."""
    from eavatar.data.frames import load_region_map
    from eavatar.ns.datamanager import EAvatarDataset

    outputs = EAvatarDataParserConfig(data=subject_dir).setup().get_dataparser_outputs("train")
    dataset = EAvatarDataset(outputs)
    subject = outputs.metadata["subject"]
    for idx in (0, len(dataset) - 1):
        data = dataset.get_data(idx, image_type="uint8")
        frame = int(outputs.cameras.metadata["frame_index"][idx])
        assert torch.equal(data["regions"], load_region_map(subject.region_paths[frame]))
        assert data["regions"].shape == data["image"].shape[:2]
