"""The ablation as DVC experiments: one run's params, the run stage's definition, and the queue -> report
mechanism end to end in a throwaway git + DVC repository (a stand-in script trains).

The end-to-end test queues real experiments (`dvc exp run --queue`, `dvc queue start -j 2`),
reads them back, detects stale ones (code and params changes), and shows DVC's run cache
replaying the unchanged runs; its fixture stops the queue workers it started.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from eavatar.config import ConfigError
from eavatar.errors import EAvatarError
from eavatar.pipeline import ablation_sweep as sweep
from eavatar.pipeline.ablation import deep_merge, run_params, run_settings
from eavatar.reports.ablation import markdown_table
from eavatar.tracking.runs import dvc_executable

ROOT = Path(__file__).resolve().parents[2]

ABLATION = {
    "variant": "baseline",
    "seed": 0,
    "max_num_iterations": 30,
    "seeds": [0, 1],
    "variants": {
        "baseline": {"pipeline": {"model": {"avatar": {"control": {"enabled": False}}, "densify": {"deformation_split": False}}}},
        "control_split": {"pipeline": {"model": {"avatar": {"control": {"enabled": True}}, "densify": {"deformation_split": True}}}},
    },
}


def test_deep_merge_overrides_leaves_and_keeps_siblings():
    base = {"model": {"avatar": {"control": {"enabled": False, "tau": 0.05}}, "loss": {"rgb_weight": 1.0}}, "seed": 1}
    merged = deep_merge(base, {"model": {"avatar": {"control": {"enabled": True}}}})
    assert merged["model"]["avatar"]["control"] == {"enabled": True, "tau": 0.05}
    assert merged["model"]["loss"] == {"rgb_weight": 1.0} and merged["seed"] == 1
    assert base["model"]["avatar"]["control"]["enabled"] is False  # the input is not modified


def test_run_params_share_the_budget_and_take_the_seed():
    train = {"max_num_iterations": 3500, "machine": {"seed": 42}, "pipeline": {"model": {"densify": {"deformation_split": False, "refine_every": 100}}}}
    p = run_params(train, ABLATION, "control_split", 1)
    assert p["max_num_iterations"] == 30 and p["machine"] == {"seed": 1}
    assert p["pipeline"]["model"]["densify"] == {"deformation_split": True, "refine_every": 100}
    assert p["pipeline"]["model"]["avatar"]["control"]["enabled"] is True


def test_run_settings_read_variant_and_seed_from_params_unless_given(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": {"max_num_iterations": 5}, "ablation": {**ABLATION, "variant": "control_split", "seed": 1}}))
    variant, seed, train = run_settings(params)
    assert (variant, seed, train["max_num_iterations"], train["machine"]["seed"]) == ("control_split", 1, 30, 1)
    assert run_settings(params, "baseline", 0)[:2] == ("baseline", 0)
    with pytest.raises(ConfigError, match=r"ablation.variant: 'full' is not one of ablation.variants \(baseline, control_split\)"):
        run_settings(params, "full")
    params.write_text(yaml.safe_dump({"train": {}, "ablation": {**ABLATION, "seed": "zero"}}))
    with pytest.raises(ConfigError, match="ablation.seed: an integer"):
        run_settings(params)


def test_the_project_run_stage_matches_what_the_report_reads():
    """ablation/dvc.yaml's run stage writes where eavatar.pipeline.ablation_sweep reads, runs this
    checkout's code in a queued copy (python -m), and depends on its own variant only."""
    stage = yaml.safe_load((ROOT / sweep.DVC_FILE).read_text())["stages"][sweep.STAGE]
    cmd = stage["cmd"].split()
    assert cmd[:5] == ["python", "-m", "eavatar.cli.main", "ablation", "run"]
    option = {k: v for k, v in zip(cmd, cmd[1:]) if k.startswith("--")}
    assert (option["--metrics"], option["--history"], option["--crops"]) == (sweep.METRICS, sweep.HISTORY, sweep.CROPS)
    assert Path(option["--out"]) / "avatar.pt" == Path(sweep.AVATAR) and Path(option["--out"]) / "params.yaml" == Path(sweep.PARAMS_OUT)
    assert {sweep.AVATAR, sweep.PARAMS_OUT} <= set(stage["outs"])  # cached: `dvc exp apply` brings them back
    # read from each experiment's commit: uncached, and as metrics / plots (an uncached plain out turns DVC's run cache off)
    assert stage["metrics"] == [{sweep.METRICS: {"cache": False}}]
    assert stage["plots"] == [{sweep.HISTORY: {"cache": False}}, {sweep.CROPS: {"cache": False}}]
    assert {*sweep.KEYS, "train", "ablation.max_num_iterations", "ablation.variants.${ablation.variant}"} == set(stage["params"])
    assert {"data/synthetic", "artifacts/geometry/mesh.ply"} <= set(stage["deps"])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["ablation"]
    assert params["variant"] in params["variants"] and isinstance(params["seed"], int)


