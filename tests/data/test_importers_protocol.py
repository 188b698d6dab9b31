"""Importers follow EAvatar's protocols (FREE held out; 8/8 cameras by serial) or refuse, unless told to fall back."""

import json

import numpy as np
import pytest

from eavatar.cli.main import main
from eavatar.data.importers import ImportOptions, SourceError, import_subject
from eavatar.data.subject import load_subject
from tests.data import importer_layouts as L

PRESET_TRAIN = {"222200036", "222200037", "222200038", "222200039", "222200041", "222200046", "222200047", "222200048"}


def source_doc(subject_path):
    return json.loads((subject_path / "transforms.json").read_text())["source"]


def test_vhap_union_without_free_is_refused(tmp_path):
    """The union VHAP's jobs write has no FREE: holding out its random EXP-9 instead must not pass silently."""
    union, _ = L.vhap_union(tmp_path)
    with pytest.raises(SourceError) as e:
        import_subject("vhap", union, tmp_path / "subject")
    for needle in (str(union), "test_sequences", "['FREE']", "FREE export (<subject>_FREE_...) as a second source", "--fallback"):
        assert needle in str(e.value)
    assert not (tmp_path / "subject").exists()


def test_vhap_fallback_holds_out_the_union_test_sequence_and_says_so(tmp_path):
    union, _ = L.vhap_union(tmp_path)
    path = import_subject("vhap", union, tmp_path / "subject", ImportOptions(fallback=True))
    assert load_subject(path).splits == {"train": {"sequences": ["EMO-1", "EXP-2"]}, "test": {"sequences": ["EXP-9"]}}
    source = source_doc(path)
    assert source["protocol"] == {"name": "self-reenactment", "held_out": ["EXP-9"], "fallback": True}
    assert len(source["warnings"]) == 1 and "not EAvatar's self-reenactment protocol" in source["warnings"][0]


def test_vhap_single_export_without_free_falls_back_to_time(tmp_path):
    folder, _ = L.vhap_export(tmp_path, "EMO-1", n_t=5)
    with pytest.raises(SourceError, match="test_sequences"):
        import_subject("vhap", folder, tmp_path / "refused")
    s = load_subject(import_subject("vhap", folder, tmp_path / "subject", ImportOptions(fallback=True)))
    assert sorted(set(s.timesteps[s.split("test")])) == [4]
    assert source_doc(s.root)["protocol"]["name"] == "time"


def test_gha_stock_data_has_no_free(tmp_path):
    """GHA's preprocessing skips FREE and keeps no sequence names: self-reenactment is refused, the fallback says what it is."""
    src, _ = L.gha_subject(tmp_path)
    opts = ImportOptions(original_resolution=2 * L.GHA_SIZE)
    with pytest.raises(SourceError) as e:
        import_subject("gha", src, tmp_path / "refused", opts)
    assert "test_sequences" in str(e.value) and "skips every folder whose name contains FREE" in str(e.value)
    path = import_subject("gha", src, tmp_path / "subject", ImportOptions(original_resolution=2 * L.GHA_SIZE, fallback=True))
    assert source_doc(path)["protocol"]["name"] == "time" and "fell back" in source_doc(path)["warnings"][0]


