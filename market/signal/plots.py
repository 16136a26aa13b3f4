"""Plots of the signal's walk-forward outcome: the reliability diagram of its calibration."""

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from market.signal.walk_forward import SignalResult

__all__ = ["plot_calibration"]


def plot_calibration(result: SignalResult, path: Path) -> Path:
    """Reliability diagrams of P(+1) and P(-1) (pooled and per symbol) as one PNG; returns ``path``.

    Each panel plots mean predicted probability against observed frequency per non-empty bin (marker area
    proportional to the bin's share of samples, so thin bins read as such), with the diagonal of perfect
    calibration and the model's and the prior's Brier scores in the legend; groups without walk-forward
    samples are left out. Uses an Agg canvas on a standalone Figure (no pyplot state).
    """
    figure = Figure(figsize=(11, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for panel, (name, title) in zip(axes, (("up", "P(+1)"), ("down", "P(-1)")), strict=True):
        panel.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--", label="perfect")
        upper = 0.0
        for group, report in result.calibration.items():
            if not report["n_samples"]:
                continue
            entry = report[name]
            bins = [row for row in entry["bins"] if row["count"]]
            predicted = [row["mean_predicted"] for row in bins]
            observed = [row["observed_frequency"] for row in bins]
            total = max(1, sum(row["count"] for row in bins))
            upper = max([upper, *predicted, *observed])
            pooled = group == "pooled"
            (line,) = panel.plot(
                predicted,
                observed,
                linewidth=1.0,
                linestyle=":" if pooled else "-",
                color="black" if pooled else None,
                label=f"{group} (Brier {entry['brier']:.4f}, prior {entry['brier_baseline']:.4f})",
            )
            panel.scatter(
                predicted,
                observed,
                s=[8 + 400 * row["count"] / total for row in bins],
                color=line.get_color(),
                alpha=0.6,
            )
        limit = min(1.0, upper * 1.1 + 0.02)
        panel.set_xlim(0, limit)
        panel.set_ylim(0, limit)
        panel.set_xlabel(f"mean predicted {title}")
        panel.set_ylabel("observed frequency")
        panel.set_title(f"Reliability of {title} (walk-forward)")
        panel.legend(fontsize=7, loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=90)
    return path
