"""Importers on unreadable layouts: a clear error naming the file and the field, and nothing written."""

import importlib.util
import json
import pickle

import numpy as np
import pytest
import scipy.sparse

from eavatar.cli.main import main
from eavatar.data.importers import ImportOptions, SourceError, import_subject
from eavatar.data.importers.flame_model import load_flame_model
from tests.data import importer_layouts as L


def import_fails(fmt, src, out, *needles, opts=None):
    """Run the import, expect a SourceError mentioning every needle, and check that nothing was left behind."""
    with pytest.raises(SourceError) as e:
        import_subject(fmt, src, out, opts)
    for needle in needles:
        assert str(needle) in str(e.value), f"{needle!r} not in: {e.value}"
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "a failed import left files behind"
    return str(e.value)


def vhap_sources(tmp_path):
    """The union VHAP's jobs write and the subject's FREE export: a layout that imports cleanly."""
    union, _ = L.vhap_union(tmp_path)
    free, _ = L.vhap_export(union.parent, "FREE")
    return union, [union, free]


def test_vhap_missing_transforms(tmp_path):
    src, _ = L.vhap_union(tmp_path)
    for name in ("train", "val", "test"):
        (src / f"transforms_{name}.json").unlink()
    import_fails("vhap", src, tmp_path / "out", src / "transforms_train.json", "(file)", "not found")


def test_vhap_missing_param_file(tmp_path):
    src, _ = L.vhap_union(tmp_path)
    npz = src.parent / "074_EXP-2_v16_DS4_whiteBg_staticOffset_maskBelowLine/flame_param/00001.npz"
    npz.unlink()
    import_fails("vhap", src, tmp_path / "out", "transforms_train.json", ".flame_param_path", "file not found", "00001.npz")


@pytest.mark.parametrize(
    "override, needles",
    [
        ({"expr": np.array([[0.1] * 4 + [np.nan] + [0.0] * (L.N_EXPR - 5)])}, ["expr", "not finite at index 4"]),
        ({"expr": np.zeros((1, L.N_EXPR + 2))}, ["expr", f"expected {L.N_EXPR} values"]),
        ({"expr": np.zeros((2, L.N_EXPR))}, ["expr", "shape [k] or [1, k]"]),
        ({"rotation": np.array([[0.0, np.inf, 0.0]])}, ["rotation", "not finite"]),
        ({"jaw_pose": np.zeros((1, 2))}, ["jaw_pose", "expected 3 values"]),
    ],
)
def test_vhap_bad_parameters_name_the_file_and_field(tmp_path, override, needles):
    src, sources = vhap_sources(tmp_path)
    npz = src.parent / "074_EXP-9_v16_DS4_whiteBg_staticOffset_maskBelowLine/flame_param/00001.npz"
    L.flame_npz(npz, np.random.default_rng(5), **override)
    import_fails("vhap", sources, tmp_path / "out", npz, *needles)


def test_vhap_missing_field(tmp_path):
    src, _ = L.vhap_union(tmp_path)
    npz = src.parent / "074_EMO-1_v16_DS4_whiteBg_staticOffset_maskBelowLine/flame_param/00000.npz"
    kept = {k: v for k, v in np.load(npz).items() if k != "neck_pose"}
    np.savez(npz, **kept)
    import_fails("vhap", src, tmp_path / "out", npz, "neck_pose", "missing")


def test_missing_image_cleans_up(tmp_path):
    src, sources = vhap_sources(tmp_path)
    image = src.parent / "074_EXP-2_v16_DS4_whiteBg_staticOffset_maskBelowLine/images/00001_02.png"
    image.unlink()
    import_fails("vhap", sources, tmp_path / "out", image, "not found")


def test_unknown_test_sequence_and_camera(tmp_path):
    _, sources = vhap_sources(tmp_path)
    import_fails("vhap", sources, tmp_path / "out", "test_sequences", "'EMO-7'", opts=ImportOptions(test_sequences=("EMO-7",)))
    novel = ImportOptions(protocol="novel-view", test_cameras=("222200099",))
    import_fails("vhap", sources, tmp_path / "out", "test_cameras", "unknown camera serial ['222200099']", opts=novel)
    import_fails("vhap", sources, tmp_path / "out", "test_cameras", "only --protocol novel-view", opts=ImportOptions(test_cameras=("222200042",)))