def test_novel_view_preset_picks_the_same_physical_cameras_in_vhap_and_gha(tmp_path):
    """VHAP numbers cameras in camera_params.json order, GHA by sorted serial: the preset goes by serial."""
    union, _ = L.vhap_union(tmp_path / "vhap", n_cam=16)
    free, _ = L.vhap_export(union.parent, "FREE", n_t=2, n_cam=16)
    gha, _ = L.gha_subject(tmp_path / "gha", n_frames=2, cams=tuple(sorted(L.NERSEMBLE_SERIALS)))
    opts = ImportOptions(protocol="novel-view", original_resolution=2 * L.GHA_SIZE)
    subjects = {"vhap": import_subject("vhap", [union, free], tmp_path / "v", opts), "gha": import_subject("gha", gha, tmp_path / "g", opts)}
    for fmt, path in subjects.items():
        s, frames = load_subject(path), json.loads((path / "transforms.json").read_text())["frames"]
        serials = {name: {frames[i]["camera_id"] for i in s.split(name)} for name in ("train", "test")}
        assert serials["train"] == PRESET_TRAIN and serials["test"] == set(L.NERSEMBLE_SERIALS) - PRESET_TRAIN, fmt
    vhap, gha_subject = load_subject(subjects["vhap"]), load_subject(subjects["gha"])
    assert vhap.splits["train"]["cameras"] != gha_subject.splits["train"]["cameras"]  # by index they differ
    assert vhap.splits["train"]["sequences"] == ["EMO-1", "EXP-2", "EXP-9"] == vhap.splits["test"]["sequences"]


def test_novel_view_preset_needs_the_16_nersemble_cameras(tmp_path):
    union, _ = L.vhap_union(tmp_path)
    with pytest.raises(SourceError, match="train_cameras: the NeRSemble 8/8 preset needs cameras"):
        import_subject("vhap", union, tmp_path / "subject", ImportOptions(protocol="novel-view"))


def test_monocular_self_reenactment_needs_a_named_video(tmp_path):
    src, _ = L.imavatar_subject(tmp_path)
    with pytest.raises(SourceError, match="test_sequences: self-reenactment needs a held-out sequence"):
        import_subject("imavatar", src, tmp_path / "refused", ImportOptions(protocol="self-reenactment"))
    with pytest.raises(SourceError, match="camera_id: novel-view chooses cameras by serial"):
        import_subject("imavatar", src, tmp_path / "refused", ImportOptions(protocol="novel-view"))


def test_cli_prints_the_split_and_refuses_what_it_cannot_honour(tmp_path, capsys):
    union, _ = L.vhap_union(tmp_path)
    free, _ = L.vhap_export(union.parent, "FREE")
    assert main(["import", "--format", "vhap", str(union), "--out", str(tmp_path / "refused")]) == 2
    assert "FREE" in capsys.readouterr().err and not (tmp_path / "refused").exists()

    assert main(["import", "--format", "vhap", str(union), str(free), "--out", str(tmp_path / "ok")]) == 0
    out = capsys.readouterr()
    serials = ", ".join(sorted(L.NERSEMBLE_SERIALS[:3]))
    assert "protocol: self-reenactment, held out FREE" in out.out
    assert f"  train: 18 frames; 3 sequence(s) EMO-1, EXP-2, EXP-9; 3 camera(s) {serials}" in out.out
    assert f"  test: 9 frames; 1 sequence(s) FREE; 3 camera(s) {serials}" in out.out
    assert "WARNING" not in out.err

    assert main(["import", "--format", "vhap", str(union), "--fallback", "--out", str(tmp_path / "fallback")]) == 0
    out = capsys.readouterr()
    assert "held out EXP-9 (a fallback, not EAvatar's protocol)" in out.out and "WARNING: self-reenactment holds out ['FREE']" in out.err

    argv = ["import", "--format", "vhap", str(union), str(free), "--protocol", "novel-view", "--test-cameras", L.NERSEMBLE_SERIALS[2], "--out", str(tmp_path / "nv")]
    assert main(argv) == 0
    assert f"  test: 6 frames; 3 sequence(s) EMO-1, EXP-2, EXP-9; 1 camera(s) {L.NERSEMBLE_SERIALS[2]}" in capsys.readouterr().out


def test_time_protocol_is_recorded_for_monocular_sources(tmp_path):
    src, _ = L.insta_actor(tmp_path)
    path = import_subject("insta", src, tmp_path / "subject")
    assert source_doc(path)["protocol"] == {"name": "time", "held_out": [], "test_fraction": 0.2}
    assert np.array_equal(load_subject(path).split("test"), [8, 9])
