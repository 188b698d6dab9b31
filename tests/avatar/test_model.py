import pytest
import torch

from eavatar.avatar.checkpoint import AvatarInfo, load_avatar, save_avatar
from eavatar.avatar.control import SparseControlConfig
from eavatar.avatar.generator import positional_encoding
from eavatar.render import Camera

from .conftest import make_avatar


def front_camera(size: int = 48) -> Camera:
    c2w = torch.eye(4)
    c2w[2, 3] = 0.5  # OpenGL camera on +z looking at the origin
    return Camera.from_c2w_opengl(c2w, size * 1.2, size * 1.2, size / 2, size / 2, size, size)


def test_generator_starts_at_the_canonical_set():
    avatar = make_avatar()
    for p in (avatar.generator.expression.deform[-1], avatar.generator.expression.attributes[-1]):
        torch.nn.init.zeros_(p.weight), torch.nn.init.zeros_(p.bias)
    for p in (avatar.generator.pose.deform[-1], avatar.generator.pose.attributes[-1]):
        torch.nn.init.zeros_(p.weight), torch.nn.init.zeros_(p.bias)
    g = avatar.frame(torch.rand(avatar.d_exp), torch.eye(4))
    torch.testing.assert_close(g.means, avatar.canonical.params["means"])
    assert g.exp_displacement.abs().max() == 0


def test_generator_is_deterministic_for_a_seed():
    a, b = make_avatar(seed=3), make_avatar(seed=3)
    code = torch.linspace(0, 1, a.d_exp)
    ga, gb = a.frame(code, torch.eye(4)), b.frame(code, torch.eye(4))
    for name in ("means", "quats", "scales", "opacities", "colors"):
        torch.testing.assert_close(getattr(ga, name), getattr(gb, name), rtol=0, atol=0)
    assert not torch.equal(make_avatar(seed=4).frame(code, torch.eye(4)).means, ga.means)


def test_expression_changes_the_gaussians(avatar):
    g0 = avatar.frame(torch.zeros(avatar.d_exp), torch.eye(4))
    g1 = avatar.frame(torch.ones(avatar.d_exp), torch.eye(4))
    assert (g0.means - g1.means).abs().max() > 1e-4
    assert (g0.colors - g1.colors).abs().max() > 1e-4


def test_wrong_expression_length_is_a_clear_error(avatar):
    with pytest.raises(ValueError, match="expression has 3 values, the avatar was trained with d_exp=5"):
        avatar.frame(torch.zeros(3), torch.eye(4))


def test_head_pose_is_applied_rigidly_after_the_generator(avatar):
    avatar.generator.pose = None  # isolate the rigid transform from the pose branch
    pose = torch.eye(4)
    pose[:3, :3] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    pose[:3, 3] = torch.tensor([0.1, 0.0, -0.2])
    code = torch.rand(avatar.d_exp)
    head = avatar.frame(code, torch.eye(4))
    world = avatar.frame(code, pose)
    torch.testing.assert_close(world.means, head.means @ pose[:3, :3].T + pose[:3, 3])
    torch.testing.assert_close(world.colors, head.colors)


def test_positional_encoding_shape():
    assert positional_encoding(torch.zeros(7, 3), 4).shape == (7, 27)


