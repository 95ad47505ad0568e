"""Corner-aware sizing: the loop scores each candidate by its worst PVT corner (`icgen size --corners all`).

    found = size_at_corners(Specs(gain_db=40, pm_deg=50), tech, tech.corner_set("all"), resources=resources)
    found.result.met; print(found.report.table())   # met means met at every corner of the set

A `CornerPool` wraps any pool: it simulates every candidate at a screening corner first (the technology's nominal
corner when the set has it) and at the set's other corners only when the candidate clears the specs there, and
answers one worst-corner `SimResult` per design (`worst_result`), which the loop's ranking reads unchanged. Every
simulation counts against the budget (`CornerPool.cost`); the loop never starts a design whose every corner would
not fit in what is left (`CornerPool.max_cost`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import pandas as pd

from ..core.corner import Bias, Corner
from ..core.design import Design
from ..core.errors import ConfigError
from ..core.measure import V2_HEALTH, HealthRule
from ..core.objective import Objective, objective
from ..core.score import Specs, result_shortfall
from ..core.tech import Technology
from ..sim.corners import CornerReport, CornerSignoffConfig, corner_report, worst_result
from ..sim.montecarlo import MonteCarloReport, YieldTarget, check_open_loop, sample_configs
from ..sim.simulate import SimConfig, SimResult, SimulatorPool
from .config import CornerSizeConfig, SizeConfig  # noqa: F401 - CornerSizeConfig: its config
from .loop import Score, SizeResult, default_rank, objective_rank, size
from .resources import SizingResources


def screening_order(corners: tuple[Corner, ...], tech: Technology) -> tuple[Corner, ...]:
    """The corners with the technology's nominal corner first when the set has it (else as listed): a candidate
    is screened there, where it most often passes, so a candidate failing it costs one simulation."""
    nominal = tech.corner_sets["nominal"][0].name
    return tuple(sorted(corners, key=lambda c: c.name != nominal))


def _key(design: Design) -> tuple:
    return tuple(design.to_dict().values())


class CornerPool:
    """A pool that simulates each design at every corner (screening first, see the module docstring) and yields one
    worst-corner result per design, like `SimulatorPool.map`; `results(design)` gives its per-corner results."""

    def __init__(self, pool, corners: tuple[Corner, ...], tech: Technology, specs: Specs,
                 bias: str = Bias.TRACK_VDD, yield_target: YieldTarget | None = None) -> None:
        if not corners:
            raise ConfigError("{corners}: no corners given; use a set such as all or nominal")
        if yield_target is not None:
            check_open_loop(specs)
        self.pool, self.corners, self.specs, self.bias = pool, screening_order(corners, tech), specs, bias
        self.tech, self.yield_target = tech, yield_target
        self.simulated: dict[tuple, list[tuple[Corner, SimResult]]] = {}
        self.monte_carlo: dict[tuple, MonteCarloReport] = {}
        """The Monte Carlo samples of each design that passed every corner (with a yield target)."""
        self.simulations = 0
        """Simulations run so far (every corner of every design, and every Monte Carlo sample)."""

    @property
    def max_cost(self) -> int:
        """The most simulations one design can cost: one per corner, and its Monte Carlo samples."""
        return len(self.corners) + (self.yield_target.samples.samples if self.yield_target else 0)

    def cost(self, result: SimResult) -> int:
        """Simulations a result (as yielded by `map`) cost: 1 when it failed the screening corner, else every corner,
        and the Monte Carlo samples when it passed them all."""
        key = _key(result.design)
        report = self.monte_carlo.get(key)
        return len(self.simulated[key]) + (len(report.passed) if report else 0)

    def unscreened(self, design: Design) -> bool:
        """Whether the design was simulated at only some of the corners (it failed the screening corner)."""
        return len(self.simulated.get(_key(design), ())) < len(self.corners)

    def yield_shortfall(self, design: Design) -> float:
        """What the design's Monte Carlo yield adds to its shortfall (0 without a yield target or samples)."""
        report = self.monte_carlo.get(_key(design))
        if self.yield_target is None or report is None:
            return 0.0
        return self.yield_target.shortfall(sum(report.passed), len(report.passed))

    def _monte_carlo(self, designs: list[Design], config: SimConfig) -> None:
        """Every design's mismatch samples at the technology's nominal corner, all in one parallel batch."""
        target = self.yield_target
        nominal = self.tech.corner_sets["nominal"][0]
        base = dataclasses.replace(config, corner=nominal, bias=self.bias, signoff=False, benches=(), estimates=True)
        drawn = [sample_configs(d, self.tech, base, target.samples) for d in designs]  # the tech's mismatch mode
        batch = [(i, c) for i, (_, configs) in enumerate(drawn) for c in configs]
        results: list[SimResult | None] = [None] * len(batch)
        for index, result in self.pool.map([designs[i] for i, _ in batch], [c for _, c in batch]):
            results[index] = result
        self.simulations += len(batch)
        n = target.samples.samples
        for i, design in enumerate(designs):
            self.monte_carlo[_key(design)] = MonteCarloReport.of_samples(
                design, self.tech, target.samples.seed, self.specs, drawn[i][0], tuple(results[i * n:(i + 1) * n]))

    def results(self, design: Design) -> list[tuple[Corner, SimResult]]:
        """(corner, result) for each corner the design was simulated at, the screening corner first."""
        return list(self.simulated.get(_key(design), []))

    def _map(self, designs: list[Design], config: SimConfig, corner: Corner) -> list[SimResult]:
        out: list[SimResult | None] = [None] * len(designs)
        for index, result in self.pool.map(designs, dataclasses.replace(config, corner=corner, bias=self.bias)):
            out[index] = result
        self.simulations += len(designs)
        return out  # type: ignore[return-value]

    def map(self, designs: Iterable[Design], config: SimConfig) -> Iterator[tuple[int, SimResult]]:
        """Yield (index, worst-corner result) for every design: all designs at the screening corner, then those that
        clear the specs there at each other corner (one batch per corner, in parallel over designs)."""
        designs = list(designs)
        screen, *others = self.corners
        first = self._map(designs, config, screen)
        for design, result in zip(designs, first):
            self.simulated[_key(design)] = [(screen, result)]
        passing = [i for i, r in enumerate(first) if result_shortfall(r, self.specs) == 0.0]
        for corner in others:
            if not passing:
                break
            for i, result in zip(passing, self._map([designs[i] for i in passing], config, corner)):
                self.simulated[_key(designs[i])].append((corner, result))
        worst = [worst_result(self.simulated[_key(design)], self.specs) for design in designs]
        if self.yield_target is not None:
            robust = [d for d, r in zip(designs, worst) if result_shortfall(r, self.specs) == 0.0
                      and len(self.simulated[_key(d)]) == len(self.corners)]
            if robust:
                self._monte_carlo(robust, config)
        yield from enumerate(worst)


