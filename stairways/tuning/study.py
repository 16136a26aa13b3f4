"""Running a study: storage, sampler and pruner, the trial loop of one worker, and several workers at once.

**Storage.** An Optuna RDB storage (SQLite by default, PostgreSQL for many machines) with heartbeats: a
worker killed mid-trial leaves a RUNNING trial whose heartbeat stops; the next worker to start a trial marks
it FAIL and re-queues its parameters once. Finished trials are committed as they finish, so a crash or
Ctrl+C never loses one, and running the same study again resumes it: it only runs the trials still missing.

**Exactly N trials over any number of workers.** Each worker loops: while fewer than ``trials`` trials are
finished or running, it runs one more. Two workers can pass that check at once; the trial that Optuna
numbers later then sees ``trials`` lower-numbered live trials, is marked FAIL with the user attribute
``overflow`` before it trains, and that worker stops. So the study ends with exactly ``trials`` finished
trials (complete or pruned), none run twice, whatever the number of workers, processes or machines.

**Determinism.** The sampler of a fresh study is seeded with ``seed + worker``; with one worker the same study
config and seed give the same trials on CPU (several workers interleave in an order the OS picks). A worker
that opens a study with trials in it (a resume, a late joiner) reseeds from the trial count, so it never
replays the random draws of an earlier session.

**A study belongs to one recipe.** The study records a digest of the base config, the search space and the
folds; opening it with different ones raises ``ConfigError`` (use another study name).
"""

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from core.digest import value_digest
from core.errors import ConfigError
from core.seeding import derive_seed
from stairways import tracking
from stairways.config import RetrainConfig
from stairways.tuning.ablation import ablation_plan, grid_points
from stairways.tuning.config import TuneConfig
from stairways.tuning.objective import TrialScore, TuningData, prepare_tuning_data, score_config, trial_base
from stairways.tuning.space import config_for, suggest, trial_overrides

__all__ = [
    "FINISHED",
    "StudyRecipe",
    "TrialPlan",
    "finished_trials",
    "open_study",
    "run_study",
    "run_worker",
    "safe_url",
    "storage_for",
]

logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
_HEARTBEAT_SECONDS = 20
_GRACE_SECONDS = 60

TrialPlan = Callable[[optuna.Trial, RetrainConfig], dict[str, Any]]
"""Asks a trial for its flat ``{config path: value}`` parameters (default: the study's search space)."""


class _Overflow(Exception):
    """The study already has its trials: this one is not run."""


