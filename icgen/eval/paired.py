"""Paired comparison of two eval methods on the same targets: McNemar's exact test on met / not met, and the
difference in met share with Newcombe's 95 % interval for paired proportions (his method 10: Wilson score limits
of each share, combined with the phi correlation of the pairs).

    paired = compare_paired([True, False, ...], [False, False, ...])   # method A's and B's met, target by target
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The standard normal's 97.5 % quantile: two-sided 95 % limits."""
PAIRS: tuple[tuple[str, str], ...] = (("loop", "retrieval"), ("model-greedy", "retrieval"),
                                      ("model-greedy", "retrieval-move"), ("model-loop", "retrieval-local"),
                                      ("model-loop", "retrieval"), ("retrieval-local", "retrieval"))
"""The report's paired comparisons (A vs B), each shown when both methods ran."""


@dataclass(frozen=True)
class Paired:
    """Two methods' met / not met on the same n targets."""

    n: int
    both: int
    """Targets both methods met."""
    only_a: int
    """Targets A met and B did not (discordant)."""
    only_b: int
    """Targets B met and A did not (discordant)."""
    neither: int
    p_value: float
    """McNemar's exact two-sided p: binomial(only_a; only_a + only_b, 1/2); 1 without discordant pairs."""
    low: float
    """Lower 95 % limit of `difference` (Newcombe's method 10)."""
    high: float
    """Upper 95 % limit of `difference`."""

    @property
    def met_a(self) -> float:
        return (self.both + self.only_a) / self.n if self.n else math.nan

    @property
    def met_b(self) -> float:
        return (self.both + self.only_b) / self.n if self.n else math.nan

    @property
    def difference(self) -> float:
        """A's met share minus B's."""
        return (self.only_a - self.only_b) / self.n if self.n else math.nan


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p-value from the discordant counts (a binomial test at 1/2)."""
    if only_a + only_b == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for one proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired(both: int, only_a: int, only_b: int, neither: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's (1998) method-10 interval for the difference of paired proportions p_A - p_B."""
    n = both + only_a + only_b + neither
    if n == 0:
        return -1.0, 1.0
    met_a, met_b = both + only_a, both + only_b
    p_a, p_b = met_a / n, met_b / n
    low_a, high_a = wilson(met_a, n, z)
    low_b, high_b = wilson(met_b, n, z)
    denominator = met_a * (n - met_a) * met_b * (n - met_b)
    phi = (both * neither - only_a * only_b) / math.sqrt(denominator) if denominator else 0.0
    down = math.sqrt(max((p_a - low_a) ** 2 - 2 * phi * (p_a - low_a) * (high_b - p_b) + (high_b - p_b) ** 2, 0.0))
    up = math.sqrt(max((high_a - p_a) ** 2 - 2 * phi * (high_a - p_a) * (p_b - low_b) + (p_b - low_b) ** 2, 0.0))
    difference = p_a - p_b
    return max(-1.0, difference - down), min(1.0, difference + up)


def compare_paired(met_a: list[bool], met_b: list[bool]) -> Paired:
    """A's and B's met, target by target (the same targets in the same order)."""
    if len(met_a) != len(met_b):
        raise ValueError(f"paired comparison of {len(met_a)} and {len(met_b)} outcomes: the targets must match")
    pairs = [(bool(a), bool(b)) for a, b in zip(met_a, met_b)]
    both = sum(a and b for a, b in pairs)
    only_a = sum(a and not b for a, b in pairs)
    only_b = sum(b and not a for a, b in pairs)
    neither = len(pairs) - both - only_a - only_b
    low, high = newcombe_paired(both, only_a, only_b, neither)
    return Paired(n=len(pairs), both=both, only_a=only_a, only_b=only_b, neither=neither,
                  p_value=mcnemar_exact(only_a, only_b), low=low, high=high)


def bootstrap_difference(a: list[float | None], b: list[float | None], quantile: float = 0.5, draws: int = 10000,
                         seed: int = 0) -> tuple[float, float, float]:
    """A's quantile minus B's (the median by default) over the same targets, and a paired bootstrap 95 % percentile
    interval (the targets resampled with replacement, A and B together). None (no simulated design: an unparseable or
    invalid answer) counts as an infinite shortfall; the quantile is the nearest order statistic, so that it is
    finite while under the share of infinite values; a resample where both are infinite counts as no difference."""
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"paired bootstrap of {len(a)} and {len(b)} values: the targets must match and be some")
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be in [0, 1], not {quantile}")
    x = np.array([math.inf if v is None else float(v) for v in a])
    y = np.array([math.inf if v is None else float(v) for v in b])

    def difference(i):
        with np.errstate(invalid="ignore"):
            d = (np.quantile(x[i], quantile, axis=-1, method="nearest")
                 - np.quantile(y[i], quantile, axis=-1, method="nearest"))
        return np.where(np.isnan(d), 0.0, d)

    rng = np.random.default_rng(seed)
    resampled = difference(rng.integers(0, len(x), size=(draws, len(x))))
    low, high = np.percentile(resampled, [2.5, 97.5], method="nearest")  # no interpolation between infinities
    return float(difference(np.arange(len(x)))), float(low), float(high)


def paired_rows(outcomes: list, kind: str = "heldout", pairs: tuple[tuple[str, str], ...] = PAIRS) -> list[dict]:
    """One row per pair of methods that both ran on targets of this kind, over the targets both have outcomes for."""
    met: dict[str, dict[str, bool]] = {}
    for outcome in outcomes:
        if outcome.kind == kind:
            met.setdefault(outcome.method, {})[outcome.target] = bool(outcome.met)
    rows = []
    for a, b in pairs:
        if a not in met or b not in met:
            continue
        shared = [t for t in met[a] if t in met[b]]
        if not shared:
            continue
        result = compare_paired([met[a][t] for t in shared], [met[b][t] for t in shared])
        rows.append({"A": a, "B": b, "targets": result.n, "A met %": 100 * result.met_a, "B met %": 100 * result.met_b,
                     "only A": result.only_a, "only B": result.only_b, "A − B (pp)": 100 * result.difference,
                     "95 % CI (pp)": f"{100 * result.low:.1f} to {100 * result.high:.1f}",
                     "McNemar p": result.p_value})
    return rows
