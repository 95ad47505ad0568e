"""What an eval compares, as a light module the CLI can import: targets' tolerance, methods, budget."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import ConfigError
from ..core.score import Relax
from ..sizing.config import MAX_BUDGET

METHOD_NAMES = ("nearest-neighbour", "retrieval", "random-search", "optuna-tpe", "retrieval-local", "loop", "model-greedy",
                "model-best-of-n", "model-loop")
"""The eval's methods (icgen.eval.methods.REGISTRY holds them), in report order."""
DEFAULT_METHODS = tuple(m for m in METHOD_NAMES if m != "model-loop")
"""What `icgen eval` runs unless told: every method but model-loop (up to `budget` generate calls per target)."""


Tolerance = Relax
"""How far a held-out design's metrics are relaxed to make its specs (icgen.core.score.Relax)."""


@dataclass(frozen=True)
class EvalConfig:
    """Which targets, which methods, what budget."""

    split: str = "test"
    """The split whose designs become targets."""
    split_kind: str = "heldout"
    """heldout (test = whole metric-space clusters) or random."""
    n: int = 200
    """Held-out targets."""
    budget: int = 20
    """Simulations per target and method."""
    samples: int = 6
    """N of best-of-N. The loop uses `icgen size`'s own default (SizeConfig.samples)."""
    seed: int = 0
    """Seed of the target draw and of every method."""
    tolerance: Tolerance = field(default_factory=Tolerance)
    """How the targets' bounds are relaxed."""
    methods: tuple[str, ...] = DEFAULT_METHODS
    """Methods by name, in the order they run (see icgen.eval.methods.REGISTRY)."""
    hand: bool = True
    """Add the hand-written targets."""
    generate_batch: int = 16
    """Prompts per batched generate for the model-only methods."""
    targets: str | None = None
    """A JSONL file of your own targets (one Specs object in SI units per line, optional "name"); kind "file"."""

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHOD_NAMES]
        if unknown:
            raise ConfigError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHOD_NAMES)}")
        if self.n < 0 or self.budget < 1 or self.samples < 1 or self.seed < 0:
            raise ConfigError("{n} and {seed} must be >= 0, {budget} and {samples} >= 1")
        if self.budget > MAX_BUDGET:
            raise ConfigError(f"{{budget}} {self.budget} is above the ceiling of {MAX_BUDGET} simulations per target")
        if self.samples > self.budget:
            raise ConfigError(f"{{samples}} {self.samples} exceeds {{budget}} {self.budget}: best-of-N must fit the "
                              f"budget")
