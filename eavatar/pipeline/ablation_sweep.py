"""The ablation as DVC experiments: queue every variant x seed, then read the finished ones back into the report.

``eavatar ablation queue`` queues one experiment of ablation/dvc.yaml's ``run`` stage per
variant and seed of params.yaml ``ablation`` (``dvc exp run --queue -S ablation.variant=V -S
ablation.seed=K``), starts ``dvc queue start -j N`` workers and waits for them. DVC's run cache
replaces a hand-made reuse cache: an experiment whose command, code deps (the command's import
closure), subject, seed mesh and params are unchanged is replayed in seconds, any change trains
again. ``eavatar ablation report`` takes, for each variant and seed, the newest finished
experiment whose stage lock matches the workspace (what ``dvc status`` would call up to date)
and writes metrics/ablation.json, docs/ablation.md with its figures, and an MLflow run; a run
that is missing or stale is an error that names it and why.
"""

from __future__ import annotations

import io
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from eavatar.config import ConfigError, load_params
from eavatar.errors import EAvatarError
from eavatar.reports import ablation as report
from eavatar.tracking import experiments as exps

#: The run stage and the files it keeps in each experiment (ablation/dvc.yaml; a test holds them equal).
DVC_FILE = "ablation/dvc.yaml"
STAGE = "run"
LOCK_FILE = "ablation/dvc.lock"
METRICS = "metrics/ablation/run.json"
HISTORY = "metrics/ablation/history.csv"
CROPS = "metrics/ablation/crops.png"
AVATAR = "artifacts/ablation/run/avatar.pt"
PARAMS_OUT = "artifacts/ablation/run/params.yaml"
#: The params that tell the runs apart (set per experiment with -S).
KEYS = ("ablation.variant", "ablation.seed")


def protocol_of(params_file: Path) -> tuple[list[str], list[int], dict]:
    """(variants, seeds, ablation section) of params.yaml ``ablation``."""
    ablation = load_params(params_file, "ablation")
    for key in ("variants", "seeds", "max_num_iterations"):
        if key not in ablation:
            raise ConfigError(f"{params_file}: ablation.{key}: missing")
    return list(ablation["variants"]), [int(s) for s in ablation["seeds"]], ablation


def experiment_name(variant: str, seed: int, stamp: str) -> str:
    """``<variant>-s<seed>-<stamp>``: readable in ``dvc exp show`` and unique per queueing."""
    return f"{variant}-s{seed}-{stamp}"


def queue_ablation(root: Path, params_file: Path, jobs: int = 1, wait: bool = True, echo: Callable[[str], None] = print, poll: float = 5.0) -> dict[str, str]:
    """Queue one experiment per variant x seed, start ``jobs`` workers; with ``wait``, block until
    all are done and fail when one failed. Returns experiment name -> state."""
    root = Path(root)
    variants, seeds, _ = protocol_of(params_file)
    spec = (yaml.safe_load((root / DVC_FILE).read_text()) or {}).get("stages", {}).get(STAGE) or {}
    missing = exps.untracked(root, [str(d) for d in spec.get("deps") or []] + [DVC_FILE, str(params_file)])
    if missing:
        raise EAvatarError(f"{root}: {', '.join(missing)}: not tracked by git, so a queued experiment would not have it (git add it first)")
    status = json.loads(exps.run_dvc(root, ["status", "--json", "--with-deps", f"{DVC_FILE}:{STAGE}"]) or "{}")
    upstream = sorted(k for k in status if k != f"{DVC_FILE}:{STAGE}")
    if upstream:  # every experiment would reproduce them in its own copy
        raise EAvatarError(f"{root}: stages the ablation depends on are not up to date: {', '.join(upstream)} (`dvc repro {' '.join(upstream)}` first; make ablation does)")
    runs: dict[str, tuple[str, int]] = {}

    def enqueue(pairs: list[tuple[str, int]]) -> list[str]:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        queued = []
        for variant, seed in pairs:
            name = experiment_name(variant, seed, stamp)
            exps.queue(root, DVC_FILE, {KEYS[0]: variant, KEYS[1]: seed}, name)
            runs[name] = (variant, seed)
            queued.append(name)
            echo(f"queued {name}")
        return queued

    def requeue(lost: list[str]) -> dict[str, str]:
        time.sleep(1.0)  # a new stamp: the lost names stay in DVC's list
        return dict(zip(lost, enqueue([runs[n] for n in lost])))

    names = enqueue([(variant, seed) for variant in variants for seed in seeds])
    exps.start_workers(root, jobs)
    echo(f"{len(names)} experiments on {jobs} worker(s): `dvc queue status`, `dvc queue logs <name>`, `dvc exp show`")
    if not wait:
        return {n: "Queued" for n in names}
    try:
        states = exps.wait(root, names, poll=poll, echo=echo, restart=lambda: exps.start_workers(root, jobs), requeue=requeue)
    except KeyboardInterrupt:
        echo("stopped waiting; the queue goes on in the background (`dvc queue status`, `dvc queue kill <name>`, `dvc queue stop`)")
        raise
    failed = [n for n, s in states.items() if s != "Success"]
    if failed:
        raise EAvatarError(f"{root}: experiments failed: {', '.join(failed)} (`dvc queue logs {failed[0]}`)")
    return states


