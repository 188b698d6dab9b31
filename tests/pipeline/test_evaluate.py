"""The evaluate stage: every split but train, per-frame CSVs, region averages that skip absent
regions, the per-region geometry of subjects with meshes, and its params."""

import csv
import json
import math
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from eavatar.avatar.checkpoint import AvatarInfo, save_avatar
from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig, load_mesh
from eavatar.avatar.generator import GeneratorConfig
from eavatar.avatar.model import AvatarConfig, HeadAvatar
from eavatar.config import ConfigError
from eavatar.data.subject import load_subject
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
from eavatar.pipeline.evaluate import EvalOptions, average_rows, evaluate, evaluate_stage, metrics_document, write_csv

TINY = SyntheticConfig(resolution=48, n_cameras=2, n_heldout_cameras=1, n_train_sequences=1, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny synthetic subject and an untrained avatar seeded on its template."""
    root = tmp_path_factory.mktemp("evaluate")
    subject = load_subject(generate_synthetic_subject(root / "subject", TINY))
    cfg = AvatarConfig(init=GaussianInitConfig(num_points=600, feature_dim=8), generator=GeneratorConfig(hidden_dim=16, num_layers=2, pos_frequencies=2))
    avatar = HeadAvatar.from_canonical(CanonicalGaussians.from_mesh(load_mesh(subject.template_mesh), cfg.init), subject.d_exp, cfg)
    save_avatar(root / "avatar.pt", avatar, AvatarInfo(expression_labels=subject.expression_labels, expression_space=subject.expression_space))
    return root


def params(path, section):
    path.write_text(yaml.safe_dump({"evaluate": section}))
    return path


def test_every_split_but_train_with_the_headline_flat(workdir, tmp_path):
    out, metrics = tmp_path / "eval", tmp_path / "eval.json"
    document = evaluate_stage(params(tmp_path / "p.yaml", {"geometry_instants": 2}), workdir / "avatar.pt", workdir / "subject", out, metrics)
    assert json.loads(metrics.read_text()) == json.loads(json.dumps(document))
    splits = [s for s in load_subject(workdir / "subject").splits if s != "train"]
    assert set(document["splits"]) == set(splits) and {"test", "novel_view"} <= set(splits)
    assert document["headline"] == "test" and document["split"] == "test"
    assert document["psnr"] == document["splits"]["test"]["psnr"] > 5 and document["mouth_psnr"] == document["splits"]["test"]["mouth_psnr"]
    for split, summary in document["splits"].items():
        table = pd.read_csv(out / f"per_frame_{split}.csv")
        assert len(table) == summary["num_frames"] and {"frame", "sequence", "camera", "timestep", "psnr", "ssim", "lpips"} <= set(table.columns)
        for region in ("mouth", "eyes", "brows", "skin"):
            assert {f"{region}_psnr", f"{region}_ssim", f"{region}_lpips", f"{region}_pixels"} <= set(table.columns)
            assert summary[f"{region}_frames"] == table[f"{region}_psnr"].notna().sum()
        assert summary["lpips"] == pytest.approx(table["lpips"].mean())
        assert summary["contour_error_share"] == pytest.approx(table["sq_error_contour"].sum() / table["sq_error"].sum()) and 0 < summary["contour_error_share"] < 1
        assert "aed" not in summary and "retrack_unavailable" not in summary  # not an arkit52 subject
        assert "fitted_pose" not in summary  # fit_pose auto: several cameras see each head pose
        assert table["code_distance"].min() >= 0 and summary["code_distance_median"] == pytest.approx(table["code_distance"].median())
        # one training sequence of 3 instants, all within one window: no spread to call a range, said as None
        assert summary["in_range_threshold"] is None and summary["in_range_frames"] is None and summary["in_range"] is None
        if split == "novel_view":  # training expressions seen from another camera
            assert table["code_distance"].max() < 1e-6
        geometry = summary["geometry"]
        assert geometry["instants"] == 2 and geometry["whole"]["chamfer"] > 0 and geometry["whole"]["chamfer_rel"] < 1
        assert len(pd.read_csv(out / f"geometry_{split}.csv")) == 2
        assert sorted(p.name for p in out.glob(f"sample_{split}_*.png"))


def test_one_split_for_the_ablation(workdir, tmp_path):
    summary = evaluate(workdir / "avatar.pt", workdir / "subject", "test", tmp_path, EvalOptions(geometry_instants=0))
    assert summary["split"] == "test" and "geometry" not in summary and (tmp_path / "per_frame_test.csv").is_file()


def test_averages_skip_absent_regions_and_count_them():
    rows = [
        {"psnr": 30.0, "ssim": 0.9, "lpips": 0.1, "mouth_psnr": 20.0, "mouth_ssim": 0.5, "mouth_lpips": 0.2, "mouth_pixels": 40},
        {"psnr": 32.0, "ssim": 0.8, "lpips": None, "mouth_psnr": None, "mouth_ssim": None, "mouth_lpips": None, "mouth_pixels": 3},
    ]
    s = average_rows(rows)
    assert s["psnr"] == 31.0 and s["lpips"] is None  # never a partial LPIPS
    assert (s["mouth_psnr"], s["mouth_ssim"], s["mouth_lpips"], s["mouth_frames"]) == (20.0, 0.5, 0.2, 1)
    assert "eyes_psnr" not in s  # not a region of these frames at all
    s = average_rows(rows[1:])
    assert s["mouth_psnr"] is None and s["mouth_frames"] == 0


def test_csv_leaves_missing_values_empty(tmp_path):
    write_csv(tmp_path / "t.csv", [{"frame": 0, "mouth_psnr": None}, {"frame": 1, "mouth_psnr": 21.5, "aed": 0.1}])
    assert list(csv.reader((tmp_path / "t.csv").open())) == [["frame", "mouth_psnr", "aed"], ["0", "", ""], ["1", "21.5", "0.1"]]
    assert np.isnan(pd.read_csv(tmp_path / "t.csv")["mouth_psnr"][0])


def test_metrics_document_needs_its_headline():
    doc = metrics_document({"test": {"psnr": 30.0}, "novel_view": {"psnr": 25.0}}, "test")
    assert doc == {"headline": "test", "psnr": 30.0, "splits": {"test": {"psnr": 30.0}, "novel_view": {"psnr": 25.0}}}
    with pytest.raises(ConfigError, match="headline"):
        metrics_document({"novel_view": {}}, "test")


def test_params(tmp_path):
    p = tmp_path / "p.yaml"
    assert EvalOptions.from_params(params(p, {})) == EvalOptions()
    assert EvalOptions.from_params(params(p, {"split": "novel_view"})) == EvalOptions(splits=["novel_view"], headline="novel_view")
    assert EvalOptions.from_params(params(p, {"splits": ["test", "novel_view"], "retrack": False})).splits == ["test", "novel_view"]
    for bad, match in [({"spilts": "all"}, "evaluate.spilts: unknown key"), ({"splits": ["novel_view"]}, "evaluate.headline"),
                       ({"split": "test", "splits": "all"}, "not both"), ({"retrack": "yes"}, "evaluate.retrack"),
                       ({"geometry_instants": "many"}, "evaluate.geometry_instants: expected a number"),
                       ({"fit_pose": "sometimes"}, "evaluate.fit_pose: auto, true or false"),
                       ({"fit_pose_steps": "ten"}, "evaluate.fit_pose_steps: expected a number")]:  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            EvalOptions.from_params(params(p, bad))


def test_headline_split_must_exist(workdir, tmp_path):
    from eavatar.pipeline.evaluate import evaluate_splits

    with pytest.raises(ConfigError, match="no split 'held_out' to head the metrics.*evaluate.headline"):
        evaluate_splits(workdir / "avatar.pt", workdir / "subject", None, tmp_path, EvalOptions(headline="held_out"))


@pytest.fixture(scope="module")
def video_workdir(tmp_path_factory):
    """An arkit52 subject from a real clip excerpt (12 frames, 96 px; the last 2 are test) and an untrained avatar."""
    from eavatar.data.face_tracker import FaceModelMissing, find_face_landmarker
    from eavatar.data.video import VideoConfig, prepare_video
    from tests.shared_data import shared_path

    video = shared_path("data", "videos", "liveportrait_d10.mp4")
    try:
        find_face_landmarker()
    except FaceModelMissing:
        pytest.skip("MediaPipe face_landmarker.task not installed")
    root = tmp_path_factory.mktemp("video_eval")
    prepare_video(video, root / "subject", VideoConfig(resolution=96, every=10, max_frames=12, smoothing=1))
    subject = load_subject(root / "subject")
    cfg = AvatarConfig(init=GaussianInitConfig(num_points=400, feature_dim=8), generator=GeneratorConfig(hidden_dim=16, num_layers=2, pos_frequencies=2))
    avatar = HeadAvatar.from_canonical(CanonicalGaussians.from_mesh(load_mesh(subject.template_mesh), cfg.init), subject.d_exp, cfg)
    save_avatar(root / "avatar.pt", avatar, AvatarInfo(expression_labels=subject.expression_labels, expression_space=subject.expression_space))
    return root


def evaluate_video(root, out):
    document = evaluate_stage(params(out / "p.yaml", {}), root / "avatar.pt", root / "subject", out / "eval", out / "eval.json")
    return document, pd.read_csv(out / "eval" / "per_frame_test.csv")


def test_video_subject_is_retracked_and_failures_counted(video_workdir, tmp_path):
    """The untrained avatar's renders may have no face the tracker finds: counted, not dropped."""
    document, table = evaluate_video(video_workdir, tmp_path)
    assert list(document["splits"]) == ["test"] and "geometry" not in document
    assert {"aed", "akd", "mouth_akd", "aed_gt", "akd_gt", "retrack"} <= set(table.columns)
    status = table["retrack"].value_counts().to_dict()
    assert document["retrack_frames"] == status.get("ok", 0) == table["aed"].notna().sum()
    assert document["retrack_failed_render"] == status.get("render_failed", 0) + status.get("both_failed", 0)
    assert document["retrack_failed_gt"] == 0  # the real frames all have a face
    assert document["retrack_frames"] + document["retrack_failed_render"] == document["num_frames"] == 2
    assert {"code_distance", "in_range", "aed_neutral"} <= set(table.columns) and document["code_distance_max"] > 0


def test_render_equal_to_the_ground_truth_scores_perfectly(video_workdir, tmp_path, monkeypatch):
    """Through the whole stage: a render that is the ground truth is perfect on every metric."""
    import eavatar.avatar.drive as drive
    from eavatar.data.frames import load_ground_truth

    real = drive.render_subject_frame  # the neutral render stays the avatar's

    def ground_truth_render(avatar, subject, i, bg, expression=None):
        return SimpleNamespace(rgb=load_ground_truth(subject, i, bg)) if expression is None else real(avatar, subject, i, bg, expression)

    monkeypatch.setattr(drive, "render_subject_frame", ground_truth_render)
    document, table = evaluate_video(video_workdir, tmp_path)
    assert document["psnr"] == math.inf and document["ssim"] == pytest.approx(1.0) and document["lpips"] == pytest.approx(0.0, abs=1e-7)
    for region in ("mouth", "eyes", "skin"):
        assert document[f"{region}_psnr"] == math.inf and document[f"{region}_ssim"] == pytest.approx(1.0) and document[f"{region}_lpips"] == pytest.approx(0.0, abs=1e-7)
    assert document["retrack_frames"] == 2 and document["aed"] == document["akd"] == 0.0 and document["flicker"] == 0.0
    assert document["aed_gt"] > 0 and document["aed_rel"] == 0.0
    assert document["contour_error_share"] is None  # no error to share out


def test_only_the_valid_box_is_scored(video_workdir, tmp_path, monkeypatch):
    """A frame's valid_box (a source's padding left out): a render equal to the ground truth inside
    it and anything outside scores perfectly; without the box the same render does not."""
    import eavatar.avatar.drive as drive
    from eavatar.data.frames import load_ground_truth

    def garbage_outside(avatar, subject, i, bg, expression=None):
        rgb = load_ground_truth(subject, i, bg).clone()
        rgb[:, :4] = 1 - rgb[:, :4]  # the left 4 columns wrong
        return SimpleNamespace(rgb=rgb)

    monkeypatch.setattr(drive, "render_subject_frame", garbage_outside)
    document, _ = evaluate_video(video_workdir, tmp_path)
    assert document["psnr"] < 40
    doc = json.loads((video_workdir / "subject" / "transforms.json").read_text())
    w, h = load_subject(video_workdir / "subject").image_sizes[0]
    for frame in doc["frames"]:
        frame["valid_box"] = [4, 0, int(w), int(h)]
    boxed = tmp_path / "boxed"
    shutil.copytree(video_workdir, boxed)
    (boxed / "subject" / "transforms.json").write_text(json.dumps(doc))
    (tmp_path / "box").mkdir()
    document, _ = evaluate_video(boxed, tmp_path / "box")
    assert document["psnr"] == math.inf and document["ssim"] == pytest.approx(1.0)


def test_fitted_pose_protocol_moves_the_pose_and_never_the_code(video_workdir, tmp_path, monkeypatch):
    """Protocol (b) beside (a) on a monocular subject: its own table and averages, re-tracked too;
    every render and fit of the stage uses the frame's own code (or the neutral one), never a fitted one."""
    import torch

    from eavatar.data.subject import load_subject

    codes, real = [], HeadAvatar.frame

    def spy(self, expression, head_pose, *args, **kwargs):
        codes.append(expression.detach().clone())
        return real(self, expression, head_pose, *args, **kwargs)

    monkeypatch.setattr(HeadAvatar, "frame", spy)
    document, tracked = evaluate_video(video_workdir, tmp_path)
    fitted = document["fitted_pose"]
    table = pd.read_csv(tmp_path / "eval" / "per_frame_test_fitted_pose.csv")
    assert list(table["frame"]) == list(tracked["frame"]) and {"psnr", "mouth_psnr", "aed", "aed_neutral", "fit_rotation_deg", "fit_translation"} <= set(table.columns)
    assert fitted["psnr"] == pytest.approx(table["psnr"].mean()) and fitted["fit_pose_steps"] == 20
    assert fitted["retrack_frames"] + fitted["retrack_failed_render"] == 2 and "aed_vs_neutral" in fitted
    assert table["fit_rotation_deg"].max() > 0  # the pose moved
    subject = load_subject(video_workdir / "subject")
    allowed = [torch.as_tensor(subject.expressions[i]) for i in subject.split("test")] + [torch.zeros(subject.d_exp)]
    assert codes and all(any(torch.equal(c, a) for a in allowed) for c in codes)