@dataclass(frozen=True)
class StudyRecipe:
    """Everything a worker needs to run trials of a study (picklable: workers are spawned processes)."""

    base: RetrainConfig
    tune: TuneConfig
    storage_url: str
    parent_run: tracking.RunHandle | None = None
    kind: str = "tune"
    """``tune`` (the search space) or ``ablate`` (a fixed grid, see :mod:`stairways.tuning.ablation`)."""
    variants: tuple[str, ...] = ()
    """The ablation grid's variants (``kind="ablate"`` only)."""

    def to_json(self) -> str:
        """The recipe for a worker process (:func:`main`)."""
        return json.dumps(
            {
                "base": self.base.model_dump(mode="json"),
                "tune": self.tune.model_dump(mode="json"),
                "storage_url": self.storage_url,
                "parent_run": None if self.parent_run is None else asdict(self.parent_run),
                "kind": self.kind,
                "variants": list(self.variants),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "StudyRecipe":
        raw = json.loads(text)
        parent = raw["parent_run"]
        return cls(
            base=RetrainConfig.model_validate(raw["base"]),
            tune=TuneConfig.model_validate(raw["tune"]),
            storage_url=raw["storage_url"],
            parent_run=None if parent is None else tracking.RunHandle(**parent),
            kind=raw["kind"],
            variants=tuple(raw["variants"]),
        )

    def plan(self) -> "TrialPlan":
        """How a trial gets its parameters: the search space, or the ablation grid."""
        if self.kind == "ablate":
            return ablation_plan(list(self.variants), self.tune.ablation_seeds)
        space = self.tune.space
        return lambda trial, base: suggest(trial, space)

    def digest(self) -> str:
        fixed = self.tune.model_dump(
            mode="json", exclude={"trials", "storage", "seed", "max_pbo", "min_deflated_sharpe"}
        )
        return value_digest(
            {
                "base": self.base.model_dump(mode="json"),
                "tune": fixed,
                "kind": self.kind,
                "variants": list(self.variants),
            }
        )


def storage_for(url: str) -> RDBStorage:
    """The RDB storage at ``url`` with heartbeats (stale trials failed and retried once)."""
    engine: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine["connect_args"] = {"timeout": 120}  # workers wait for SQLite's write lock instead of failing
    else:
        engine["pool_pre_ping"] = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", ExperimentalWarning
            )  # heartbeats are "experimental" since Optuna 2.9
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=_HEARTBEAT_SECONDS,
                grace_period=_GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except Exception as error:  # noqa: BLE001 - SQLAlchemy raises many kinds; the message names the URL
        msg = f"the Optuna storage {safe_url(url)} cannot be opened: {error}"
        raise ConfigError(msg) from error


def safe_url(url: str) -> str:
    """``url`` without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _sampler(tune: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials, multivariate=True)


def _pruner(tune: TuneConfig, kind: str) -> optuna.pruners.BasePruner:
    if kind == "ablate" or tune.pruner == "none":
        return optuna.pruners.NopPruner()
    if tune.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=tune.startup_trials, n_warmup_steps=tune.pruner_warmup_steps
    )


def open_study(recipe: StudyRecipe, *, worker: int = 0) -> optuna.Study:
    """Create the study or load it; ``ConfigError`` if it exists with another recipe."""
    storage = storage_for(recipe.storage_url)
    study = optuna.create_study(
        study_name=recipe.tune.study_name,
        storage=storage,
        direction="maximize",
        sampler=_sampler(recipe.tune, recipe.tune.seed + worker),
        pruner=_pruner(recipe.tune, recipe.kind),
        load_if_exists=True,
    )
    existing = len(study.trials)
    if existing:
        # A resumed (or joining) worker must not replay the random draws a worker made before: reseed from
        # how far the study has got. A fresh study keeps seed + worker, so one worker is reproducible.
        seed = derive_seed(recipe.tune.seed, f"worker-{worker}-after-{existing}-trials")
        study.sampler = _sampler(recipe.tune, seed)
    digest = recipe.digest()
    recorded = study.user_attrs.get("recipe_digest")
    if recorded is None:
        study.set_user_attr("recipe_digest", digest)
        study.set_user_attr("kind", recipe.kind)
        study.set_user_attr("base_config", recipe.base.model_dump(mode="json"))
        study.set_user_attr("space", recipe.tune.space.as_dict())
        for params in (
            grid_points(recipe.variants, recipe.tune.ablation_seeds) if recipe.kind == "ablate" else []
        ):
            study.enqueue_trial(params)  # workers pop queued trials atomically: no grid point runs twice
    elif recorded == digest and recipe.kind == "ablate" and worker == 0:
        _requeue_missing(study, recipe)
    elif recorded != digest:
        msg = (
            f"study {recipe.tune.study_name!r} in {safe_url(recipe.storage_url)} was run with another base config, "
            "search space or folds; give a new study name (or the same settings) to resume"
        )
        raise ConfigError(msg)
    return study


def _requeue_missing(study: optuna.Study, recipe: StudyRecipe) -> None:
    """Queue again the grid points whose trial failed or was interrupted (resume of an ablation)."""
    alive = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    covered = {
        tuple(sorted((trial.params or trial.system_attrs.get("fixed_params", {})).items()))
        for trial in study.get_trials(deepcopy=False, states=alive)
    }
    for params in grid_points(recipe.variants, recipe.tune.ablation_seeds):
        if tuple(sorted(params.items())) not in covered:
            study.enqueue_trial(params)


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete and pruned trials, by number."""
    return sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda trial: trial.number)


def _live_before(study: optuna.Study, number: int) -> int:
    return sum(1 for trial in study.get_trials(deepcopy=False, states=_LIVE) if trial.number < number)


def _run_trial(
    trial: optuna.Trial,
    *,
    recipe: StudyRecipe,
    data: TuningData,
    plan: TrialPlan,
    work_root: Path,
    worker: int,
) -> float:
    if _live_before(trial.study, trial.number) >= recipe.tune.trials:
        trial.set_user_attr("overflow", True)
        raise _Overflow
    started = time.monotonic()
    base = trial_base(recipe.base, recipe.tune)
    flat = plan(trial, base)
    try:
        config = config_for(base, flat)
    except ConfigError as error:
        # A combination the config refuses (e.g. every feature set off): FAIL with the reason, not a traceback.
        trial.set_user_attr("invalid", str(error))
        logger.info("trial %d is not a valid config: %s", trial.number, error)
        return math.nan
    trial.set_user_attr("overrides", trial_overrides(base, flat))
    trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}:{worker}")

    def report(step: int, value: float) -> None:
        trial.report(value, step)
        if trial.should_prune():
            trial.set_user_attr("pruned_at_step", step)
            trial.set_user_attr("wall_seconds", time.monotonic() - started)
            raise optuna.TrialPruned(f"pruned after training cycle {step} (selection score {value:.4f})")

    directory = Path(tempfile.mkdtemp(prefix=f"trial-{trial.number}-", dir=work_root))
    try:
        score: TrialScore = score_config(config, data, work_dir=directory, report=report)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    trial.set_user_attr("fold_scores", [fold.score for fold in score.folds])
    trial.set_user_attr("fold_trades_per_day", [fold.trades_per_day for fold in score.folds])
    trial.set_user_attr("session_returns", score.session_returns)
    trial.set_user_attr("wall_seconds", time.monotonic() - started)
    return score.score


