"""Monte Carlo mismatch of one design: seeded samples in the technology's mismatch mode, simulated on the pool.

    report = monte_carlo(design, tech, specs, MonteCarloConfig(samples=200, seed=0))
    report.yield_fraction, report.wilson, report.offset_v   # `icgen signoff DESIGN --mc 200 --seed 0`

Each sample is the open-loop simulation at the technology's nominal corner with mismatch on (icgen.core.mismatch:
ptm65 moves every device's threshold by a Pelgrom offset; sky130 switches its models' own mismatch on, drawn by ngspice
from a seed per sample); it passes when it is a healthy working amplifier meeting every given spec. The
input-referred offset is VOUT - VIN in the closed DC loop of the feedback testbench.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.design import METRIC_KEYS, METRIC_UNITS, Design
from ..core.errors import ConfigError
from ..core.mismatch import MAX_SAMPLES, MismatchSample, mismatch_mode, wilson_interval
from ..core.score import SPEC_KINDS, Specs, check_specs
from ..core.status import Status
from ..core.tech import Technology
from ..core.units import format_si

if TYPE_CHECKING:
    from .simulate import SimConfig, SimResult


@dataclass(frozen=True)
class MonteCarloConfig:
    """How many mismatch samples, from which seed, and how long one may run."""

    samples: int = 200
    """Monte Carlo samples (each one simulation)."""
    seed: int = 0
    """Seed of the offsets: the same seed gives the same samples."""
    timeout_s: float = 30.0
    """A simulation that runs longer is failed (after one retry on a fresh worker)."""

    def __post_init__(self) -> None:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or not 1 <= self.samples <= MAX_SAMPLES:
            raise ConfigError(f"{{mc}} {self.samples!r} is not a number of samples; use 1 to {MAX_SAMPLES}, e.g. 200")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"{{seed}} {self.seed!r} is not a seed; use 0 or more")


@dataclass(frozen=True)
class YieldTarget:
    """`icgen size --mc N --yield Y`: Monte Carlo on every candidate that passes every corner; it counts as meeting the
    specs only when the lower Wilson 95 % bound of its samples' pass share is at least `min_yield`."""

    samples: MonteCarloConfig = MonteCarloConfig(samples=100)
    """Samples per checked candidate and their seed (the same offsets for every candidate of one size)."""
    min_yield: float = 0.95
    """The lowest acceptable lower Wilson 95 % bound of the yield (0.95 needs 73 of 73 samples passing)."""
    shortfall_per_yield: float = 0.05
    """A lower bound this far below `min_yield` adds 1 to a candidate's shortfall, so the search climbs towards it."""
    checks_in_budget: int = 5
    """Without `--budget`, room for this many Monte Carlo checks is added to the corner budget."""

    def __post_init__(self) -> None:
        if isinstance(self.min_yield, bool) or not isinstance(self.min_yield, (int, float)) \
                or not 0 < self.min_yield < 1:
            raise ConfigError(f"{{yield}} {self.min_yield!r} is not a yield; use a fraction above 0 and below 1, "
                              f"e.g. 0.95")
        reachable = wilson_interval(self.samples.samples, self.samples.samples)[0]
        if reachable < self.min_yield:
            needed = next(n for n in range(1, MAX_SAMPLES + 1) if wilson_interval(n, n)[0] >= self.min_yield)
            raise ConfigError(f"{{mc}} {self.samples.samples}: even with every sample passing the lower 95 % bound is "
                              f"{reachable:.3f}, below --yield {self.min_yield:g}; use --mc {needed} or more")
        if self.shortfall_per_yield <= 0 or self.checks_in_budget < 0:
            raise ConfigError("{shortfall_per_yield} must be > 0 and {checks_in_budget} >= 0")

    def lower_bound(self, passed: int, n: int) -> float:
        return wilson_interval(passed, n)[0]

    def shortfall(self, passed: int, n: int) -> float:
        """0 when the lower bound reaches `min_yield`, else how far below it, in `shortfall_per_yield` units."""
        return max(0.0, self.min_yield - self.lower_bound(passed, n)) / self.shortfall_per_yield

    def budget(self, corner_budget: int) -> int:
        return corner_budget + self.checks_in_budget * self.samples.samples


def sample_passes(result: SimResult, specs: Specs | None) -> bool:
    """A Monte Carlo sample passes when it is a healthy working amplifier meeting every given spec."""
    checks = check_specs(result if result.metrics else None, specs) if specs else []
    healthy = bool(result.health and result.health.healthy)
    return result.status == Status.OK and healthy and all(c.met for c in checks)


def check_open_loop(specs: Specs | None) -> None:
    """A ConfigError for specs Monte Carlo cannot check: those measured by sign-off benches (they run without
    mismatch) and a fixed input common mode."""
    if specs is not None and (specs.benches() or specs.vin_v is not None):
        needs = ", ".join(k for k in specs.given() if SPEC_KINDS[k].benches) or "ugb"
        raise ConfigError(f"{{mc}}: Monte Carlo checks the open-loop specs and the offset only, not {needs} (their "
                          f"benches run without mismatch)")


