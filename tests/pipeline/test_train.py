"""The train stage: one source of defaults, overrides parsed as ns-train parses them, resume."""

import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from eavatar.config import ConfigError, load_params
from eavatar.ns.method import eavatar_trainer_config
from eavatar.pipeline.train import fingerprint, ns_train_command, training_config

ROOT = Path(__file__).resolve().parents[2]
EAVATAR = [sys.executable, "-m", "eavatar.cli.main"]


def leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def resolve(cfg, path: str):
    for key in path.split("."):
        cfg = cfg[key] if isinstance(cfg, dict) else getattr(cfg, key)
    return cfg


@pytest.mark.parametrize("section", ["train", "train_video"])
def test_params_sections_hold_only_overrides_of_the_method_defaults(section):
    """Every key names a field of `ns-train eavatar`'s config, takes effect, and differs from the
    default (a value copied from the method would drift from it)."""
    overrides = load_params(ROOT / "params.yaml", section)
    cfg, default = training_config(overrides, Path("d"), Path("o"), section), eavatar_trainer_config()
    for path, value in leaves(overrides):
        assert resolve(cfg, path) == (tuple(value) if isinstance(value, list) else value), path
        assert resolve(default, path) != resolve(cfg, path), f"params.yaml:{section}.{path} repeats the method's default"


def test_ns_train_parses_the_same_config_as_eavatar_train():
    """The command `eavatar train` prints, parsed by nerfstudio's own CLI, is the same training."""
    import tyro
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

    overrides = load_params(ROOT / "params.yaml", "train")
    ours = training_config(overrides, Path("data/synthetic"), Path("o"), "train")
    args = shlex.split(ns_train_command(overrides, Path("data/synthetic")))[1:]
    theirs = tyro.cli(AnnotatedBaseConfigUnion, args=args)
    theirs.pipeline.datamanager.dataparser.data = theirs.data
    for key in ("pipeline", "optimizers", "max_num_iterations", "machine", "steps_per_save"):
        a, b = getattr(ours, key), getattr(theirs, key)
        if dataclasses.is_dataclass(a):
            a, b = dataclasses.asdict(a), dataclasses.asdict(b)
        assert repr(a) == repr(b), key


def test_unknown_key_and_bad_value_name_the_params_key():
    with pytest.raises(ConfigError, match=r"params.yaml:train: unknown key --pipeline.model.densify.refine-stp \(did you mean --pipeline.model.densify.refine-stop\?\)"):
        training_config({"pipeline": {"model": {"densify": {"refine_stp": 9}}}}, Path("d"), Path("o"), "params.yaml:train")
    with pytest.raises(ConfigError, match=r"params.yaml:train: error parsing --max-num-iterations"):
        training_config({"max_num_iterations": "many"}, Path("d"), Path("o"), "params.yaml:train")


def test_learning_rate_decay_follows_an_overridden_rate():
    """The final rate is a ratio of the rate: overriding one number changes both."""
    from eavatar.ns.method import RelativeDecaySchedulerConfig

    cfg = training_config({"optimizers": {"means": {"optimizer": {"lr": 1e-3}}}}, Path("d"), Path("o"), "t")
    sched = cfg.optimizers["means"]["scheduler"]
    assert isinstance(sched, RelativeDecaySchedulerConfig) and sched.final_ratio == 0.1
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    lr = sched.setup().get_scheduler(opt, 1e-3)
    for _ in range(sched.max_steps):
        opt.step()
        lr.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4, rel=1e-3)


def test_fingerprint_follows_config_seed_mesh_and_subject(tmp_path):
    (tmp_path / "transforms.json").write_text("{}")
    mesh = tmp_path / "mesh.ply"
    mesh.write_bytes(b"first")
    cfg = training_config({"pipeline": {"model": {"init_mesh": str(mesh)}}}, tmp_path, tmp_path / "o", "t")
    first = fingerprint(cfg, tmp_path)
    assert fingerprint(training_config({"pipeline": {"model": {"init_mesh": str(mesh)}}}, tmp_path, tmp_path / "elsewhere", "t"), tmp_path) == first
    mesh.write_bytes(b"second")
    assert fingerprint(cfg, tmp_path) != first
    (tmp_path / "transforms.json").write_text('{"changed": 1}')
    second = fingerprint(cfg, tmp_path)
    cfg.pipeline.model.densify.refine_every += 1
    assert len({first, second, fingerprint(cfg, tmp_path)}) == 3


def test_a_missing_subject_or_seed_mesh_is_named_before_training(tmp_path):
    from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
    from eavatar.pipeline.train import check_inputs

    cfg = training_config({"pipeline": {"model": {"init_mesh": str(tmp_path / "none.ply")}}}, tmp_path, tmp_path / "o", "params.yaml:train")
    with pytest.raises(Exception, match=r"transforms.json"):
        check_inputs(cfg, tmp_path, "params.yaml:train")  # no subject: named before nerfstudio starts
    tiny = SyntheticConfig(resolution=24, n_cameras=2, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=2, mesh_subdivisions=3)
    subject = generate_synthetic_subject(tmp_path / "subject", tiny)
    with pytest.raises(FileNotFoundError, match=r"params.yaml:train: pipeline.model.init_mesh .*none.ply: file not found"):
        check_inputs(cfg, subject, "params.yaml:train")