def _log_trial(recipe: StudyRecipe) -> Callable[[optuna.Study, FrozenTrial], None]:
    def log(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get("overflow"):
            return
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        logger.info(
            "trial %d %s (score %s, %.0f s); %d/%d finished",
            trial.number,
            trial.state.name.lower(),
            value,
            trial.user_attrs.get("wall_seconds", 0.0),
            done,
            recipe.tune.trials,
        )
        if recipe.parent_run is not None:
            _track_trial(recipe.parent_run, study, trial)

    return log


def _track_trial(parent: tracking.RunHandle, study: optuna.Study, trial: FrozenTrial) -> None:
    """One nested MLflow run per trial: parameters, per-fold scores, pruning step and wall time."""
    child = tracking.start_child_run(
        parent,
        run_name=f"trial-{trial.number}",
        tags={
            "optuna.study": study.study_name,
            "optuna.trial": str(trial.number),
            "optuna.state": trial.state.name,
        },
    )
    tracking.log_params(child, trial.params)
    metrics: dict[str, float] = {"wall_seconds": float(trial.user_attrs.get("wall_seconds", 0.0))}
    if trial.value is not None:
        metrics["score"] = float(trial.value)
    for index, value in enumerate(trial.user_attrs.get("fold_scores", [])):
        metrics[f"fold_{index}.score"] = float(value)
    if "pruned_at_step" in trial.user_attrs:
        metrics["pruned_at_step"] = float(trial.user_attrs["pruned_at_step"])
    tracking.log_metrics(child, metrics)
    for step, value in sorted(trial.intermediate_values.items()):
        tracking.log_metrics(child, {"cycle_selection_score": float(value)}, step=step)
    tracking.end_run(child, status="FINISHED" if trial.state in FINISHED else "FAILED")


def run_worker(recipe: StudyRecipe, *, worker: int = 0) -> int:
    """Run trials of the study until it has ``tune.trials`` finished or running ones; returns how many ran."""
    study = open_study(recipe, worker=worker)
    data = prepare_tuning_data(recipe.base, recipe.tune)
    if "fold_plan" not in study.user_attrs:
        study.set_user_attr("fold_plan", data.folds.as_dict())
        study.set_user_attr("data_source", data.source)
    chosen = recipe.plan()
    work_root = Path(tempfile.mkdtemp(prefix="stairways-tune-"))
    ran = 0
    failures = 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from _log_trial
    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    try:
        while True:
            fail_stale_trials(study)
            if len(study.get_trials(deepcopy=False, states=_LIVE)) >= recipe.tune.trials:
                break
            before = len(study.get_trials(deepcopy=False))
            study.optimize(
                lambda trial: _run_trial(
                    trial, recipe=recipe, data=data, plan=chosen, work_root=work_root, worker=worker
                ),
                n_trials=1,
                catch=(_Overflow,),
                callbacks=[_log_trial(recipe)],
            )
            latest = study.get_trials(deepcopy=False)[before:]
            if any(trial.user_attrs.get("overflow") for trial in latest):
                break
            if any(trial.state == TrialState.FAIL for trial in latest):
                failures += 1
                if failures > recipe.tune.trials:
                    msg = f"study {recipe.tune.study_name!r}: more failed trials than trials; see the log"
                    raise RuntimeError(msg)
            ran += 1
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    return ran


def run_study(recipe: StudyRecipe, *, workers: int = 1) -> optuna.Study:
    """Run the study to its trial count on ``workers`` processes (1: in this process); returns the study.

    Each extra worker is a fresh interpreter (``python -m stairways.tuning.worker``) given the recipe as
    JSON, so nothing depends on how this process was started. Raises ``RuntimeError`` naming the workers
    that failed; Ctrl+C stops them all (their finished trials stay in the storage).
    """
    if workers < 1:
        msg = f"workers must be >= 1, got {workers}"
        raise ConfigError(msg)
    study = open_study(recipe)  # created once, before any worker races to create it
    if workers == 1:
        run_worker(recipe)
        return study
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="stairways-recipe-", delete=False) as handle:
        handle.write(recipe.to_json())
    recipe_file = Path(handle.name)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stairways.tuning.worker",
                "--recipe",
                str(recipe_file),
                "--worker",
                str(index),
            ]
        )
        for index in range(workers)
    ]
    try:
        codes = [process.wait() for process in processes]
    except BaseException:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        raise
    finally:
        recipe_file.unlink(missing_ok=True)
    failed = [index for index, code in enumerate(codes) if code != 0]
    if failed:
        msg = f"tuning workers {failed} failed (exit codes {[codes[i] for i in failed]}); see their log above"
        raise RuntimeError(msg)
    return study
