"""What an eval compares, as a light module the CLI can import: targets' tolerance, methods, budget."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

from ..core.corner import CornerError
from ..core.errors import ConfigError
from ..core.objective import objective
from ..core.score import SPEC_KEYS, Relax
from ..sizing.config import MAX_BUDGET, CornerSizeConfig, SizeConfig

if TYPE_CHECKING:
    from ..core.corner import Corner
    from ..core.tech import Technology

METHOD_NAMES = ("nearest-neighbour", "retrieval", "retrieval-move", "random-search", "optuna-tpe", "optuna-constrained",
                "retrieval-local", "loop", "model-greedy", "model-best-of-n", "model-loop")
"""The eval's methods (icgen.eval.methods.REGISTRY holds them), in report order."""
DEFAULT_METHODS = tuple(m for m in METHOD_NAMES if m not in ("model-loop", "optuna-constrained", "retrieval-move"))
"""What `icgen eval` runs unless told: every method but model-loop (up to `budget` generate calls per target),
optuna-constrained (the baseline of `--objective`) and retrieval-move (the fix model's control)."""


CORNER_TARGETS = ("worst", "nominal")
"""Where held-out targets come from with corners (EvalConfig.corner_targets)."""

LATER_FIELDS = ("corners", "corner_targets")
"""EvalConfig fields added after eval runs were first stamped (run.json): left out of `EvalConfig.stamp` at their
default."""

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
    budget: int | None = None
    """Simulations per target and method. None: `icgen size`'s default, SizeConfig.budget (set here), or with
    `corners` CornerSizeConfig.budget_per_corner x the corner count, as `icgen size --corners` (set by `resolved`)."""
    samples: int = 6
    """N of best-of-N. The loop uses `icgen size`'s own default (SizeConfig.samples)."""
    loop_samples: int = 4
    """Model answers per round in the model-loop: the greedy one and loop_samples - 1 sampled; loop_samples sampled
    when the best candidate shown has not changed since the last round (its greedy answer would repeat)."""
    loop_patience: int = 3
    """The model-loop stops after this many rounds in a row that bring no new design (SizeConfig.model_patience)."""
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
    objective: str = "max-margin"
    """What the loop-based methods optimise once a target is met (icgen.core.objective): max-margin (stop at the
    first design meeting it, the eval's rule before objectives), or min-power etc., which adds each method's
    objective against the best known design to the report."""
    drop: tuple[str, ...] = ()
    """Spec keys left out of the held-out targets (e.g. ("power_w",) for Pareto-edge targets with min-power)."""
    targets: str | None = None
    """A JSONL file of your own targets (one Specs object in SI units per line, optional "name"); kind "file"."""
    corners: str | None = None
    """A corner set of the technology (`all`) or a comma-separated list of sets and corners, resolved as `icgen size
    --corners` resolves it: every method is then judged by its worst corner (met = met at every corner). None: the
    nominal simulation only."""
    corner_targets: str = "worst"
    """With `corners`, where the held-out targets come from: `worst` relaxes each held-out design's worst-corner
    metrics (every target is then met at every corner by the design it came from; `icgen.eval.targets.
    worst_corner_targets`), `nominal` its dataset (nominal) metrics, which a corner set can make infeasible."""

    def __post_init__(self) -> None:
        if self.budget is None and self.corners is None:  # no corners to count: the default is known now
            object.__setattr__(self, "budget", SizeConfig.budget)
        objective(self.objective)
        bad = [k for k in self.drop if k not in SPEC_KEYS]
        if bad:
            raise ConfigError(f"{{drop}}: {bad[0]!r} is not an open-loop spec; use {', '.join(SPEC_KEYS)}")
        unknown = [m for m in self.methods if m not in METHOD_NAMES]
        if unknown:
            raise ConfigError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHOD_NAMES)}")
        if self.n < 0 or self.samples < 1 or self.seed < 0 or self.loop_samples < 1 or self.loop_patience < 1 or \
                (self.budget is not None and self.budget < 1):
            raise ConfigError("{n} and {seed} must be >= 0, {budget}, {samples}, {loop_samples} and {loop_patience} "
                              ">= 1")
        if self.budget is not None and self.budget > MAX_BUDGET:
            raise ConfigError(f"{{budget}} {self.budget} is above the ceiling of {MAX_BUDGET} simulations per target")
        if self.budget is not None and self.samples > self.budget:
            raise ConfigError(f"{{samples}} {self.samples} exceeds {{budget}} {self.budget}: best-of-N must fit the "
                              f"budget")
        if self.corner_targets not in CORNER_TARGETS:
            raise ConfigError(f"{{corner_targets}} {self.corner_targets!r} is not one of {', '.join(CORNER_TARGETS)}")
        if self.corners is not None and not str(self.corners).strip():
            raise ConfigError("{corners}: no corners given; use a set such as all or nominal, or leave it out")

    def stamp(self) -> str:
        """Its repr, less the fields of `LATER_FIELDS` still at their default: what a run folder is claimed with, so
        a run stamped before those fields existed resumes. With corners, `corner_targets` is always shown: a corner
        run stamped before it (nominal targets) does not resume as one with worst-corner targets."""
        shown = [f for f in fields(self) if not (f.name in LATER_FIELDS and getattr(self, f.name) == f.default
                                                 and not (f.name == "corner_targets" and self.corners is not None))]
        return f"{type(self).__name__}({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"

    def corner_set(self, tech: Technology) -> tuple[Corner, ...] | None:
        """The corners every method is judged at (`tech.corner_set`; a CornerError names a bad one), or None."""
        if self.corners is None:
            return None
        try:
            return tech.corner_set(self.corners)
        except CornerError as err:  # named by the option: the eval has more inputs than corners
            raise CornerError(f"{{corners}}: {err.message}") from None

    def resolved(self, tech: Technology) -> EvalConfig:
        """This config with its budget in simulations: the one given, else `icgen size`'s (x the corner count with
        corners)."""
        chosen = self.corner_set(tech)
        config = self
        if self.budget is None:
            config = replace(self, budget=CornerSizeConfig().budget(None, len(chosen)) if chosen else SizeConfig.budget)
        if chosen and config.budget < len(chosen):
            raise ConfigError(f"{{budget}} {config.budget} cannot simulate one design at the {len(chosen)} corners of "
                              f"{self.corners}; use {len(chosen)} or more")
        if chosen and "model-best-of-n" in self.methods and config.samples * len(chosen) > config.budget:
            raise ConfigError(f"{{samples}} {config.samples} at {len(chosen)} corners exceeds {{budget}} "
                              f"{config.budget}: best-of-N must fit the budget; use {{budget}} "
                              f"{config.samples * len(chosen)} or more, or fewer {{samples}}")
        return config
