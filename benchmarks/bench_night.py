"""The night's own cost: the default night as plain functions against the Prefect flow with MLflow.

Run from the repository root: ``python benchmarks/bench_night.py [--repeats N] [--quick] [--output FILE]``.
Writes ``bench-results/night.json`` and prints a table. ``--quick`` uses a tiny night (8 sessions, 2 short
cycles) to check the script; its figures say nothing about the default night.

Every arm runs in its own fresh Python process (imports count in all of them alike), in its own temporary
folder (its own MLflow SQLite store, tables created before the timer as a production store exists before a
night; no registry champion, no caches), and the arms alternate ``--repeats`` times (default 2), so a slow
moment of the shared machine does not land on one arm only. Each arm keeps one Prefect home across repeats,
like a user's ``~/.prefect``; the temporary server's is warmed up once, untimed, so its database exists:

* ``plain``: the same stages as the flow, called as the plain functions the tasks wrap (``stairways.pipeline``,
  ``training.cycles.run_cycles``, ``stairways.assessment``): load, normalize, QC, features, labels, windows,
  signal, training, scenarios, assessment, the gate (candidate and signal rule). No Prefect, no MLflow, no
  registry.
* ``flow``: ``flows.retrain.nightly_retrain`` against an already running Prefect server (started once by this
  script, like ``make serve``), tracking into MLflow: every task, artifact, metric, the model version, the
  replay check in a fresh process and the night report.
* ``flow+temp-server``: the same flow with no Prefect API configured, as ``make run`` does: Prefect starts and
  stops its temporary local server inside the process.

Reported: the median wall time of each arm, the overhead of orchestration and tracking
(``flow / plain - 1``; the goal is at most 15%), what the temporary server adds, the server's start time, and
the biggest contributors: the flow's task runs by wall time (from the Prefect API), next to the plain stage
they wrap, and the tracking-only tasks (``record-*``, registry, replay, report) that have no plain twin.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["main"]

ARMS = ("plain", "flow", "flow+temp-server")
QUICK: dict[str, Any] = {
    "data": {"synthetic": {"sessions": 8}},
    "window": {"selection_sessions": 2, "test_sessions": 2, "min_train_sessions": 3},
    "training": {
        "cycles": 2,
        "steps_per_cycle": 512,
        "progress_bar": False,
        "ppo": {"n_envs": 2, "n_steps": 128, "batch_size": 128},
    },
}


def _config(quick: bool, folder: Path) -> Any:
    from stairways.config import RetrainConfig

    overrides: dict[str, Any] = dict(QUICK) if quick else {}
    overrides["tracking"] = {
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "experiment_name": "bench-night",
    }
    overrides.setdefault("training", {})
    overrides["training"] = {**overrides["training"], "progress_bar": False}
    return RetrainConfig.model_validate(overrides)


def _plain(config: Any, folder: Path) -> dict[str, float]:
    """The night's stages as plain functions; seconds per stage."""
    from stairways import assessment, pipeline
    from stairways.assessment import ChampionInput
    from training.cycles import run_cycles
    from training.outcome import night_health

    stages: dict[str, float] = {}

    def timed(name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        value = call(*args, **kwargs)
        stages[name] = time.perf_counter() - started
        return value

    market = timed("load-market-data", pipeline.load_market, config)
    prepared = timed("normalize-bars", pipeline.prepare_bars, market.bars, config)
    timed("run-quality-checks", pipeline.quality_check, prepared, config)
    features = timed("build-features", pipeline.features_for, prepared, config)
    labels = timed("build-labels", pipeline.labels_for, prepared, config)
    plan = timed("plan-windows", pipeline.split_windows, features, config)
    signal = timed("build-signal", pipeline.signal_for, features, labels, plan, config)
    data = timed("assemble-training-data", pipeline.training_data, prepared, features, signal, plan, config)
    outcome = timed(
        "train-cycle",
        run_cycles,
        train=data.train,
        selection=data.selection,
        config=config.training,
        seed=config.seed,
        output_dir=folder / "cycles",
    )
    scenarios = timed(
        "build-scenarios", assessment.build_scenarios, data, signal, config, bar_minutes=prepared.bar_minutes
    )
    result = timed(
        "assess-candidate",
        assessment.assess,
        outcome.best_checkpoint,
        ChampionInput(None),
        scenarios,
        config,
        bar_minutes=prepared.bar_minutes,
        plots_dir=folder / "plots",
    )
    health = night_health(outcome.cycles, config.training)
    started = time.perf_counter()
    assessment.judge(
        result,
        config,
        trials=[list(cycle.selection_returns) for cycle in outcome.cycles if not cycle.rolled_back],
        controller_health=None if health is None else health.as_metrics(prefix=""),
    )
    if "signal_rule" in result.baselines:
        assessment.judge(result, config, policy="signal_rule")
    stages["decide-gate"] = time.perf_counter() - started
    return stages


def _task_times(flow_run_id: str) -> dict[str, float]:
    """Wall seconds per task name (summed over the task's runs) of a flow run, from the Prefect API."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> dict[str, float]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200
            )
        times: dict[str, float] = {}
        for run in runs:
            if run.start_time is None or run.end_time is None:
                continue
            name = run.name.rsplit("-", 1)[0]
            times[name] = times.get(name, 0.0) + (run.end_time - run.start_time).total_seconds()
        return times

    return asyncio.run(read())


def run_arm(arm: str, quick: bool, folder: Path) -> dict[str, Any]:
    """One arm in this process (called in a fresh interpreter by :func:`main`) in ``folder``, whose MLflow
    store :func:`_prepare_folder` created; prints nothing itself."""
    started = time.perf_counter()
    os.environ["STAIRWAYS_STATE_DIR"] = str(folder / "state")
    os.chdir(folder)
    config = _config(quick, folder)
    if arm == "plain":
        stages = _plain(config, folder)
        return {"wall_s": time.perf_counter() - started, "stages": stages}
    from flows.retrain import nightly_retrain

    state = nightly_retrain(config, return_state=True)
    wall = time.perf_counter() - started
    if not state.is_completed():
        message = f"the flow ended {state.name}: {state.message}"
        raise RuntimeError(message)
    tasks = {} if arm == "flow+temp-server" else _task_times(str(state.state_details.flow_run_id))
    return {"wall_s": wall, "stages": tasks}


def _prepare_folder(folder: Path) -> None:
    """An empty MLflow store with its tables created, as a production store exists before a night (creating
    the tables of a new SQLite store takes about 5 s, once per store, not per night)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()


def _start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    from ops.supervisor import free_port, wait_for_http

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = os.environ | {
        "PREFECT_HOME": str(folder / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": url,
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"{url}/health", timeout=180.0, interval=0.25)
    except BaseException:
        process.kill()
        raise
    return process, url, time.perf_counter() - started


def _environment(api_url: str | None, home: Path) -> dict[str, str]:
    env = os.environ | {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_HOME": str(home),
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    return env


def _warm_up_home(home: Path) -> None:
    """Start and stop the temporary server once in ``home`` (untimed): its database exists afterwards, as in
    a user's ~/.prefect after the first night."""
    command = [sys.executable, "-m", "prefect", "flow-run", "ls", "--limit", "1"]
    subprocess.run(command, env=_environment(None, home), capture_output=True, check=True, cwd=ROOT)


def _child(arm: str, quick: bool, api_url: str | None, home: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-night-") as name:
        folder = Path(name)
        _prepare_folder(folder)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--arm",
            arm,
            "--folder",
            str(folder),
            *(["--quick"] if quick else []),
        ]
        started = time.perf_counter()
        completed = subprocess.run(
            command, env=_environment(api_url, home), capture_output=True, text=True, check=False, cwd=ROOT
        )
        process_wall = time.perf_counter() - started
    if completed.returncode != 0:
        message = f"arm {arm} failed:\n{completed.stderr[-3000:]}"
        raise RuntimeError(message)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = process_wall
    return result


def _table(results: dict[str, list[dict[str, Any]]], server_start: float) -> tuple[str, dict[str, Any]]:
    median = {arm: statistics.median(run["process_wall_s"] for run in runs) for arm, runs in results.items()}
    plain, flow, temp = median["plain"], median["flow"], median["flow+temp-server"]
    summary = {
        "median_process_wall_s": median,
        "overhead_flow_vs_plain": flow / plain - 1.0,
        "overhead_temp_server_flow_vs_plain": temp / plain - 1.0,
        "temp_server_extra_s": temp - flow,
        "server_start_s": server_start,
    }
    runs_text = {arm: ", ".join(f"{run['process_wall_s']:.1f}" for run in results[arm]) for arm in ARMS}
    overhead = 100 * summary["overhead_flow_vs_plain"]
    with_server = 100 * summary["overhead_temp_server_flow_vs_plain"]
    lines = [
        "| arm | median wall s (whole process) | runs |",
        "|---|---|---|",
        *[f"| {arm} | {median[arm]:.1f} | {runs_text[arm]} |" for arm in ARMS],
        "",
        f"Orchestration + tracking overhead (flow vs plain): {overhead:+.1f}% (goal: at most +15%)",
        f"With the temporary server (make run): {with_server:+.1f}%; it adds {summary['temp_server_extra_s']:.1f} s",
        f"A Prefect server's start (until /api/health answers): {server_start:.1f} s",
        "",
        "| step | plain s | flow task s | flow - plain s |",
        "|---|---|---|---|",
    ]
    plain_stages = {
        name: statistics.median(run["stages"].get(name, 0.0) for run in results["plain"])
        for name in results["plain"][0]["stages"]
    }
    flow_tasks = {
        name: statistics.median(run["stages"].get(name, 0.0) for run in results["flow"])
        for name in {key for run in results["flow"] for key in run["stages"]}
    }
    rows = []
    for name in set(plain_stages) | set(flow_tasks):
        rows.append((name, plain_stages.get(name), flow_tasks.get(name)))
    rows.sort(key=lambda row: -((row[2] or 0.0) - (row[1] or 0.0)))
    for name, plain_s, flow_s in rows:
        difference = (flow_s or 0.0) - (plain_s or 0.0)
        plain_text = "-" if plain_s is None else f"{plain_s:.2f}"
        flow_text = "-" if flow_s is None else f"{flow_s:.2f}"
        lines.append(f"| {name} | {plain_text} | {flow_text} | {difference:+.2f} |")
    accounted = sum(flow_tasks.values())
    outside = flow - accounted
    plain_outside = plain - sum(plain_stages.values())
    tracking_only = sum(value for name, value in flow_tasks.items() if name not in plain_stages)
    lines += [
        "",
        f"Process time outside the stages (imports, start-up, bookkeeping): plain {plain_outside:.1f} s, flow "
        + f"{outside:.1f} s (outside its task runs)",
        f"Tasks with no plain twin (tracking, registry, replay, report): {tracking_only:.1f} s "
        + f"({100 * tracking_only / plain:.1f}% of plain)",
        "The rest (Prefect and MLflow imports, task-run bookkeeping, stages run as tasks): "
        + f"{flow - plain - tracking_only:.1f} s ({100 * (flow - plain - tracking_only) / plain:.1f}% of plain)",
    ]
    summary["plain_outside_stages_s"] = plain_outside
    summary["tracking_only_tasks_s"] = tracking_only
    summary["plain_stages_s"] = plain_stages
    summary["flow_tasks_s"] = flow_tasks
    summary["flow_outside_tasks_s"] = flow - accounted
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.arm is not None:
        print(json.dumps(run_arm(args.arm, args.quick, args.folder)))
        return 0
    output = args.output or ROOT / "bench-results" / ("night-quick.json" if args.quick else "night.json")
    with tempfile.TemporaryDirectory(prefix="bench-night-server-") as name:
        home = Path(name)
        server, url, server_start = _start_server(home)
        _warm_up_home(home / "flow+temp-server")
        try:
            results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
            for repeat in range(args.repeats):
                for arm in ARMS:
                    run = _child(arm, args.quick, url if arm == "flow" else None, home / arm)
                    results[arm].append(run)
                    print(
                        f"repeat {repeat + 1}/{args.repeats} {arm}: {run['process_wall_s']:.1f} s", flush=True
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
    table, summary = _table(results, server_start)
    print(table)
    output.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
        "quick": args.quick,
        "repeats": args.repeats,
        "summary": summary,
        "runs": results,
    }
    output.write_text(json.dumps(record, indent=2))
    print(f"written {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