def test_vhap_static_offset_shorter_than_the_model(tmp_path):
    src, sources = vhap_sources(tmp_path)
    model = {"v_template": np.zeros((6000, 3)), "shapedirs": np.zeros((6000, 3, 310)), "J_regressor": np.full((5, 6000), 1 / 6000)}
    np.savez(tmp_path / "flame.npz", **model)
    npz = src.parent / "074_EMO-1_v16_DS4_whiteBg_staticOffset_maskBelowLine/flame_param/00000.npz"
    import_fails("vhap", sources, tmp_path / "out", npz, "static_offset", "[1, >= 6000, 3]", "(1, 5143, 3)", opts=ImportOptions(flame_model=tmp_path / "flame.npz"))


def test_vhap_sources_of_two_subjects(tmp_path):
    src, _ = L.vhap_union(tmp_path)
    other, _ = L.vhap_export(src.parent, "FREE", subject="104")
    import_fails("vhap", [src, other], tmp_path / "out", other / "transforms_train.json", "frames[0].file_path", "'104' here but '074'")


def test_vhap_sources_that_number_cameras_differently(tmp_path):
    """camera_index must name one physical camera in every source (VHAP numbers them in camera_params.json order)."""
    _, sources = vhap_sources(tmp_path)
    path = sources[1] / "transforms_train.json"
    doc = json.loads(path.read_text())
    doc["frames"][0]["camera_id"] = L.NERSEMBLE_SERIALS[5]
    path.write_text(json.dumps(doc))
    import_fails("vhap", sources, tmp_path / "out", path, "frames[0].camera_id", f"camera_index 0 is '{L.NERSEMBLE_SERIALS[5]}' here but '{L.NERSEMBLE_SERIALS[0]}'")


def test_one_source_for_other_formats(tmp_path):
    src, _ = L.insta_actor(tmp_path)
    import_fails("insta", [src, src], tmp_path / "out", "src: format insta reads one source folder, got 2")


def test_gha_unknown_face_model(tmp_path):
    src, params = L.gha_subject(tmp_path)
    ppath = src / "params/0000/params.npz"
    np.savez(ppath, **{**params["0000"], "exp_coeff": np.zeros((1, 52)), "id_coeff": np.zeros((1, 99))})
    import_fails("gha", src, tmp_path / "out", ppath, "exp_coeff", "52 values with id_coeff of 99", "flame (id 100, exp 59)")


def test_flame_model_given_but_missing(tmp_path):
    src, _ = L.vhap_union(tmp_path)
    missing = tmp_path / "flame2023.npz"
    import_fails("vhap", src, tmp_path / "out", missing, "FLAME model not found", "optional", opts=ImportOptions(flame_model=missing))


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    src, _ = L.insta_actor(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SourceError, match="--overwrite"):
        import_subject("insta", src, out)
    assert (out / "keep.txt").read_text() == "mine"
    import_subject("insta", src, out, ImportOptions(overwrite=True))
    assert (out / "transforms.json").is_file() and not (out / "keep.txt").exists()


def test_gha_errors(tmp_path):
    src, params = L.gha_subject(tmp_path)
    ppath = src / "params/0002/params.npz"
    np.savez(ppath, **{**params["0002"], "pose": np.array([[0.1, np.nan, 0, 0, 0, 0]])})
    import_fails("gha", src, tmp_path / "out", ppath, "pose", "not finite at index 1", opts=ImportOptions(original_resolution=16))
    np.savez(ppath, **{**params["0002"], "scale": np.array([0.3])})
    import_fails("gha", src, tmp_path / "out", ppath, "scale", "not be rigid", opts=ImportOptions(original_resolution=16))
    np.savez(ppath, **params["0002"])
    (src / "cameras/0001/camera_221501007.npz").unlink()
    import_fails("gha", src, tmp_path / "out", "camera_221501007.npz", "file not found", opts=ImportOptions(original_resolution=16))


