"""Data drift between a reference sample (the champion's training data) and tonight's: PSI and a KS test.

Per column, :func:`population_stability_index` bins both samples by the reference's deciles (quantile edges,
open at both ends) and sums ``(p_now - p_ref) * ln(p_now / p_ref)`` over the bins (empty bins count as a tiny
share, ``1e-6``, so the sum stays finite). Common reading: below 0.1 stable, 0.1-0.25 a moderate shift, above
0.25 a large one. Beside it, the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``) says whether the
two samples could come from one distribution. A column **drifts** when its PSI exceeds ``psi_warn`` or the
KS p-value falls below ``ks_pvalue``.
"""

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

__all__ = ["DriftRow", "DriftThresholds", "drift_markdown", "drift_table", "population_stability_index"]

_FLOOR = 1e-6


class DriftThresholds(BaseModel):
    """When a column counts as drifted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    psi_warn: float = Field(0.25, gt=0.0, description="PSI above this is a large shift: warn.")
    ks_pvalue: float = Field(
        0.001, gt=0.0, lt=1.0, description="A KS p-value below this says the distributions differ: warn."
    )
    bins: int = Field(10, ge=2, description="Reference quantile bins of the PSI.")


@dataclass(frozen=True)
class DriftRow:
    """One column's drift figures."""

    column: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    reference_rows: int
    current_rows: int
    drifted: bool

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)


def _finite(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]


def population_stability_index(reference: np.ndarray, current: np.ndarray, *, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` over the reference's quantile bins (NaN if either is empty)."""
    expected, actual = _finite(reference), _finite(current)
    if expected.size == 0 or actual.size == 0:
        return math.nan
    edges = np.unique(np.quantile(expected, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    expected_share = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=edges.size + 1)
    actual_share = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=edges.size + 1)
    p_ref = np.maximum(expected_share / expected.size, _FLOOR)
    p_now = np.maximum(actual_share / actual.size, _FLOOR)
    return float(np.sum((p_now - p_ref) * np.log(p_now / p_ref)))


def drift_table(
    reference: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray], thresholds: DriftThresholds
) -> list[DriftRow]:
    """PSI and KS for every column both samples have, in ``reference``'s order."""
    rows: list[DriftRow] = []
    for column, values in reference.items():
        if column not in current:
            continue
        expected, actual = _finite(values), _finite(current[column])
        psi = population_stability_index(expected, actual, bins=thresholds.bins)
        if expected.size and actual.size:
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", RuntimeWarning
                )  # "exact calculation unsuccessful": asymptotic p
                test = stats.ks_2samp(expected, actual)
            statistic, pvalue = float(test.statistic), float(test.pvalue)
        else:
            statistic, pvalue = math.nan, math.nan
        drifted = (psi > thresholds.psi_warn) or (pvalue < thresholds.ks_pvalue)
        rows.append(
            DriftRow(column, psi, statistic, pvalue, int(expected.size), int(actual.size), bool(drifted))
        )
    return rows


def drift_markdown(rows: list[DriftRow], *, reference: str) -> str:
    """The drift table as markdown, drifted columns first."""
    lines = [
        f"Drift against {reference}: PSI over the reference's deciles and a two-sample KS test.",
        "",
        "| column | PSI | KS statistic | KS p-value | drifted |",
        "|---|---|---|---|---|",
    ]
    for row in sorted(
        rows, key=lambda item: (not item.drifted, -(item.psi if math.isfinite(item.psi) else 0.0))
    ):
        lines.append(
            f"| {row.column} | {row.psi:.3f} | {row.ks_statistic:.3f} | {row.ks_pvalue:.2g} | "
            f"{'**yes**' if row.drifted else 'no'} |"
        )
    return "\n".join(lines) + "\n"