@dataclass
class Candidate:
    """One finished ablation experiment and whether it stands for the workspace."""

    commit: exps.ExperimentCommit
    variant: str
    seed: int
    lock: dict
    stale: list[str] = field(default_factory=list)


@dataclass
class Collection:
    """The finished ablation experiments, read back: the chosen run of each (variant, seed), every
    candidate with its stale reasons, and the (variant, seed) pairs without a fresh run."""

    variants: list[str]
    seeds: list[int]
    chosen: dict[tuple[str, int], Candidate]
    candidates: list[Candidate]
    missing: list[tuple[str, int]]

    def problems(self) -> list[str]:
        """One line per (variant, seed) without a fresh experiment, with why its newest one is stale."""
        lines = []
        for variant, seed in self.missing:
            mine = [c for c in self.candidates if (c.variant, c.seed) == (variant, seed)]
            why = f"newest, {mine[0].commit.name}, is stale: {'; '.join(mine[0].stale[:4])}" if mine else "no experiment"
            lines.append(f"{variant} seed {seed}: {why}")
        return lines


def collect(root: Path, params_file: Path) -> Collection:
    """Every finished experiment of the run stage, checked against the workspace (the newest fresh
    one of each (variant, seed) of params.yaml ``ablation`` is chosen)."""
    root = Path(root)
    variants, seeds, _ = protocol_of(params_file)
    commits = exps.experiment_commits(root)
    files = exps.read_files(root, [(c.rev, p) for c in commits for p in (LOCK_FILE, DVC_FILE)])
    stage_text = (root / DVC_FILE).read_text() if (root / DVC_FILE).is_file() else ""
    current = exps.current_stage(root, DVC_FILE, STAGE) if commits else None
    candidates = []
    for k, commit in enumerate(commits):
        lock = exps.stage_lock(files[2 * k], STAGE)
        if lock is None:
            continue
        values = next(iter((lock.get("params") or {}).values()), {})
        variant, seed = values.get(KEYS[0]), values.get(KEYS[1])
        if variant not in variants or seed not in seeds:
            continue
        stale = exps.stale_reasons(lock, current, ignore_params=KEYS)
        if (files[2 * k + 1] or b"").decode() != stage_text:
            stale.append(f"{DVC_FILE} changed")
        candidates.append(Candidate(commit, variant, int(seed), lock, stale))
    chosen: dict[tuple[str, int], Candidate] = {}
    for c in candidates:  # newest first
        if not c.stale and (c.variant, c.seed) not in chosen:
            chosen[(c.variant, c.seed)] = c
    missing = [(v, s) for v in variants for s in seeds if (v, s) not in chosen]
    return Collection(variants, seeds, chosen, candidates, missing)


def run_rows(root: Path, collection: Collection) -> tuple[list[dict], dict, dict]:
    """(rows, histories, crops) of the chosen runs: a row is the run's metrics with variant, seed,
    experiment and commit; histories by (variant, seed); the mouth and eye crops of each variant's first seed."""
    from eavatar.tracking.history import read_history

    keys = [(v, s) for v in collection.variants for s in collection.seeds if (v, s) in collection.chosen]
    wanted = [(collection.chosen[key].commit.rev, path) for key in keys for path in (METRICS, HISTORY, CROPS)]
    data = exps.read_files(root, wanted)
    rows, histories, crops = [], {}, {}
    for k, (variant, seed) in enumerate(keys):
        metrics, history, crop = data[3 * k : 3 * k + 3]
        commit = collection.chosen[(variant, seed)].commit
        if metrics is None or history is None or crop is None:
            raise EAvatarError(f"experiment {commit.name} ({commit.rev[:7]}): {METRICS}, {HISTORY} or {CROPS} missing from its commit")
        rows.append({"variant": variant, "seed": seed, **json.loads(metrics), "experiment": commit.name, "rev": commit.rev})
        histories[(variant, seed)] = read_history(io.StringIO(history.decode()))
        if seed == collection.seeds[0]:
            crops[variant] = report.load_crops(crop)
    return rows, histories, crops