def test_gha_missing_layout(tmp_path):
    import_fails("gha", tmp_path, tmp_path / "out", tmp_path / "images", "(folder)", "images/, cameras/ and params/")


def test_insta_errors(tmp_path):
    src, exps = L.insta_actor(tmp_path)
    np.savetxt(src / "flame/exp/3.txt", exps[3][:-1])
    import_fails("insta", src, tmp_path / "out", src / "flame/exp/3.txt", "exp", f"expected {L.N_EXPR} coefficients")
    (src / "transforms.json").unlink()
    import_fails("insta", src, tmp_path / "out", src / "transforms.json", "not found")


def test_imavatar_errors(tmp_path):
    src, _ = L.imavatar_subject(tmp_path)
    jpath = src / "MVI_1811/flame_params.json"
    doc = json.loads(jpath.read_text())
    doc["frames"][2]["expression"][7] = float("nan")
    jpath.write_text(json.dumps(doc))
    import_fails("imavatar", src, tmp_path / "out", jpath, "frames[2].expression", "not finite")
    doc["frames"][2]["expression"] = doc["frames"][2]["expression"][:40]
    doc["frames"][2]["expression"][7] = 0.0
    jpath.write_text(json.dumps(doc))
    import_fails("imavatar", src, tmp_path / "out", jpath, "frames[2].expression", "expected 50 values")
    import_fails("imavatar", tmp_path, tmp_path / "out", tmp_path / "flame_params.json", "not found")


def test_cli(tmp_path, capsys):
    src, _ = L.insta_actor(tmp_path)
    assert main(["import", "--format", "insta", str(src), "--out", str(tmp_path / "ok"), "--test-fraction", "0.3", "--copy"]) == 0
    assert (tmp_path / "ok/transforms.json").is_file() and not (tmp_path / "ok/images/00000.png").is_symlink()
    (src / "flame/exp/0.txt").write_text("1.0\nnan\n")
    assert main(["import", "--format", "insta", str(src), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "0.txt: exp: " in err and not (tmp_path / "bad").exists()


def test_vhap_non_integer_timestep(tmp_path):
    src, _ = L.vhap_union(tmp_path)
    path = src / "transforms_val.json"
    doc = json.loads(path.read_text())
    doc["frames"][1]["timestep_index"] = "1"
    path.write_text(json.dumps(doc))
    import_fails("vhap", src, tmp_path / "out", path, "frames[1].timestep_index", "expected an integer")


def test_flame_pickle_needing_chumpy_says_so(tmp_path):
    if importlib.util.find_spec("chumpy") is not None:
        pytest.skip("chumpy is installed here, so the pickle would load")
    pkl = tmp_path / "generic_model.pkl"
    pkl.write_bytes(b"\x80\x02cchumpy.ch\nCh\nq\x00.")  # a pickle whose only object is a chumpy class
    src, _ = L.vhap_union(tmp_path)
    import_fails("vhap", src, tmp_path / "out", pkl, "chumpy", ".npz", opts=ImportOptions(flame_model=pkl))


def test_flame_pickle_with_sparse_regressor_loads_like_npz(tmp_path):
    rng = np.random.default_rng(2)
    model = {"v_template": rng.normal(size=(6, 3)), "shapedirs": rng.normal(size=(6, 3, 4)), "J_regressor": rng.dirichlet(np.ones(6), 5)}
    np.savez(tmp_path / "m.npz", **model)
    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump({**model, "J_regressor": scipy.sparse.csc_matrix(model["J_regressor"]), "f": np.zeros((2, 3))}, f)
    a, b = load_flame_model(tmp_path / "m.npz"), load_flame_model(tmp_path / "m.pkl")
    for key in a:
        np.testing.assert_allclose(a[key], b[key])
    np.savez(tmp_path / "bad.npz", v_template=model["v_template"], shapedirs=model["shapedirs"])
    with pytest.raises(SourceError, match="bad.npz: J_regressor: missing"):
        load_flame_model(tmp_path / "bad.npz")
