import numpy as np
import pytest
import trimesh

from eavatar.geometry.prior import GeneratorConfig, PriorConfig, PriorError, check_generator, load_prior_mesh, make_prior, prior_input_frame, visual_hull, VisualHullConfig
from eavatar.metrics.geometry import mesh_metrics


def test_missing_prior_file_names_the_field_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "trellis_head.glb"
    with pytest.raises(PriorError, match=r"prior\.mesh_file: file not found: .*trellis_head\.glb.*(visual_hull)"):
        load_prior_mesh(missing)
    with pytest.raises(PriorError, match=r"prior\.mesh_file: empty"):
        make_prior(None, PriorConfig(provider="file"))


def test_unreadable_prior_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.obj"
    bad.write_text("this is not a mesh\n")
    with pytest.raises(PriorError, match=r"broken\.obj"):
        load_prior_mesh(bad)


def test_prior_file_is_read_from_glb(tmp_path):
    path = tmp_path / "head.glb"
    trimesh.creation.icosphere(subdivisions=2).export(path)
    assert len(load_prior_mesh(path).faces) == 320


def test_missing_generator_weights_say_what_to_provide(tmp_path):
    with pytest.raises(PriorError, match=r"prior\.generator\.weights: empty.*never downloads"):
        check_generator(GeneratorConfig(weights=""))
    with pytest.raises(PriorError, match=r"prior\.generator\.weights: .*nowhere/pipeline\.json not found.*never downloads"):
        check_generator(GeneratorConfig(weights=str(tmp_path / "nowhere")))
    with pytest.raises(PriorError, match=r"prior\.generator\.name: unknown generator 'hunyuan'"):
        check_generator(GeneratorConfig(name="hunyuan", weights=str(tmp_path)))


def test_missing_generator_package_says_how_to_install(tmp_path):
    import importlib.util

    if importlib.util.find_spec("trellis") is not None:
        pytest.skip("TRELLIS is installed here")
    (tmp_path / "pipeline.json").write_text("{}")
    with pytest.raises(PriorError, match=r"prior\.generator\.name: trellis: the Python package 'trellis' is not installed.*prior\.provider: file"):
        check_generator(GeneratorConfig(weights=str(tmp_path)))


def test_unknown_provider():
    with pytest.raises(PriorError, match=r"prior\.provider: expected one of visual_hull, file, generator"):
        PriorConfig(provider="magic")


def test_visual_hull_is_a_head_space_stand_in(tiny_subject):
    hull = visual_hull(tiny_subject, VisualHullConfig(resolution=48, views_per_camera=3))
    template = trimesh.load(tiny_subject.template_mesh, process=False)
    radius = np.linalg.norm(template.vertices - template.vertices.mean(0), axis=1).mean()
    assert hull.is_watertight
    assert np.linalg.norm(hull.bounds.mean(0) - template.bounds.mean(0)) < 0.15 * radius  # box centres: the template's vertices are denser on the face
    assert mesh_metrics(hull, template, n=4000)["chamfer"] < 0.15 * radius  # a coarse hull, but the right head
    assert hull.volume > 0.9 * template.volume  # a hull contains the head (up to voxel smoothing)


def test_generator_input_is_a_frontal_training_frame(tiny_subject):
    i = prior_input_frame(tiny_subject)
    assert i in set(tiny_subject.split("train").tolist())
    # the camera looks at the face: its back axis (OpenGL +z) agrees with the head's forward axis
    assert float(tiny_subject.c2w[i][:3, 2] @ tiny_subject.head_poses[i][:3, 2]) > 0.8