@dataclass
class CornerSizeResult:
    """A corner-aware sizing run: the loop's result (its best scored by the worst corner) and the best design's
    per-corner report against the user's specs (only its screening corner when it failed there)."""

    result: SizeResult
    corners: tuple[Corner, ...]
    report: CornerReport | None
    """One row per corner the best design was simulated at; None when nothing was simulated."""
    monte_carlo: MonteCarloReport | None = None
    """The best design's Monte Carlo samples (with a yield target, when it passed every corner)."""
    yield_target: YieldTarget | None = None

    @property
    def skipped(self) -> tuple[str, ...]:
        """Corners the best design was not simulated at (it failed the screening corner)."""
        done = {row.corner.name for row in self.report.rows} if self.report else set()
        return tuple(c.name for c in self.corners if c.name not in done)


def saturation_deficit(result: SimResult, rule: HealthRule = V2_HEALTH, scale_v: float = 0.1) -> float:
    """How far an unhealthy result's devices are from the rule's saturation margin, summed, per `scale_v` (0 for a
    healthy one): a slope towards health where the flat penalty has none."""
    if result.health is None or result.health.healthy:
        return 0.0
    floor = rule.min_saturation_margin_v
    return sum(max(0.0, floor - d.saturation_margin_v) for d in result.health.devices) / scale_v


def corner_score(goal: Objective, scale_v: float = CornerSizeConfig.deficit_scale_v,
                 yield_shortfall=None, unscreened=None, penalty: float = CornerSizeConfig.unscreened_penalty) -> Score:
    """The loop's ranking (by the objective when it improves, else default_rank) of a worst-corner result, with its
    saturation deficit (and `yield_shortfall(design)`, when given) added to the shortfall (still 0 exactly when every
    spec holds on a healthy design), and `penalty` when `unscreened(design)`: a design that failed the screening
    corner is known there only (CornerSizeConfig.unscreened_penalty)."""
    base = objective_rank(goal) if goal.improves else default_rank

    def rank(result: SimResult, specs: Specs) -> tuple:
        key = base(result, specs)
        extra = yield_shortfall(result.design) if yield_shortfall is not None else 0.0
        if unscreened is not None and unscreened(result.design):
            extra += penalty
        return (key[0] + saturation_deficit(result, scale_v=scale_v) + extra,) + tuple(key[1:])

    return rank


