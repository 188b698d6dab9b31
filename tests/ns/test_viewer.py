"""Expression sliders of the nerfstudio viewer, exercised without a viewer server."""

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.viewer.utils import parse_object
from nerfstudio.viewer.viewer_elements import ViewerButton, ViewerElement, ViewerSlider

from eavatar.avatar.gaussians import GaussianInitConfig
from eavatar.avatar.generator import GeneratorConfig
from eavatar.avatar.losses import LossConfig
from eavatar.avatar.model import AvatarConfig
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
from eavatar.ns.dataparser import EAvatarDataParserConfig
from eavatar.ns.model import EAvatarModelConfig
from eavatar.data.expression_labels import group_labels
from eavatar.ns.viewer import slider_range

TINY = dict(resolution=32, n_cameras=2, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    subject_dir = generate_synthetic_subject(tmp_path_factory.mktemp("viewer") / "s", SyntheticConfig(**TINY))
    outputs = EAvatarDataParserConfig(data=subject_dir).setup().get_dataparser_outputs("train")
    avatar = AvatarConfig(init=GaussianInitConfig(num_points=400, feature_dim=8), generator=GeneratorConfig(hidden_dim=16, num_layers=2))
    cfg = EAvatarModelConfig(avatar=avatar, loss=LossConfig(lpips_weight=0.0))
    model = cfg.setup(scene_box=outputs.scene_box, num_train_data=len(outputs.image_filenames), metadata=outputs.metadata)
    torch.manual_seed(0)
    with torch.no_grad():  # an untrained avatar ignores the expression (zero heads): give it a response
        for head in (model.avatar.generator.expression.deform[-1], model.avatar.generator.expression.attributes[-1]):
            head.weight.normal_(0, 0.05)
    return model.eval()


def viewer_camera(model) -> Cameras:
    """A camera as the viewer sends it: no expression metadata."""
    subject = model.kwargs["metadata"]["subject"]
    c2w = torch.as_tensor(subject.c2w[0, :3, :4], dtype=torch.float32)[None]
    fx, fy, cx, cy = (float(v) for v in subject.intrinsics[0])
    return Cameras(camera_to_worlds=c2w, fx=fx, fy=fy, cx=cx, cy=cy, width=32, height=32)


def test_nerfstudio_finds_one_slider_per_label_in_region_folders(model):
    elements = dict(parse_object(model, ViewerElement, "Custom Elements"))
    sliders = {path: e for path, e in elements.items() if isinstance(e, ViewerSlider)}
    labels = model.expression_labels
    # the viewer's order: face regions, then the subject's label order inside each
    assert [e.name for e in sliders.values()] == [label for group in group_labels(labels).values() for label in group]
    assert f"Custom Elements/expression/jaw/e{labels.index('jaw_open'):03d}_jaw_open" in sliders
    assert any(isinstance(e, ViewerButton) and path.endswith("expression/reset") for path, e in elements.items())


def test_a_slider_callback_changes_the_viewer_image_and_reset_restores_it(model):
    camera = viewer_camera(model)
    neutral = model.get_outputs_for_camera(camera)["rgb"]
    slider = model.expression.sliders["jaw_open"]
    slider.value = 1.0
    slider.cb_hook(slider)  # what the viewer calls on a GUI update
    assert model.viewer_expression[model.expression_labels.index("jaw_open")] == 1.0
    moved = model.get_outputs_for_camera(camera)["rgb"]
    assert (moved - neutral).abs().max() > 1e-3
    model.expression.reset.cb_hook(model.expression.reset)
    assert model.viewer_expression.abs().sum() == 0 and slider.value == 0.0
    torch.testing.assert_close(model.get_outputs_for_camera(camera)["rgb"], neutral)


def test_loading_a_checkpoint_moves_the_sliders_to_its_viewer_expression(model):
    state = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in model.state_dict().items()}
    state["viewer_expression"][1] = 0.7
    model.load_state_dict(state)
    assert model.expression.sliders[model.expression_labels[1]].value == pytest.approx(0.7)
    model.expression.set_all([0.0] * len(model.expression_labels))


def test_slider_range_covers_the_training_codes():
    assert slider_range(torch.tensor([0.0, 0.4]).numpy()) == (0.0, 1.0)
    assert slider_range(torch.tensor([-2.3, 1.75]).numpy()) == (-2.3, 1.8)
    assert slider_range(torch.tensor([-2.31, 1.71]).numpy()) == (-2.4, 1.8)


def test_training_renders_with_bf16_mlps_and_evaluation_with_float32(model, monkeypatch):
    """bf16_mlps is a training-speed switch: every render outside training is float32."""
    seen = []
    frame = model.avatar.frame
    monkeypatch.setattr(model.avatar, "frame", lambda expression, head_pose, bf16=False, **kw: seen.append(bf16) or frame(expression, head_pose, bf16, **kw))
    camera = viewer_camera(model)
    try:
        model.train()
        model.get_outputs(camera)
        model.config.bf16_mlps = False
        model.get_outputs(camera)
    finally:
        model.config.bf16_mlps = True
        model.eval()
    model.get_outputs_for_camera(camera)
    assert seen == [True, False, False]