# ---- end to end: a throwaway git + DVC repository whose run stage is a stand-in script ----

STAND_IN = '''"""Stands in for `eavatar ablation run`: writes the run stage's outputs from params.yaml ablation."""
import json, pathlib, yaml
from eavatar.pipeline.ablation import write_crops
p = yaml.safe_load(open("params.yaml"))
a = p["ablation"]
variant, seed = a["variant"], a["seed"]
lr = a["variants"][variant]["lr"]
with open({log!r}, "a") as f:
    f.write(f"{{variant}} {{seed}}\\n")  # one line per real execution (a run-cache replay adds none)
size = int(pathlib.Path("data/synthetic/size.txt").read_text())  # the DVC-tracked dep reached the queued copy
out = pathlib.Path("artifacts/ablation/run")
out.mkdir(parents=True, exist_ok=True)
(out / "avatar.pt").write_text(f"avatar {{variant}} {{seed}}")
(out / "params.yaml").write_text(yaml.safe_dump({{"variant": variant, "seed": seed}}))
m = pathlib.Path("metrics/ablation")
m.mkdir(parents=True, exist_ok=True)
psnr = 20 + 2 * lr + 0.1 * seed + size
(m / "run.json").write_text(json.dumps({{"psnr": psnr, "ssim": 0.9, "lpips": 0.05, "mouth_psnr": psnr - 5, "eyes_psnr": psnr - 3, "flicker": 1.0, "num_gaussians": 100.0 * lr}}))
(m / "history.csv").write_text("step,train/psnr,train/num_control,train/num_gaussians\\n" + "".join(f"{{s}},{{psnr - 1 + s / 100}},{{lr}},{{100 * lr}}\\n" for s in range(0, 100, 25)))
crop = [[[int(30 * lr)] * 3] * 2] * 2
write_crops(m / "crops.png", ["seq t=0", "seq t=1"], [crop, crop], [crop, crop])
'''

