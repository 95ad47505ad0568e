"""Eval targets and the eval's config: held-out designs' metrics as relaxed bounds, plus hand-written specs.

Held-out targets are feasible by construction: the design they came from meets them (a test re-simulates it).
"""
from __future__ import annotations

from ..core.design import Metrics
from ..core.errors import ConfigError
from ..core.score import SpecError, Specs
from ..data.dataset import Dataset, metrics_of
from .config import EvalConfig, Tolerance
from .outcome import Target

HAND_TARGETS: tuple[tuple[str, Specs], ...] = (
    ("gain38-pm52", Specs(gain_db=38, pm_deg=52)),
    ("gain60-pm60-ugb1M", Specs(gain_db=60, pm_deg=60, ugb_hz=1e6)),
    ("gain50-pm60-gm10-p20u", Specs(gain_db=50, pm_deg=60, gm_db=10, power_w=20e-6)),
    ("gain70-pm45", Specs(gain_db=70, pm_deg=45)),
    ("gain40-pm50-ugb20M", Specs(gain_db=40, pm_deg=50, ugb_hz=20e6)),
    ("gain45-pm45-bw100k", Specs(gain_db=45, pm_deg=45, bw3db_hz=100e3)),
    ("gain30-pm60-p2u", Specs(gain_db=30, pm_deg=60, power_w=2e-6)),
    ("gain80-pm60-ugb5M", Specs(gain_db=80, pm_deg=60, ugb_hz=5e6)),
)


def relaxed_specs(metrics: Metrics, tol: Tolerance) -> Specs:
    """Bounds a design meets by construction, relaxed by `tol`; GM only when the design has a positive one."""
    gm = metrics.gm_db - tol.gm_db if metrics.gm_db is not None and metrics.gm_db - tol.gm_db > 0 else None
    return Specs(gain_db=metrics.gain_db - tol.gain_db, ugb_hz=metrics.ugb_hz * (1 - tol.relative),
                 pm_deg=max(metrics.pm_deg - tol.pm_deg, 0.1), gm_db=gm,
                 bw3db_hz=metrics.bw3db_hz * (1 - tol.relative), power_w=metrics.power_w * (1 + tol.relative))


def heldout_targets(data: Dataset, config: EvalConfig) -> list[Target]:
    """`config.n` working designs of the chosen split, drawn with the seed, as relaxed-bound targets."""
    rows = data.rows(config.split, config.split_kind)
    if rows.empty:
        raise ConfigError(f"{{split}} {config.split!r} is empty in the {config.split_kind} splits; use test or "
                          f"validation")
    rows = rows.sample(n=min(config.n, len(rows)), random_state=config.seed).sort_values("index")
    targets = []
    for _, row in rows.iterrows():
        metrics = metrics_of(row)
        try:
            targets.append(Target(f"{config.split}-{int(row['index'])}", "heldout",
                                  relaxed_specs(metrics, config.tolerance), metrics))
        except SpecError:  # a metric outside what a user could ask for: not a target
            continue
    return targets


def all_targets(data: Dataset, config: EvalConfig) -> list[Target]:
    """The held-out targets, then (unless config.hand is off) the hand-written ones."""
    hand = [Target(name, "hand", specs) for name, specs in HAND_TARGETS] if config.hand else []
    return heldout_targets(data, config) + hand