SMALL = {
    "synthetic": {"seed": 0, "resolution": 64, "n_cameras": 3, "n_train_sequences": 2, "n_test_sequences": 1, "timesteps_per_sequence": 8, "mesh_subdivisions": 4},
    "train": {
        "max_num_iterations": 120,
        "steps_per_save": 40,
        "steps_per_eval_image": 100000,
        "mlflow_log_every": 10,
        "pipeline": {
            "model": {
                "avatar": {"init": {"num_points": 1500}},
                "loss": {"lpips_weight": 0.0},
                "densify": {"refine_start": 20, "refine_stop": 100, "refine_every": 10, "grow_grad2d": 0.00005, "max_gaussians": 6000},
                "refinement": {"enabled": True, "expression": True, "start_step": 10},  # tracking residuals from step 10: saved and resumed with the rest
            }
        },
    },
}


def eavatar_train(tmp_path: Path, out: str, **popen) -> subprocess.Popen:
    cmd = [*EAVATAR, "train", "--params", str(tmp_path / "params.yaml"), "--data", str(tmp_path / "data"), "--out", str(tmp_path / out), "--history", str(tmp_path / f"{out}.csv")]
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def canonical(path: Path) -> dict[str, torch.Tensor]:
    """The canonical Gaussians and the tracking residuals of a checkpoint or an avatar.pt."""
    state = torch.load(path, map_location="cpu")  # weights-only, as nerfstudio's own tools load
    if "pipeline" in state:
        refinement = {k.removeprefix("_model.refinement."): v for k, v in state["pipeline"].items() if k.startswith("_model.refinement.")}
        state = {k.removeprefix("_model.avatar."): v for k, v in state["pipeline"].items()}
    else:
        refinement = state["refinement"]
        state = state["state_dict"]
    params = {k.split(".")[-1]: v for k, v in state.items() if k.startswith("canonical.params.")}
    return {**params, "refine_pose": refinement["pose"], "refine_expression": refinement["expression"]}


@pytest.mark.slow
def test_a_killed_training_resumes_mid_refinement_as_if_never_stopped(tmp_path):
    """SIGKILL after the step-40 checkpoint, in the middle of densification, then run again:
    the run goes on from step 40, keeps densifying and refining the tracking, and ends where an
    uninterrupted run ends (the residuals of the poses and codes too)."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(SMALL))
    subprocess.run([*EAVATAR, "synthetic", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "data")], check=True, capture_output=True)
    proc = eavatar_train(tmp_path, "killed")
    ckpt_dir = tmp_path / "killed" / "nerfstudio" / "eavatar" / "run" / "nerfstudio_models"
    deadline = time.monotonic() + 600
    while not (ckpt_dir / "step-000000040.ckpt").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no step-40 checkpoint in 10 minutes"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "avatar.pt").exists()
    saved = sorted(ckpt_dir.glob("step-*.ckpt"))[-1]
    at_kill = canonical(saved)
    assert at_kill["refine_pose"].abs().sum() > 0 and at_kill["refine_expression"].abs().sum() > 0, "the checkpoint lacks the residuals learnt before the kill"
    resumed = eavatar_train(tmp_path, "killed")
    log = resumed.communicate(timeout=900)[0]
    assert resumed.returncode == 0, log
    assert f"resuming from step {int(saved.stem.split('-')[1])} of 120" in log
    final = canonical(tmp_path / "killed" / "avatar.pt")
    assert len(final["means"]) != len(at_kill["means"]), "densification did not continue after the resume"
    assert not torch.equal(final["refine_pose"], at_kill["refine_pose"]), "the residuals did not move after the resume"
    if len(final["means"]) >= len(at_kill["means"]):
        assert (final["means"][: len(at_kill["means"])] - at_kill["means"]).abs().max() > 0, "the Gaussians did not move after the resume"
    steps = [int(line.split(",")[0]) for line in (tmp_path / "killed.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 110, "history.csv repeats or misses steps"

    uninterrupted = eavatar_train(tmp_path, "full")
    log = uninterrupted.communicate(timeout=900)[0]
    assert uninterrupted.returncode == 0, log
    reference = canonical(tmp_path / "full" / "avatar.pt")
    for name, value in reference.items():  # same frames, same RNG: the same avatar
        torch.testing.assert_close(final[name], value, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_the_model_is_a_clear_error(tmp_path):
    """A run left by another version of eavatar (here: one generator parameter fewer in the
    optimiser, as before the FiLM scales) is refused with the checkpoint folder named, not a
    torch traceback from the middle of nerfstudio."""
    small = {**SMALL, "train": {**SMALL["train"], "max_num_iterations": 40, "steps_per_save": 20}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small))
    subprocess.run([*EAVATAR, "synthetic", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "data")], check=True, capture_output=True)
    proc = eavatar_train(tmp_path, "old")
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log
    ckpt_dir = tmp_path / "old" / "nerfstudio" / "eavatar" / "run" / "nerfstudio_models"
    latest = sorted(ckpt_dir.glob("step-*.ckpt"))[-1]
    state = torch.load(latest, map_location="cpu")
    state["optimizers"]["generator"]["param_groups"][0]["params"].pop()
    torch.save(state, latest)
    (tmp_path / "old" / "avatar.pt").unlink()  # same params and code: the run resumes from that checkpoint
    proc = eavatar_train(tmp_path, "old")
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode != 0
    assert f"{ckpt_dir}: cannot resume from this checkpoint" in log and "start the run afresh" in log, log[-2000:]
    assert not (tmp_path / "old" / "avatar.pt").exists()