RUN_STAGE = {
    "vars": ["../params.yaml"],
    "stages": {
        "run": {
            "wdir": "..",
            "cmd": "python stand_in.py --data data/synthetic",
            "deps": ["data/synthetic", "stand_in.py"],
            "params": ["train", "ablation.max_num_iterations", "ablation.variant", "ablation.seed", "ablation.variants.${ablation.variant}"],
            "outs": ["artifacts/ablation/run/avatar.pt", "artifacts/ablation/run/params.yaml"],
            "metrics": [{"metrics/ablation/run.json": {"cache": False}}],
            "plots": [{"metrics/ablation/history.csv": {"cache": False}}, {"metrics/ablation/crops.png": {"cache": False}}],
        }
    },
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def dvc(repo: Path, *args: str) -> str:
    out = subprocess.run([dvc_executable(), *args], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def worker_pids(repo: Path) -> set[int]:
    """Pids of the queue's processes that are still alive (workers and experiments), from DVC's pid files."""
    alive = set()
    for f in (repo / ".dvc" / "tmp" / "exps").rglob("*.pid"):
        try:
            pid = int(f.read_text().strip())
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            continue
        alive.add(pid)
    return alive


def stop_queue(repo: Path, timeout: float = 60.0) -> None:
    """`dvc queue stop`, wait for the workers to exit, then end any left by its pid."""
    subprocess.run([dvc_executable(), "queue", "stop"], cwd=repo, capture_output=True, timeout=120)
    deadline = time.monotonic() + timeout
    while worker_pids(repo) and time.monotonic() < deadline:
        time.sleep(1)
    for pid in worker_pids(repo):
        os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """git + DVC repository: params.yaml, dvc.yaml (a `synthetic` stage whose output is DVC-tracked,
    gitignored data), ablation/dvc.yaml (the run stage, a stand-in script), all committed."""
    root = tmp_path_factory.mktemp("abl") / "repo"
    root.mkdir()
    log = root.parent / "executions.log"
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.autostage", "true")
    params = {"train": {"max_num_iterations": 100}, "ablation": {**ABLATION, "max_num_iterations": 5, "variants": {"baseline": {"lr": 1}, "control_split": {"lr": 2}}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "make_data.py").write_text("import pathlib\npathlib.Path('data/synthetic').mkdir(parents=True, exist_ok=True)\npathlib.Path('data/synthetic/size.txt').write_text('3')\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"synthetic": {"cmd": "python make_data.py", "deps": ["make_data.py"], "outs": ["data/synthetic"]}}}))
    (root / "ablation").mkdir()
    (root / "ablation" / "dvc.yaml").write_text(yaml.safe_dump(RUN_STAGE, sort_keys=False))
    (root / "stand_in.py").write_text(STAND_IN.format(log=str(log)))
    (root / ".gitignore").write_text("/artifacts/\n")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    subprocess.run([dvc_executable(), "repro", "dvc.yaml"], cwd=root, check=True, capture_output=True, env=env)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    yield root
    stop_queue(root)
    assert not worker_pids(root), "queue workers left running"


def executions(repo: Path) -> list[str]:
    log = repo.parent / "executions.log"
    return log.read_text().splitlines() if log.is_file() else []


@pytest.mark.slow  # 4 queued experiments on 2 workers: about 40 s on 2 shared cores
def test_queue_runs_every_variant_and_seed_and_the_report_reads_them(repo, tmp_path):
    states = sweep.queue_ablation(repo, repo / "params.yaml", jobs=2, poll=1.0, echo=lambda s: None)
    assert sorted(n.rsplit("-", 2)[0] for n in states) == ["baseline-s0", "baseline-s1", "control_split-s0", "control_split-s1"]
    assert set(states.values()) == {"Success"}
    assert sorted(executions(repo)) == ["baseline 0", "baseline 1", "control_split 0", "control_split 1"]
    shown = json.loads(dvc(repo, "exp", "show", "--json"))  # variants and seeds are columns of `dvc exp show`
    exp_params = [r["data"]["params"]["params.yaml"]["data"]["ablation"] for e in shown for g in e.get("experiments") or [] for r in g["revs"]]
    assert sorted((p["variant"], p["seed"]) for p in exp_params) == [("baseline", 0), ("baseline", 1), ("control_split", 0), ("control_split", 1)]

    out = tmp_path / "out"
    table = sweep.report_ablation(repo, repo / "params.yaml", out / "ablation.json", out / "docs" / "ablation.md", out / "docs" / "images", out / "avatars", echo=lambda s: None)
    result = json.loads((out / "ablation.json").read_text())
    runs = {(r["variant"], r["seed"]): r for r in result["runs"]}
    assert runs[("baseline", 0)]["psnr"] == pytest.approx(25.0) and runs[("control_split", 1)]["psnr"] == pytest.approx(27.1)
    assert {r["experiment"] for r in result["runs"]} == set(states)
    assert result["protocol"]["subject"] == "data/synthetic" and result["protocol"]["seeds"] == [0, 1]
    assert table == markdown_table(result["summary"]) and "| control_split | 2 | **27.05 ± 0.07**" in table
    page = (out / "docs" / "ablation.md").read_text()
    assert table in page and "**control_split** − baseline (paired by seed): PSNR (dB) +2.000 ± 0.000" in page
    for name in ("ablation_crops.png", "ablation_training.png"):
        assert (out / "docs" / "images" / name).stat().st_size > 0
    assert (out / "avatars" / "control_split" / "seed1" / "train" / "avatar.pt").read_text() == "avatar control_split 1"  # from the DVC cache


@pytest.mark.slow  # 4 more experiments
def test_code_or_params_changes_make_runs_stale_and_the_run_cache_replays_the_rest(repo, tmp_path):
    params = repo / "params.yaml"
    if len(executions(repo)) < 4:
        pytest.skip("needs the experiments of the test above")
    stand_in = repo / "stand_in.py"
    original = stand_in.read_text()
    stand_in.write_text(original + "# an edit\n")  # code the run stage depends on
    collection = sweep.collect(repo, params)
    assert not collection.chosen and len(collection.missing) == 4
    assert all("stand_in.py changed" in c.stale for c in collection.candidates)
    with pytest.raises(EAvatarError, match=r"no up-to-date experiment for 4 run\(s\)[\s\S]*baseline seed 0: newest, baseline-s0-\S+, is stale: stand_in.py changed"):
        sweep.report_ablation(repo, params, tmp_path / "a.json", tmp_path / "a.md", tmp_path / "img")
    stand_in.write_text(original)

    text = params.read_text()
    params.write_text(text.replace("lr: 2", "lr: 3"))  # one variant's overrides
    collection = sweep.collect(repo, params)
    assert sorted(collection.chosen) == [("baseline", 0), ("baseline", 1)]
    assert [c.stale for c in collection.candidates if c.variant == "control_split"] == [["params.yaml: ablation.variants.control_split changed"]] * 2
    git(repo, "commit", "-qam", "control_split: lr 3")  # a new baseline commit: the earlier experiments still count
    before = len(executions(repo))
    sweep.queue_ablation(repo, params, jobs=2, poll=1.0, echo=lambda s: None)
    assert sorted(executions(repo)[before:]) == ["control_split 0", "control_split 1"]  # baseline's runs: replayed from DVC's run cache
    collection = sweep.collect(repo, params)
    assert not collection.missing and len(collection.candidates) == 8
    rows, _, crops = sweep.run_rows(repo, collection)
    assert {(r["variant"], r["seed"]): r["psnr"] for r in rows}[("control_split", 0)] == pytest.approx(29.0)
    assert crops["control_split"][2][0][0, 0, 0] == 90
    table = sweep.experiments_table(collection)
    assert sum(r["used"] for r in table) == 4 and {r["variant"] for r in table if r["stale"]} == {"control_split"}

    from eavatar.ui.experiments import ablation_experiments  # what notebook 04 shows

    shown, summary, note = ablation_experiments(repo)
    assert note == "8 finished experiments of ablation/dvc.yaml, 4 used"
    assert int(shown["used"].sum()) == 4 and shown.loc[("control_split", 0)]["psnr"].dropna().tolist() == [pytest.approx(29.0)]
    assert summary.loc["control_split", "psnr_mean"] == pytest.approx(29.05)


def test_queue_refuses_deps_git_does_not_track(repo):
    (repo / "helper.py").write_text("X = 1\n")
    spec = yaml.safe_load((repo / "ablation" / "dvc.yaml").read_text())
    spec["stages"]["run"]["deps"].append("helper.py")
    (repo / "ablation" / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        with pytest.raises(EAvatarError, match="helper.py: not tracked by git, so a queued experiment would not have it"):
            sweep.queue_ablation(repo, repo / "params.yaml", echo=lambda s: None)
    finally:
        git(repo, "checkout", "ablation/dvc.yaml")
        (repo / "helper.py").unlink()


def test_queue_refuses_an_out_of_date_upstream_stage(repo):
    """Each queued experiment would otherwise reproduce it (the subject, the Stage I mesh) in its own copy."""
    (repo / "make_data.py").write_text((repo / "make_data.py").read_text() + "# changed\n")
    try:
        with pytest.raises(EAvatarError, match=r"stages the ablation depends on are not up to date: synthetic \(`dvc repro synthetic` first"):
            sweep.queue_ablation(repo, repo / "params.yaml", echo=lambda s: None)
    finally:
        git(repo, "checkout", "make_data.py")


@pytest.mark.slow
def test_ablation_run_trains_evaluates_and_crops_one_variant(tmp_path):
    """`eavatar ablation run` on a tiny subject: the outputs of ablation/dvc.yaml's run stage, with
    the "full" row's route (a seed mesh as a variant override; here a copy of the template)."""
    import shutil

    from eavatar.cli.main import main
    from eavatar.data.subject import load_subject
    from eavatar.reports.ablation import load_crops
    from eavatar.tracking.history import read_history
    from tests.ns.test_pipeline_end_to_end import TINY_PARAMS

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**TINY_PARAMS, "ablation": ABLATION}))
    assert main(["synthetic", "--params", str(params), "--out", str(tmp_path / "subject")]) == 0
    seed_mesh = tmp_path / "stage1_mesh.ply"
    shutil.copy(load_subject(tmp_path / "subject").template_mesh, seed_mesh)
    full = deep_merge(ABLATION["variants"]["control_split"], {"pipeline": {"model": {"init_mesh": str(seed_mesh)}}})
    params.write_text(yaml.safe_dump({**TINY_PARAMS, "ablation": {**ABLATION, "variant": "full", "seed": 1, "variants": {**ABLATION["variants"], "full": full}}}))
    out, m = tmp_path / "artifacts" / "run", tmp_path / "metrics"
    argv = ["ablation", "run", "--params", str(params), "--data", str(tmp_path / "subject"), "--out", str(out)]
    argv += ["--metrics", str(m / "run.json"), "--history", str(m / "history.csv"), "--crops", str(m / "crops.png")]
    assert main(argv) == 0
    row = json.loads((m / "run.json").read_text())
    assert row["psnr"] > 10 and {"ssim", "mouth_psnr", "eyes_psnr", "flicker", "num_gaussians", "train_seconds", "step_seconds"} <= set(row)
    used = yaml.safe_load((out / "params.yaml").read_text())
    assert (used["variant"], used["seed"], used["train"]["machine"]["seed"], used["train"]["max_num_iterations"]) == ("full", 1, 1, 30)
    assert used["train"]["pipeline"]["model"]["init_mesh"] == str(seed_mesh)
    assert (out / "avatar.pt").stat().st_size > 0 and any((out / "eval").iterdir())
    assert read_history(m / "history.csv")["step"].iloc[-1] > 0
    labels, truth, renders = load_crops(m / "crops.png")
    assert len(labels) == len(truth) == len(renders) > 0 and truth[0].shape == renders[-1].shape
    assert {label.split()[0] for label in labels} == {"mouth", "eyes"}
    # the eye rows span the lids' range: the most open and the most closed frontal test frames
    from eavatar.pipeline.ablation import crop_frames

    subject = load_subject(tmp_path / "subject")
    blink = [k for k, name in enumerate(subject.expression_labels) if "blink" in name]
    eyes = crop_frames(subject, "eyes")
    frontal = [i for i in subject.split("test") if subject.camera_indices[i] == subject.camera_indices[eyes[0]]]
    closure = subject.expressions[:, blink].mean(1)
    assert closure[eyes].min() == closure[frontal].min() and closure[eyes].max() == closure[frontal].max()
