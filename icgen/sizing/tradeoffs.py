"""What a sizing run with an objective reports besides its design: how far the objective is from the best training
design meeting the same specs, the trade-offs it found (objective against worst margin), and degenerate results.

Objective values are in decades (icgen.core.objective), so "x the best" is 10 ** (value - best value): 1.0 is as
good, 2.0 twice the power (or half the UGB for max-ugb).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core.objective import Objective, degenerate_warnings, objective
from ..core.score import SPEC_KINDS, Specs, check_specs, figures_of
from .loop import SizeResult


@dataclass(frozen=True)
class Tradeoff:
    """One feasible candidate: its objective value, its worst normalised margin, and where it came from."""

    value: float
    worst_margin: float
    source: str
    index: int
    """Its position in SizeResult.candidates."""


def worst_margin(result, specs: Specs) -> float:
    margins = [c.margin / SPEC_KINDS[c.key].scale for c in check_specs(result, specs) if c.margin is not None]
    return min(margins) if margins else math.inf


def tradeoffs(result: SizeResult, feasible_specs: Specs, goal: Objective) -> list[Tradeoff]:
    """Every met candidate (shortfall 0 against the specs with the margin) as a trade-off, best objective first."""
    out = []
    for i, cand in enumerate(result.candidates):
        if cand.shortfall == 0.0:
            value = goal.value(figures_of(cand.result))
            if not math.isnan(value):
                out.append(Tradeoff(value, worst_margin(cand.result, feasible_specs), cand.source, i))
    return sorted(out, key=lambda t: (t.value, -t.worst_margin))


def pareto_front(points: list[Tradeoff]) -> list[Tradeoff]:
    """The non-dominated trade-offs: no other has both a lower objective and a larger worst margin."""
    front, best_margin = [], -math.inf
    for point in sorted(points, key=lambda t: (t.value, -t.worst_margin)):
        if point.worst_margin > best_margin:
            front.append(point)
            best_margin = point.worst_margin
    return front


def best_known(table: pd.DataFrame | None, feasible_specs: Specs, goal: Objective) -> float | None:
    """The objective of the best training design whose recorded figures meet the specs (with the margin)."""
    if table is None or not len(table) or not goal.improves:
        return None
    from .retrieval import rank_rows

    ranked = rank_rows(table, feasible_specs, goal)
    if not len(ranked):
        return None
    from ..core.score import table_rank

    top = ranked.head(1)
    if table_rank(top, feasible_specs)[0][0] != 0.0:
        return None
    row = top.iloc[0]
    value = goal.value({k: (None if pd.isna(v) else v) for k, v in row.items()})
    return None if math.isnan(value) else value


def summary(result: SizeResult, table: pd.DataFrame | None) -> dict:
    """The objective's value, its factor to the best training design meeting the specs, and warnings."""
    goal = objective(result.objective)
    out: dict = {"objective": goal.name, "value": None, "best_training": None, "x_best_training": None,
                 "warnings": []}
    if result.best is None or not result.met:
        return out
    figures = figures_of(result.best.result)
    out["warnings"] = degenerate_warnings(figures, result.specs.given())
    if not goal.improves:
        return out
    out["value"] = goal.value(figures)
    known = best_known(table, result.target_specs or result.specs, goal)
    if known is not None and out["value"] is not None:
        out["best_training"] = known
        out["x_best_training"] = 10 ** (out["value"] - known)
    return out


def plot_pareto(points: list[Tradeoff], path: str | Path, goal: Objective) -> Path:
    """Every feasible candidate (objective against worst margin) with the front highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p.value for p in points], [p.worst_margin for p in points], s=14, color="tab:gray",
               label="feasible candidates")
    ax.plot([p.value for p in front], [p.worst_margin for p in front], marker="o", color="tab:red",
            label="non-dominated")
    ax.set_xlabel(f"objective: {goal.what}")
    ax.set_ylabel("worst normalised margin")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"icgen size --objective {goal.name}: trade-offs found")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def values_in_natural_units(goal: Objective, value: float) -> str:
    """A value in the objective's own units for people: 12.3 µW, 45.6 MHz, 1.2e6 (FoM), 500 µm²."""
    from ..core.units import format_si

    magnitude = 10 ** (-value if goal.name.startswith("max-") else value)
    if goal.name == "min-power":
        return format_si(magnitude, "W")
    if goal.name == "max-ugb":
        return format_si(magnitude, "Hz")
    if goal.name == "min-area":
        return f"{magnitude * 1e12:.4g} µm²"
    return f"{magnitude:.4g} Hz·F/W"

