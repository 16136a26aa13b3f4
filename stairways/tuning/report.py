"""What a finished study shows: plots (Optuna's matplotlib renderers), a markdown summary, the ablation chart."""

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen
import optuna  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from stairways.tuning.ablation import SetEffect  # noqa: E402
from stairways.tuning.overfitting import StudyAnalysis  # noqa: E402

__all__ = ["ablation_chart", "ablation_markdown", "study_markdown", "study_plots"]

logger = logging.getLogger(__name__)

_PLOTS: dict[str, Callable[[optuna.Study], Any]] = {
    "optimization_history.png": optuna_plots.plot_optimization_history,
    "param_importances.png": optuna_plots.plot_param_importances,
    "parallel_coordinate.png": optuna_plots.plot_parallel_coordinate,
    "intermediate_values.png": optuna_plots.plot_intermediate_values,
}


def study_plots(study: optuna.Study, directory: Path) -> list[Path]:
    """Render the study's plots as PNG files; a plot the study cannot have yet is skipped with a log line."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, render in _PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna flags its matplotlib renderers as experimental
                axes = render(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            logger.info("plot %s skipped: %s", name, error)
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        figure.set_size_inches(10, 6)
        figure.tight_layout()
        path = directory / name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def study_markdown(analysis: StudyAnalysis, *, fold_plan: dict[str, Any] | None = None) -> str:
    """The study's summary: counts, PBO, deflated Sharpe, the recommendation or why none, the top trials."""
    pbo = analysis.pbo or {}
    dsr = analysis.deflated_sharpe or {}
    lines = [
        f"# Study `{analysis.study_name}`",
        "",
        f"Trials: {analysis.trials_complete} complete, {analysis.trials_pruned} pruned, "
        f"{analysis.trials_failed} failed. Score: mean judged session return (%) over the walk-forward folds "
        "before the test window.",
        "",
        "| check | value |",
        "|---|---|",
        f"| PBO (CSCV, {pbo.get('partitions', '-')} partitions, {pbo.get('sessions', '-')} sessions) "
        f"| {_number(pbo.get('pbo'), 3)} |",
        f"| deflated Sharpe of trial {analysis.best_trial} (given {dsr.get('n_trials', '-')} trials) "
        f"| {_number(dsr.get('probability'), 3)} |",
        "",
    ]
    if analysis.recommended:
        lines.append(f"**Recommended:** trial {analysis.best_trial} (score {_number(analysis.best_score)}).")
    else:
        lines.append("**Nothing recommended:** " + "; ".join(analysis.reasons))
    lines += ["", "| trial | score | fold scores | wall s |", "|---|---|---|---|"]
    for row in analysis.top_trials:
        folds = ", ".join(_number(value, 3) for value in row.get("fold_scores") or [])
        lines.append(
            f"| {row['trial']} | {_number(row['score'])} | {folds} | {_number(row.get('wall_seconds'), 0)} |"
        )
    if fold_plan:
        lines += ["", f"Folds end before the test window, which starts {fold_plan['test_window_starts']}."]
    return "\n".join(lines) + "\n"


def ablation_markdown(effects: Sequence[SetEffect], *, seeds: Sequence[int], folds: int) -> str:
    """Each feature set's effect as a table (positive: the set helps)."""
    lines = [
        "# Feature ablation",
        "",
        f"Effect = score(all sets) - score(set off), mean session return in percent, paired over {folds} folds "
        f"x seeds {list(seeds)}; 95% Student-t interval.",
        "",
        "| feature set | effect | 95% interval | pairs |",
        "|---|---|---|---|",
    ]
    for effect in effects:
        lines.append(
            f"| {effect.feature_set} | {_number(effect.mean)} | [{_number(effect.lower)}, {_number(effect.upper)}] "
            f"| {effect.pairs} |"
        )
    return "\n".join(lines) + "\n"


def ablation_chart(effects: Sequence[SetEffect], path: Path) -> Path:
    """A bar chart of the effects with their intervals."""
    names = [effect.feature_set for effect in effects]
    means = [0.0 if math.isnan(effect.mean) else effect.mean for effect in effects]
    errors = [
        [0.0 if math.isnan(effect.lower) else effect.mean - effect.lower for effect in effects],
        [0.0 if math.isnan(effect.upper) else effect.upper - effect.mean for effect in effects],
    ]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    axes.bar(names, means, yerr=errors, capsize=4, color=["#2a7" if m >= 0 else "#c44" for m in means])
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_ylabel("score(all) - score(set off), % per session")
    axes.set_title("Feature-set ablation (95% intervals over folds x seeds)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