def robust_rows(table: pd.DataFrame | None, headroom_v: float) -> pd.DataFrame | None:
    """The training rows whose smallest saturation margin is at least `headroom_v` (all rows when none is)."""
    if table is None or "min_saturation_margin_v" not in table.columns:
        return table
    robust = table[table["min_saturation_margin_v"] >= headroom_v]
    return robust if len(robust) else table


_SURROGATES: dict[str, object] = {}
"""Surrogates of corner tables fitted (or loaded) in this process, by their rows' fingerprint."""


def corner_surrogate(table: pd.DataFrame, log: Callable[[str], None] | None = None):
    """The simulator surrogate fitted on a corner table's designs that work at every corner: it predicts a design's
    worst-corner figures, so the loop's surrogate step aims at every corner at once. Fitted once, cached in the
    user's cache folder by its rows' fingerprint (icgen.sizing.surrogate.surrogate_for), kept in memory after."""
    from .surrogate import rows_fingerprint, surrogate_for

    rows = table[table["working"]]
    fingerprint = rows_fingerprint(rows)
    if fingerprint not in _SURROGATES:
        _SURROGATES[fingerprint] = surrogate_for(rows, None, log=log)
    return _SURROGATES[fingerprint]


def size_at_corners(specs: Specs, tech: Technology, corners: tuple[Corner, ...],
                    config: SizeConfig = SizeConfig(), pool=None, *, corner_config: CornerSizeConfig = CornerSizeConfig(),
                    testbench: str = "feedback", resources: SizingResources | None = None,
                    yield_target: YieldTarget | None = None, retrieval_table: pd.DataFrame | None = None,
                    **size_options) -> CornerSizeResult:
    """`icgen.sizing.loop.size` scored by the worst corner of `corners` (`corner_score`); "met" means met at every
    corner. `config.budget` counts simulations; `size_options` go to `size` (table, progress, cancel, ...).
    Retrieval searches `retrieval_table` (the training designs' worst-corner rows, `icgen.sizing.corner_table`), else
    the one `resources.load_corner_table` builds, else `robust_rows` of the nominal table. With `yield_target`, a
    candidate passing every corner also runs its Monte Carlo samples, and meets the specs only when their yield's
    lower Wilson 95 % bound reaches the target."""
    if yield_target is not None:
        check_open_loop(specs)  # before a pool starts
    if pool is None:
        with SimulatorPool() as own:
            return size_at_corners(specs, tech, corners, config, own, corner_config=corner_config,
                                   testbench=testbench, resources=resources, yield_target=yield_target,
                                   **size_options)
    bias = corner_config.bias
    if retrieval_table is None and resources is not None and resources.load_corner_table is not None:
        retrieval_table = resources.load_corner_table(tech, corners, pool, bias)
    if resources is not None:
        resources = dataclasses.replace(resources, table=retrieval_table if retrieval_table is not None else
                                        robust_rows(resources.table, corner_config.retrieval_headroom_v))
    wants_surrogate = size_options.get("load_surrogate") is not None or \
        (resources is not None and resources.load_surrogate is not None)
    if retrieval_table is not None and corner_config.corner_surrogate and wants_surrogate and \
            int(retrieval_table["working"].sum()) >= corner_config.corner_surrogate_rows:
        size_options["load_surrogate"] = partial(corner_surrogate, retrieval_table)
        if resources is not None:
            resources = dataclasses.replace(resources, load_surrogate=size_options["load_surrogate"])
    if size_options.get("table") is not None:
        size_options["table"] = retrieval_table if retrieval_table is not None else \
            robust_rows(size_options["table"], corner_config.retrieval_headroom_v)
    corner_pool = CornerPool(pool, corners, tech, config.target_specs(specs), bias, yield_target)
    score = corner_score(objective(config.objective), corner_config.deficit_scale_v, corner_pool.yield_shortfall,
                         corner_pool.unscreened, corner_config.unscreened_penalty)
    result = size(specs, tech, config, corner_pool, testbench=testbench, resources=resources, score=score,
                  **size_options)
    report = None
    if result.best is not None:
        simulated = tuple(corner_pool.results(result.best.result.design))
        report = corner_report(result.best.result.design, tech, simulated, specs,
                               CornerSignoffConfig(testbench=testbench, bias=bias))
    mc = corner_pool.monte_carlo.get(_key(result.best.result.design)) if result.best is not None else None
    return CornerSizeResult(result=result, corners=corner_pool.corners, report=report, monte_carlo=mc,
                            yield_target=yield_target)