def test_checkpoint_round_trip(tmp_path, avatar):
    info = AvatarInfo(expression_labels=[f"e{i}" for i in range(5)], expression_space="synthetic", step=12)
    path = save_avatar(tmp_path / "avatar.pt", avatar, info)
    loaded, loaded_info = load_avatar(path)
    assert loaded_info == info
    code = torch.rand(5)
    a, b = avatar.frame(code, torch.eye(4)), loaded.frame(code, torch.eye(4))
    for name in ("means", "quats", "scales", "opacities", "colors"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
    cam = front_camera()
    bg = torch.ones(3)
    torch.testing.assert_close(avatar.render(cam, code, torch.eye(4), bg).rgb, loaded.render(cam, code, torch.eye(4), bg).rgb)


def test_the_pixel_filter_is_the_avatars_and_survives_a_checkpoint(tmp_path, avatar):
    code, cam, bg = torch.rand(5), front_camera(), torch.ones(3)
    default = avatar.render(cam, code, torch.eye(4), bg).rgb
    avatar.cfg.pixel_filter = 0.3
    wide = avatar.render(cam, code, torch.eye(4), bg).rgb
    assert (default - wide).abs().max() > 1e-3
    info = AvatarInfo(expression_labels=[f"e{i}" for i in range(5)], expression_space="synthetic", step=1)
    loaded, _ = load_avatar(save_avatar(tmp_path / "avatar.pt", avatar, info))
    assert loaded.cfg.pixel_filter == 0.3
    # an avatar saved before the field existed was trained with gsplat's 0.3 and renders with it
    payload = torch.load(tmp_path / "avatar.pt", weights_only=True)
    del payload["config"]["pixel_filter"]
    torch.save(payload, tmp_path / "old.pt")
    old, _ = load_avatar(tmp_path / "old.pt")
    torch.testing.assert_close(old.render(cam, code, torch.eye(4), bg).rgb, wide)


def test_control_settings_survive_a_checkpoint_and_older_avatars_keep_theirs(tmp_path, avatar):
    """The control set and blend are the avatar's: a saved one loads as trained; one saved before
    ``select`` and ``blend`` existed was trained with the per-frame set and the normalised blend."""
    avatar.cfg.control = SparseControlConfig(select="expression", blend="falloff", tau=0.01)
    info = AvatarInfo(expression_labels=[f"e{i}" for i in range(5)], expression_space="synthetic", step=1)
    loaded, _ = load_avatar(save_avatar(tmp_path / "avatar.pt", avatar, info))
    assert (loaded.cfg.control.select, loaded.cfg.control.blend, loaded.cfg.control.tau) == ("expression", "falloff", 0.01)
    payload = torch.load(tmp_path / "avatar.pt", weights_only=True)
    del payload["config"]["control"]["select"], payload["config"]["control"]["blend"]
    torch.save(payload, tmp_path / "old.pt")
    old, _ = load_avatar(tmp_path / "old.pt")
    assert (old.cfg.control.select, old.cfg.control.blend, old.cfg.control.tau) == ("frame", "normalised", 0.01)


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt: avatar checkpoint not found"):
        load_avatar(tmp_path / "missing.pt")
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: format is 'other'"):
        load_avatar(tmp_path / "bad.pt")


@pytest.mark.parametrize("select", ["expression", "frame"])
def test_sparse_control_moves_neighbours_of_control_gaussians_only_when_enabled(select):
    from eavatar.avatar.control import SparseControlConfig

    avatar = make_avatar(n=400)
    avatar.cfg.control = SparseControlConfig(enabled=False, select=select)
    code = torch.ones(5)
    off = avatar.frame(code, torch.eye(4))
    assert not off.is_control.any()
    compared = avatar.expression_reach() if select == "expression" else off.exp_magnitude
    avatar.cfg.control = SparseControlConfig(enabled=True, select=select, tau=float(compared.quantile(0.9)), radius=0.5, sigma=0.3)
    on = avatar.frame(code, torch.eye(4))
    assert 0 < int(on.is_control.sum()) < 400
    torch.testing.assert_close(on.exp_displacement[on.is_control], off.exp_displacement[on.is_control])
    moved = (on.exp_displacement - off.exp_displacement).norm(dim=-1) > 0
    assert moved.any() and not (moved & on.is_control).any()


def test_expression_control_propagates_motion_from_neutral_through_a_fixed_set():
    """select=expression: x_j = f_j(theta) + sum_i w_ij (f_i(theta) - f_i(0)) over the Gaussians some
    coefficient moves more than tau; the set is the same at every code; nothing moves at neutral."""
    from eavatar.avatar.control import SparseControlConfig
    from tests.avatar.test_control import direct

    avatar = make_avatar(n=300, seed=3)
    reach = avatar.expression_reach()
    cfg = SparseControlConfig(enabled=True, select="expression", tau=float(reach.median()), radius=0.4, sigma=0.2)
    avatar.cfg.control = cfg
    with torch.no_grad():
        points = avatar.normalized_means()
        codes = torch.cat([torch.zeros(1, 5), torch.eye(5)])
        probe = avatar.generator.expression_deform(points, codes)
        torch.testing.assert_close(reach, (probe[1:] - probe[0]).norm(dim=-1).amax(0))
        sets = []
        for code in (torch.rand(5), torch.zeros(5), torch.ones(5)):
            g = avatar.frame(code, torch.eye(4))
            own = avatar.generator.expression_deform(points, code[None])[0]
            source = torch.where(g.is_control[:, None], own - probe[0], 0.0)
            expected = own + direct(points, source, g.is_control, cfg.radius, cfg.sigma, cfg.falloff) - source  # controls: own; neighbours: own + blend
            torch.testing.assert_close(g.exp_displacement / avatar.radius, expected, atol=1e-5, rtol=1e-4)
            sets.append(g.is_control)
    assert torch.equal(sets[0], sets[1]) and torch.equal(sets[0], sets[2]) and 0 < int(sets[0].sum()) < 300
    avatar.cfg.control = SparseControlConfig(enabled=False)
    neutral_off = avatar.frame(torch.zeros(5), torch.eye(4))
    avatar.cfg.control = cfg
    torch.testing.assert_close(avatar.frame(torch.zeros(5), torch.eye(4)).means, neutral_off.means, atol=1e-6, rtol=0)


def test_expression_control_is_continuous_in_the_code_where_per_frame_selection_jumps():
    """Along a fine path of codes the paper's per-frame set changes, and a Gaussian that crosses tau
    drags its neighbours by its whole displacement at once; the fixed set moves them smoothly."""
    from eavatar.avatar.control import SparseControlConfig

    avatar = make_avatar(n=400)
    path = [torch.full((5,), float(t)) for t in torch.linspace(0, 1, 101)]

    def largest_step(cfg: SparseControlConfig) -> float:
        avatar.cfg.control = cfg
        with torch.no_grad():
            means = torch.stack([avatar.frame(code, torch.eye(4)).means for code in path])
        return float((means[1:] - means[:-1]).norm(dim=-1).amax() / avatar.radius)

    avatar.cfg.control = SparseControlConfig(enabled=False)
    with torch.no_grad():
        magnitude = torch.stack([avatar.frame(code, torch.eye(4)).exp_magnitude for code in path])
    off = largest_step(SparseControlConfig(enabled=False))
    frame = largest_step(SparseControlConfig(enabled=True, select="frame", tau=float(magnitude.median()), radius=0.5, sigma=0.3))
    expression = largest_step(SparseControlConfig(enabled=True, select="expression", tau=float(avatar.expression_reach().median()), radius=0.5, sigma=0.3))
    assert frame > 20 * off and expression < 3 * off


def test_expression_reach_is_recomputed_when_a_parameter_changes():
    avatar = make_avatar(n=100)
    first = avatar.expression_reach()
    assert avatar.expression_reach() is first  # kept while nothing changes
    with torch.no_grad():
        avatar.generator.expression.deform[-1].weight.mul_(2.0)  # the position head, in place (as Adam does)
    second = avatar.expression_reach()
    assert second is not first and not torch.allclose(second, first)
    with pytest.raises(ValueError, match="control set of 99 Gaussians for an avatar of 100"):
        avatar.frame(torch.ones(5), torch.eye(4), control_set=torch.ones(99, dtype=torch.bool))


def _randomise_heads(avatar) -> None:
    """The residual heads start at zero, which would make every branch output 0 and these tests vacuous."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for branch in (avatar.generator.expression, avatar.generator.pose):
            for head in (branch.deform[-1], branch.attributes[-1]):
                head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.1)
                head.bias.copy_(torch.randn(head.bias.shape, generator=g) * 0.1)


def _film_mlp(net, film, inputs, code):
    """A trunk as docs/method.md writes it: layer k is relu((1 + s_k(code)) * (W_k h) + b_k), the
    first layer's code columns unscaled."""
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    s = 1 + film(code).view(len(linears) - 1, -1)
    n = inputs.shape[-1]
    first = linears[0]
    h = torch.relu(s[0] * (inputs @ first.weight[:, :n].T) + code @ first.weight[:, n:].T + first.bias)
    for k in range(1, len(linears) - 1):
        h = torch.relu(s[k] * (h @ linears[k].weight.T) + linears[k].bias)
    return linears[-1](h)


def test_branch_is_its_film_mlp_on_input_and_code(avatar):
    _randomise_heads(avatar)
    p = avatar.canonical.params
    pos_enc = positional_encoding(avatar.normalized_means(), avatar.generator.cfg.pos_frequencies)
    branch, code = avatar.generator.expression, torch.rand(avatar.d_exp)
    assert branch.deform_scales.weight.abs().max() > 0  # make_avatar perturbs the scales too: they are exercised
    dx, attrs = branch(pos_enc, p["features"], code)
    torch.testing.assert_close(dx, _film_mlp(branch.deform, branch.deform_scales, pos_enc, code))
    plain = _film_mlp(branch.attributes, branch.attributes_scales, p["features"], code)
    torch.testing.assert_close(torch.cat([attrs[k] for k in attrs], -1), plain)
    assert dx.abs().max() > 0


def test_film_starts_as_the_plain_mlp_and_avatars_saved_without_it_load_unchanged(tmp_path):
    """Zero scales are the MLP on [input, code]; a state dict without the scales (an avatar saved
    before them) loads with zero scales."""
    avatar = make_avatar()
    _randomise_heads(avatar)
    branch = avatar.generator.expression
    state = {k: v for k, v in avatar.state_dict().items() if "_scales." not in k}
    fresh = make_avatar(seed=1)
    fresh.load_state_dict(state)
    pos_enc = positional_encoding(fresh.normalized_means(), fresh.generator.cfg.pos_frequencies)
    code = torch.rand(fresh.d_exp)
    loaded = fresh.generator.expression
    assert loaded.deform_scales.weight.abs().max() == 0 and loaded.attributes_scales.bias.abs().max() == 0
    dx, _ = loaded(pos_enc, fresh.canonical.params["features"], code)
    torch.testing.assert_close(dx, branch.deform(torch.cat([pos_enc, code.expand(len(pos_enc), -1)], -1)))


def test_first_layer_split_into_rows_and_code_equals_the_branch(avatar):
    _randomise_heads(avatar)
    p = avatar.canonical.params
    pos_enc = positional_encoding(avatar.normalized_means(), avatar.generator.cfg.pos_frequencies)
    for branch, code in ((avatar.generator.expression, torch.rand(avatar.d_exp)), (avatar.generator.pose, torch.rand(6))):
        dx, attrs = branch(pos_enc, p["features"], code)
        dx2, attrs2 = branch.from_rows(branch.rows(pos_enc, p["features"]), code)
        torch.testing.assert_close(dx2, dx)
        for name in attrs:
            torch.testing.assert_close(attrs2[name], attrs[name])


def _frame_tensors(g) -> dict:
    return {name: getattr(g, name) for name in ("means", "quats", "scales", "opacities", "colors")}


def test_bf16_frame_is_float32_close_to_the_float32_frame_and_trains(avatar, monkeypatch):
    from eavatar.avatar import generator

    monkeypatch.setattr(generator, "native_bfloat16", lambda device: True)  # bf16 autocast runs (emulated) on any CPU
    code, pose = torch.linspace(0, 1, avatar.d_exp), torch.eye(4)
    exact, low = _frame_tensors(avatar.frame(code, pose)), avatar.frame(code, pose, bf16=True)
    for name, value in _frame_tensors(low).items():
        assert value.dtype == torch.float32, name
        torch.testing.assert_close(value, exact[name], rtol=2e-2, atol=2e-3, msg=name)
    assert not torch.equal(low.colors, exact["colors"])  # the MLPs did run in bfloat16
    (low.means.sum() + low.colors.sum()).backward()
    grads = [p.grad for p in avatar.generator.expression.parameters()] + [avatar.canonical.params["features"].grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert avatar.generator.expression.deform[0].weight.grad.abs().sum() > 0


def test_bf16_falls_back_to_float32_where_the_device_has_no_native_bf16(avatar, monkeypatch):
    from eavatar.avatar import generator

    monkeypatch.setattr(generator, "native_bfloat16", lambda device: False)
    code = torch.linspace(0, 1, avatar.d_exp)
    exact, low = _frame_tensors(avatar.frame(code, torch.eye(4))), _frame_tensors(avatar.frame(code, torch.eye(4), bf16=True))
    for name in exact:
        assert torch.equal(low[name], exact[name]), name


def test_native_bfloat16_reads_the_cpu_capabilities(monkeypatch):
    from eavatar.avatar.generator import native_bfloat16

    for capabilities, expected in (({"avx512_bf16": True}, True), ({"amx_bf16": True}, True), ({"avx2": True}, False)):
        native_bfloat16.cache_clear()
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda c=capabilities: c)
        assert native_bfloat16(torch.device("cpu")) is expected
    native_bfloat16.cache_clear()


def test_render_subject_frame_takes_another_expression(tmp_path):
    """Evaluation renders each frame once more at the neutral code: same camera and pose, other expression."""
    from eavatar.avatar.drive import render_subject_frame
    from eavatar.data.frames import frame_camera, frame_controls
    from eavatar.data.subject import load_subject
    from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject

    cfg = SyntheticConfig(resolution=32, n_cameras=2, n_heldout_cameras=0, n_train_sequences=1, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3)
    subject = load_subject(generate_synthetic_subject(tmp_path / "s", cfg))
    avatar = make_avatar(d_exp=subject.d_exp)
    background, index = torch.ones(3), 4
    expression, head_pose = frame_controls(subject, index)
    own = render_subject_frame(avatar, subject, index, background).rgb
    torch.testing.assert_close(own, avatar.render(frame_camera(subject, index), expression, head_pose, background).rgb)
    neutral = render_subject_frame(avatar, subject, index, background, expression=torch.zeros(subject.d_exp)).rgb
    torch.testing.assert_close(neutral, avatar.render(frame_camera(subject, index), torch.zeros(subject.d_exp), head_pose, background).rgb)
    assert not torch.equal(neutral, own)