def export_avatars(root: Path, collection: Collection, out: Path, echo: Callable[[str], None] = print) -> None:
    """Each chosen run's avatar and training parameters from the DVC cache to
    ``<out>/<variant>/seed<k>/train/avatar.pt`` and ``params.yaml`` (benchmarks/bench_control_cost.py reads them)."""
    import dvc.api

    for (variant, seed), c in sorted(collection.chosen.items()):
        folder = out / variant / f"seed{seed}"
        (folder / "train").mkdir(parents=True, exist_ok=True)
        try:
            for src, dst in ((AVATAR, folder / "train" / "avatar.pt"), (PARAMS_OUT, folder / "params.yaml")):
                dst.write_bytes(dvc.api.read(src, repo=str(root), rev=c.commit.rev, mode="rb"))
        except Exception as err:  # noqa: BLE001 - the report stands without the avatars
            echo(f"{c.commit.name}: avatar not in the DVC cache ({type(err).__name__}); `dvc exp apply {c.commit.name}` or `dvc pull`")


def report_ablation(root: Path, params_file: Path, metrics: Path, page: Path, figures: Path, avatars: Path | None = None, echo: Callable[[str], None] = print) -> str:
    """``eavatar ablation report``: metrics/ablation.json, the docs page, its figures and an MLflow
    run from the fresh experiments; returns the markdown table."""
    from eavatar.tracking.mlflow_run import TrackedRun

    root = Path(root)
    collection = collect(root, params_file)
    if collection.missing:
        raise EAvatarError(f"{root / DVC_FILE}: no up-to-date experiment for {len(collection.missing)} run(s) (`make ablation` or `eavatar ablation queue`):\n  " + "\n  ".join(collection.problems()))
    variants, seeds = collection.variants, collection.seeds
    rows, histories, crops = run_rows(root, collection)
    first = collection.chosen[(variants[0], seeds[0])].lock
    args = shlex.split(str(first.get("cmd", "")))
    subject = args[args.index("--data") + 1] if "--data" in args[:-1] else "?"
    ablation = load_params(params_file, "ablation")
    protocol = {"subject": subject, "split": "test", "max_steps": int(ablation["max_num_iterations"]), "seeds": seeds, "variants": ablation["variants"], "dvc_stage": f"{DVC_FILE}:{STAGE}"}
    summary = report.summarise(rows, variants)
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"protocol": protocol, "runs": rows, "summary": summary}, indent=1))
    table = report.markdown_table(summary)
    images = report.figures(crops, histories, variants, seeds, figures)
    report.write_report(page, table, protocol, rows, images)
    if avatars is not None:
        export_avatars(root, collection, avatars, echo)
    with TrackedRun(run_name="ablation", tags={"stage": "ablation"}) as tracked:
        tracked.log_params({k: v for k, v in protocol.items() if k != "variants"} | {"variants": list(variants), "experiments": [r["experiment"] for r in rows]})
        for s in summary:
            tracked.log_metrics({f"{s['variant']}/{k}": v for k, v in s.items() if k.endswith(("_mean", "_std")) and v is not None})
        tracked.log_artifacts([metrics, page, *images], artifact_path="ablation")
    return table


def experiments_table(collection: Collection) -> list[dict[str, Any]]:
    """One row per finished ablation experiment (newest first): variant, seed, name, commit,
    baseline, time, whether the report uses it, and why not when it is stale."""
    used = {id(c) for c in collection.chosen.values()}
    return [
        {
            "variant": c.variant,
            "seed": c.seed,
            "experiment": c.commit.name,
            "rev": c.commit.rev[:7],
            "baseline": c.commit.baseline[:7],
            "time": time.strftime("%Y-%m-%d %H:%M", time.localtime(c.commit.time)),
            "used": id(c) in used,
            "stale": "; ".join(c.stale),
        }
        for c in collection.candidates
    ]