@dataclass(frozen=True)
class MonteCarloReport:
    """The samples' offsets and results, which passed, the yield with its Wilson 95 % interval, the offset spread."""

    design: Design
    tech: str
    seed: int
    specs: Specs | None
    offsets: tuple[dict[str, float], ...]
    """Each sample's drawn threshold offsets {device: dVth} (pelgrom); {} when the models draw them (models)."""
    results: tuple[SimResult, ...]
    passed: tuple[bool, ...]
    mode: str = "pelgrom"
    """The technology's mismatch mode (icgen.core.mismatch.MISMATCH_MODES)."""
    ngspice_seeds: tuple[int, ...] = ()
    """Each sample's `.options seed=N` (models mode): rerun one sample with it."""

    @classmethod
    def of_samples(cls, design: Design, tech: Technology, seed: int, specs: Specs | None,
                   samples: tuple[MismatchSample, ...], results: tuple[SimResult, ...]) -> "MonteCarloReport":
        """The report of simulated samples (from `sample_configs`), each checked with `sample_passes`."""
        return cls(design=design, tech=tech.name, seed=seed, specs=specs,
                   offsets=tuple(dict(s.offsets_v) for s in samples), results=tuple(results),
                   passed=tuple(sample_passes(r, specs) for r in results), mode=mismatch_mode(tech).name,
                   ngspice_seeds=tuple(s.ngspice_seed for s in samples if s.ngspice_seed is not None))

    @property
    def yield_fraction(self) -> float:
        return sum(self.passed) / len(self.passed)

    @property
    def wilson(self) -> tuple[float, float]:
        """The yield's Wilson score 95 % interval."""
        return wilson_interval(sum(self.passed), len(self.passed))

    @property
    def offset_v(self) -> tuple[float, ...]:
        """Input-referred offset VOUT - VIN of each sample with an operating point."""
        return tuple(r.health.vout_v - r.design.VIN for r in self.results if r.health is not None)

    def metric(self, key: str) -> tuple[float, ...]:
        """One metric over the samples that are working amplifiers (a missing value left out)."""
        return tuple(getattr(r.metrics, key) for r in self.results
                     if r.status == Status.OK and r.metrics is not None and getattr(r.metrics, key) is not None)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.wilson
        return {"samples": len(self.passed), "seed": self.seed, "mismatch": self.mode, "passed": sum(self.passed),
                "yield": self.yield_fraction, "wilson_95": [low, high],
                "offset_v": list(self.offset_v), "specs": self.specs.given() if self.specs else None,
                "metrics": {k: list(self.metric(k)) for k in METRIC_KEYS},
                "offsets": [dict(o) for o in self.offsets],
                **({"ngspice_seeds": list(self.ngspice_seeds)} if self.ngspice_seeds else {})}

    def table(self) -> str:
        """The yield, the offset's mean and sigma, and each metric's 5 % / median / 95 %."""
        low, high = self.wilson
        n = len(self.passed)
        lines = [f"Monte Carlo mismatch ({self.mode}): {n} samples (seed {self.seed}), yield {sum(self.passed)}/{n} = "
                 f"{100 * self.yield_fraction:.1f} % (Wilson 95 %: {100 * low:.1f} .. {100 * high:.1f} %)"]
        offsets = self.offset_v
        if len(offsets) >= 2:
            lines.append(f"  input offset VOUT-VIN   mean {format_si(statistics.fmean(offsets), 'V', 4)}, "
                         f"sigma {format_si(statistics.stdev(offsets), 'V', 4)}")
        for key in METRIC_KEYS:
            values = sorted(self.metric(key))
            if len(values) >= 2:
                pick = [values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))] for q in (0.05, 0.5, 0.95)]
                lines.append(f"  {key:<22} " + " / ".join(format_si(v, METRIC_UNITS[key], 4) for v in pick) +
                             "  (5 % / median / 95 %)")
        return "\n".join(lines)


def sample_configs(design: Design, tech: Technology, base: SimConfig,
                   config: MonteCarloConfig) -> tuple[tuple[MismatchSample, ...], list[SimConfig]]:
    """The technology's mismatch samples of `design` and one simulation config per sample: `base` on the mode's
    technology (its model mismatch switched on, for `models`) with the sample's offsets or ngspice seed."""
    mode = mismatch_mode(tech)
    samples = mode.samples(design, tech, config.samples, config.seed)
    on = dataclasses.replace(base, tech=mode.technology(base.tech))
    return samples, [dataclasses.replace(on, mismatch=s.offsets_v, mismatch_seed=s.ngspice_seed) for s in samples]


def monte_carlo(design: Design, tech: Technology, specs: Specs | None = None,
                config: MonteCarloConfig = MonteCarloConfig(), pool=None) -> MonteCarloReport:
    """Simulate `config.samples` mismatch samples of `design` in parallel (on `pool`, or a pool of its own)."""
    from .simulate import SimConfig, SimulatorPool

    check_open_loop(specs)
    samples, configs = sample_configs(design, tech, SimConfig(tech=tech, estimates=True), config)
    results: list[SimResult | None] = [None] * len(samples)

    def run(simulator) -> None:
        for index, result in simulator.map([design] * len(samples), configs):
            results[index] = result

    if pool is None:
        with SimulatorPool(timeout_s=config.timeout_s) as own:
            run(own)
    else:
        run(pool)
    return MonteCarloReport.of_samples(design, tech, config.seed, specs, samples, tuple(results))
