"""Subject loading: a valid folder round-trips; every broken field fails naming file and field."""

import copy
import json

import imageio.v3 as iio
import numpy as np
import pytest

from eavatar.data.subject import SubjectError, load_subject, write_transforms

LABELS = ["jaw_open", "smile", "blink"]


def pose(yaw: float = 0.0, t=(0.0, 0.0, 0.0)) -> list:
    c, s = np.cos(yaw), np.sin(yaw)
    m = np.eye(4)
    m[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    m[:3, 3] = t
    return m.tolist()


def tiny_transforms() -> dict:
    frames = []
    for seq in ("a", "b"):
        for t in range(2):
            for cam in range(2):
                stem = f"{seq}_{t}_{cam}"
                frames.append(
                    {
                        "file_path": f"images/{stem}.png",
                        "fg_mask_path": f"masks/{stem}.png",
                        "transform_matrix": pose(0.3 * cam, (0.0, 0.0, 1.0)),
                        "timestep_index": t,
                        "camera_index": cam,
                        "sequence": seq,
                        "expression": [0.1 * t, 0.2, 0.0],
                        "head_pose": pose(0.05 * t),
                    }
                )
    return {
        "format_version": 1,
        "subject": "tiny",
        "fl_x": 10.0, "fl_y": 10.0, "cx": 4.0, "cy": 4.0, "w": 8, "h": 8,
        "expression_space": {"name": "synthetic", "labels": LABELS},
        "splits": {"train": {"sequences": ["a"]}, "test": {"sequences": ["b"]}},
        "frames": frames,
    }  # fmt: skip


@pytest.fixture
def subject_dir(tmp_path):
    meta = tiny_transforms()
    for fr in meta["frames"]:
        for key in ("file_path", "fg_mask_path"):
            p = tmp_path / fr[key]
            p.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(p, np.full((8, 8, 3) if key == "file_path" else (8, 8), 200, np.uint8))
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    return tmp_path


def rewrite(folder, edit) -> None:
    meta = json.loads((folder / "transforms.json").read_text())
    edit(meta)
    (folder / "transforms.json").write_text(json.dumps(meta))


def test_valid_subject_loads(subject_dir):
    s = load_subject(subject_dir)
    assert s.num_frames == 8 and s.d_exp == 3 and s.expression_labels == LABELS
    assert s.sequence_names() == ["a", "b"] and s.camera_ids() == [0, 1]
    np.testing.assert_array_equal(s.split("train"), [0, 1, 2, 3])
    np.testing.assert_array_equal(s.split("test"), [4, 5, 6, 7])
    np.testing.assert_array_equal(s.frames_of_sequence("b", camera=1), [5, 7])
    assert s.intrinsics.shape == (8, 4) and s.image_sizes[0].tolist() == [8, 8]
    assert s.head_poses.dtype == np.float32 and s.expressions[2].tolist() == pytest.approx([0.1, 0.2, 0.0])
    assert s.mask_paths[0].is_file() and s.mesh_paths[0] is None
    assert load_subject(subject_dir / "transforms.json").num_frames == 8


def test_frame_intrinsics_override_the_global_ones(subject_dir):
    rewrite(subject_dir, lambda m: m["frames"][3].update(fl_x=20.0, w=8))
    s = load_subject(subject_dir)
    assert s.intrinsics[3, 0] == 20.0 and s.intrinsics[2, 0] == 10.0


def test_split_selectors_combine(subject_dir):
    rewrite(subject_dir, lambda m: m.update(splits={"train": {"cameras": [0]}, "test": {"cameras": [1], "sequences": ["b"]}}))
    s = load_subject(subject_dir)
    np.testing.assert_array_equal(s.split("test"), [5, 7])
    with pytest.raises(SubjectError, match="splits.val: no such split"):
        s.split("val")


def _set(path, value):
    def edit(meta):
        obj = meta
        for k in path[:-1]:
            obj = obj[k]
        if value is KeyError:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value

    return edit


BROKEN = [
    (_set(["frames", 2, "expression"], [0.1, 0.2]), r"frames\[2\]\.expression: expected 3 values"),
    (_set(["frames", 1, "expression"], [0.1, float("nan"), 0.0]), r"frames\[1\]\.expression\[1\]: not finite"),
    (_set(["frames", 4, "head_pose"], (np.diag([1.2, 1.0, 1.0, 1.0])).tolist()), r"frames\[4\]\.head_pose: rotation is not proper rigid"),
    (_set(["frames", 4, "head_pose"], (np.diag([-1.0, 1.0, 1.0, 1.0])).tolist()), r"frames\[4\]\.head_pose: rotation is not proper rigid"),
    (_set(["frames", 0, "transform_matrix"], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), r"frames\[0\]\.transform_matrix: expected a 4x4"),
    (_set(["frames", 5, "sequence"], KeyError), r"frames\[5\]\.sequence: missing"),
    (_set(["frames", 5, "timestep_index"], 1.5), r"frames\[5\]\.timestep_index: expected an integer"),
    (_set(["frames", 7, "timestep_index"], 0), r"frames\[7\]: duplicates frames\[5\]"),
    (_set(["fl_x"], KeyError), r"frames\[0\]\.fl_x: missing"),
    (_set(["format_version"], 2), r"format_version: expected 1"),
    (_set(["expression_space"], {"name": "x"}), r"expression_space: expected"),
    (_set(["splits", "test"], KeyError), r"splits\.test: missing"),
    (_set(["splits", "test"], {"sequences": ["c"]}), r"splits\.test\.sequences: unknown sequence 'c'"),
    (_set(["splits", "test"], {"cameras": [0], "sequences": ["a"]}), r"splits: train and test share"),
    (_set(["splits", "test"], {"frames": [99]}), r"splits\.test\.frames: frame index 99 out of range"),
    (_set(["splits", "test"], {"people": ["x"]}), r"splits\.test\.people: unknown selector"),
    (_set(["splits", "test"], {"cameras": [5]}), r"splits\.test\.cameras: unknown camera_index 5"),
    (_set(["splits", "test"], {"sequences": ["b"], "frames": [0]}), r"splits\.test: selects no frames"),
    (_set(["splits", "train"], KeyError), r"splits\.train: missing"),
    (_set(["frames", 3, "file_path"], KeyError), r"frames\[3\]\.file_path: missing"),
    (_set(["frames", 3, "transform_matrix"], KeyError), r"frames\[3\]\.transform_matrix: missing"),
    (_set(["frames", 3, "expression"], KeyError), r"frames\[3\]\.expression: missing"),
    (_set(["frames", 3, "head_pose"], KeyError), r"frames\[3\]\.head_pose: missing"),
    (_set(["frames", 3, "camera_index"], KeyError), r"frames\[3\]\.camera_index: missing"),
    (_set(["frames", 3, "timestep_index"], KeyError), r"frames\[3\]\.timestep_index: missing"),
    (_set(["frames", 2, "transform_matrix", 3], [0.0, 0.0, 1.0, 1.0]), r"frames\[2\]\.transform_matrix: last row must be \[0, 0, 0, 1\]"),
    (_set(["frames", 2, "transform_matrix", 0], [1.0, 0.5, 0.0, 0.0]), r"frames\[2\]\.transform_matrix: rotation is not proper rigid"),
    (_set(["frames", 2, "transform_matrix", 0, 3], float("inf")), r"frames\[2\]\.transform_matrix\[0\]\[3\]: not finite"),
    (_set(["frames", 6, "head_pose", 1, 3], float("nan")), r"frames\[6\]\.head_pose\[1\]\[3\]: not finite"),
    (_set(["cx"], float("nan")), r"transforms\.json: cx: not finite"),
    (_set(["frames", 6, "fl_y"], float("-inf")), r"frames\[6\]\.fl_y: not finite"),
    (_set(["frames", 1, "valid_box"], [0, 0, 10]), r"frames\[1\]\.valid_box: expected \[x0, y0, x1, y1\]"),
    (_set(["frames", 1, "valid_box"], [0, 0, 1.5, 4]), r"frames\[1\]\.valid_box: expected \[x0, y0, x1, y1\]"),
    (_set(["frames", 1, "valid_box"], [4, 0, 4, 8]), r"frames\[1\]\.valid_box: .* not a non-empty box"),
    (_set(["frames", 1, "valid_box"], [0, 0, 9999, 8]), r"frames\[1\]\.valid_box: .* not a non-empty box"),
]


@pytest.mark.parametrize("edit, message", BROKEN)
def test_broken_fields_are_named(subject_dir, edit, message):
    rewrite(subject_dir, edit)
    with pytest.raises(SubjectError, match=message) as e:
        load_subject(subject_dir)
    assert "transforms.json" in str(e.value)


def test_missing_frame_file_is_named(subject_dir):
    (subject_dir / "images" / "b_1_0.png").unlink()
    with pytest.raises(SubjectError, match=r"frames\[6\]\.file_path: file not found: .*b_1_0\.png"):
        load_subject(subject_dir)
    assert load_subject(subject_dir, check_files=False).num_frames == 8


def test_broken_json_names_the_position(subject_dir):
    (subject_dir / "transforms.json").write_text('{"format_version": 1,\n  "frames": [ }')
    with pytest.raises(SubjectError, match=r"transforms\.json: broken JSON at line 2"):
        load_subject(subject_dir)


def test_missing_folder(tmp_path):
    with pytest.raises(SubjectError, match="no such file"):
        load_subject(tmp_path / "nowhere")


def test_write_transforms_is_validated_and_round_trips(tmp_path):
    meta = tiny_transforms()
    path = write_transforms(tmp_path / "s", meta)
    assert json.loads(path.read_text()) == meta
    bad = copy.deepcopy(meta)
    bad["frames"][0]["expression"] = [1.0]
    with pytest.raises(SubjectError, match=r"frames\[0\]\.expression"):
        write_transforms(tmp_path / "t", bad)


@pytest.mark.parametrize("key, folder", [("fg_mask_path", "masks"), ("region_path", "regions"), ("mesh_path", "meshes")])
def test_missing_optional_frame_file_is_named(subject_dir, key, folder):
    rewrite(subject_dir, lambda m: (m["frames"][5].update({key: f"{folder}/gone.png"}), m.update(region_labels={"mouth": 2})))
    with pytest.raises(SubjectError, match=rf"transforms\.json: frames\[5\]\.{key}: file not found: .*gone\.png"):
        load_subject(subject_dir)
    s = load_subject(subject_dir, check_files=False)
    assert getattr(s, {"fg_mask_path": "mask_paths", "region_path": "region_paths", "mesh_path": "mesh_paths"}[key])[5].name == "gone.png"


def test_region_and_template_paths_load(subject_dir):
    (subject_dir / "regions").mkdir()
    iio.imwrite(subject_dir / "regions" / "a_0_0.png", np.zeros((8, 8), np.uint8))
    (subject_dir / "template.ply").write_text("ply\n")
    rewrite(subject_dir, lambda m: (m["frames"][0].update(region_path="regions/a_0_0.png"), m.update(template_mesh="template.ply", region_labels={"skin": 1, "mouth": 2})))
    s = load_subject(subject_dir)
    assert s.region_paths[0] == subject_dir / "regions" / "a_0_0.png" and s.region_paths[1] is None
    assert s.region_labels == {"skin": 1, "mouth": 2}
    assert s.template_mesh == subject_dir / "template.ply"
    (subject_dir / "template.ply").unlink()
    with pytest.raises(SubjectError, match=r"transforms\.json: template_mesh: file not found"):
        load_subject(subject_dir)


@pytest.mark.parametrize("labels, field", [(None, "region_labels"), ({"mouth": "two"}, "region_labels.mouth"), ([2], "region_labels")])
def test_region_maps_need_named_integer_labels(subject_dir, labels, field):
    (subject_dir / "regions").mkdir()
    iio.imwrite(subject_dir / "regions" / "a_0_0.png", np.zeros((8, 8), np.uint8))

    def edit(m):
        m["frames"][0]["region_path"] = "regions/a_0_0.png"
        if labels is not None:
            m["region_labels"] = labels

    rewrite(subject_dir, edit)
    with pytest.raises(SubjectError, match=rf"transforms\.json: {field}:"):
        load_subject(subject_dir)


def test_optional_val_split(subject_dir):
    splits = {"train": {"sequences": ["a"]}, "val": {"sequences": ["b"], "cameras": [0]}, "test": {"sequences": ["b"], "cameras": [1]}}
    rewrite(subject_dir, lambda m: m.update(splits=splits))
    s = load_subject(subject_dir)
    np.testing.assert_array_equal(s.split("val"), [4, 6])
    assert s.split("test").dtype == np.int64
    np.testing.assert_array_equal(s.frames_of_sequence("a"), [0, 1, 2, 3])


def test_write_transforms_leaves_no_temp_file_on_failure(tmp_path):
    meta = tiny_transforms()
    meta["subject"] = object()  # not JSON-serialisable
    with pytest.raises(TypeError):
        write_transforms(tmp_path, meta)
    assert list(tmp_path.iterdir()) == []
