"""How the sizing loop looks for a design: its config, as a light module the CLI can import."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..core.corner import BIASES, Bias
from ..core.errors import ConfigError
from ..core.objective import DEFAULT_OBJECTIVE, Margin, objective
from ..core.score import UGB_BENCHES  # noqa: F401 - the loop's and the eval's name for it

STEP_NAMES = ("retrieval", "surrogate", "model", "refine", "local", "improve")
"""The loop's steps (icgen.sizing.loop.STEPS holds their functions)."""
DEFAULT_STEPS = STEP_NAMES
MAX_BUDGET = 100_000
"""The most simulations one sizing run may spend."""
MODEL_FIRST_STEPS = ("retrieval", "model", "surrogate", "refine", "local", "improve")
"""The order before the surrogate steps existed: the model right after retrieval (`icgen size --model-first`)."""


@dataclass(frozen=True)
class SizeConfig:
    """How hard to look: the steps and their order, model samples, simulation budget, retrieval and local search."""

    steps: tuple[str, ...] = DEFAULT_STEPS
    """The loop's steps in order, by name (see STEPS); leave one out to skip it."""
    samples: int = 2
    """Model candidates per batched generate, asked only when the steps before the model leave the specs unmet."""
    model_rounds: int = 1
    """Times the model step asks, each time shown the best candidate so far with its simulated metrics (simulator
    feedback); it stops early when the specs are met, the budget is spent, or a round gives nothing new."""
    model_patience: int = 1
    """The model step stops after this many rounds in a row that bring no new design (a repeat of a design already
    simulated, or nothing usable)."""
    budget: int = 20
    """Most simulations to spend."""
    temperature: float = 0.7
    """Sampling temperature when more than one sample is asked for (a single sample is greedy)."""
    max_new_tokens: int = 128
    """Generation length cap (a compact answer is about 106 tokens of the default tokenizer)."""
    retrieve: int = 2
    """Training designs whose recorded metrics best meet the specs, simulated first."""
    local_batch: int = 4
    """Designs per round of local search."""
    radius: float = 0.2
    """First local-search radius (relative, for R0 C0 L W); it shrinks each round."""
    radius_v: float = 0.04
    """First local-search radius for VIN and VB1, volts."""
    trust: float = 4.0
    """First trust region of a refinement step, in direction units (a factor 1.35 or 20-30 mV each)."""
    step_scales: tuple[float, ...] = (1.0, 0.5)
    """Each refinement step is simulated at these fractions of the solved step (in parallel)."""
    surrogate_radius: float = 1.0
    """First trust region of a surrogate step: natural-log units for sizes (a factor e), a tenth of it in volts."""
    surrogate_min_radius: float = 0.03
    """Surrogate steps stop once failures have halved the radius below this."""
    extra_directions: bool = False
    """Also probe channel length, mirror width and M6 length (11 directions instead of 8)."""
    step_margin: float = 0.15
    """Margin a refinement step aims for on every spec, in shortfall units (0.15: 0.9 dB, 1.5 degrees, 0.15 dec)."""
    seed: int = 0
    """Seed for sampling and local search."""
    objective: str = DEFAULT_OBJECTIVE
    """What to optimise once the specs are met (icgen.core.objective.OBJECTIVES): min-power (the default), max-ugb,
    max-fom, min-area; max-margin stops at the first design meeting the specs (the behaviour before objectives)."""
    margin: Margin = Margin()
    """How far inside every bound a design must stay to count as meeting the specs (not with max-margin)."""
    improve_tolerance: float = 0.005
    """The improve step stops after `improve_patience` rounds that lower the objective by less than this (decades:
    0.005 is 1.2 %)."""
    improve_patience: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.budget <= MAX_BUDGET:
            raise ConfigError(f"{{budget}} {self.budget} is not 1 to {MAX_BUDGET} simulations (the ceiling leaves room "
                              f"for corner and Monte Carlo sizing; at about 300 simulations/s on 2 cores it is 5.5 "
                              f"minutes of simulation)")
        if self.seed < 0:
            raise ConfigError(f"{{seed}} {self.seed} is negative; use 0 or more")
        if self.samples < 0 or self.retrieve < 0:
            raise ConfigError("{samples} and {retrieve} cannot be negative")
        if self.model_rounds < 1 or self.model_patience < 1:
            raise ConfigError(f"{{model_rounds}} {self.model_rounds} and {{model_patience}} {self.model_patience} must "
                              f"be numbers of rounds, 1 or more")
        objective(self.objective)
        if self.improve_tolerance < 0 or self.improve_patience < 1:
            raise ConfigError("{improve_tolerance} must be >= 0 and {improve_patience} >= 1")
        unknown = [s for s in self.steps if s not in STEP_NAMES]
        if unknown or len(set(self.steps)) != len(self.steps):
            raise ConfigError(f"{{steps}}: {', '.join(unknown) or 'a step given twice'}; use each of "
                              f"{', '.join(STEP_NAMES)} at most once")

    def target_specs(self, specs):
        """The specs a candidate must clear to count as meeting them: moved inward by `margin` unless the objective
        is max-margin."""
        return self.margin.tighten(specs) if objective(self.objective).improves else specs

    def without(self, *steps: str) -> "SizeConfig":
        """The same config with these steps left out."""
        return replace(self, steps=tuple(s for s in self.steps if s not in steps))


@dataclass(frozen=True)
class CornerSizeConfig:
    """How `icgen size --corners SET` runs: how VB1 follows a supply, the default budget, retrieval and the ranking."""

    bias: str = Bias.TRACK_VDD
    """How VB1 follows a corner's supply: track-vdd (VDD - VB1 kept) or fixed (VB1 held from ground)."""
    budget_per_corner: int = SizeConfig().budget
    """Without `--budget`, the run may spend this many simulations per corner (20 x 9 = 180 for ptm65 `all`)."""
    retrieval_headroom_v: float = 0.15
    """Retrieval searches the training designs (simulated at nominal only) whose smallest saturation margin is at least
    this, so a supply 10 % low still leaves them saturated; all of them when none has it."""
    corner_surrogate: bool = True
    """With a worst-corner table (icgen.sizing.corner_table), the surrogate step uses a surrogate fitted on its
    worst-corner figures instead of the nominal one."""
    corner_surrogate_rows: int = 200
    """The fewest designs working at every corner that such a surrogate is fitted on (fewer: the nominal one)."""
    deficit_scale_v: float = 0.1
    unscreened_penalty: float = 1.0
    """Added to the shortfall of a candidate that failed the screening corner: its shortfall there is only a lower
    bound of its worst-corner one, so without it a near miss at nominal that fails badly elsewhere (unsimulated) would
    outrank a design known at every corner, and the search would centre on it. 1.0 ranks such candidates behind
    every fully simulated one within one shortfall unit (measured on ptm65 `all`: 0 -> 87, 0.3 -> 91, 1 and 5 -> 92 of
    100 held-out targets met, `bench/bench_corners.py`)."""
    """A device's saturation margin below the health rule's, per this many volts, adds 1 to a candidate's shortfall
    (on top of the flat penalty for an unhealthy design), so the search can climb towards health at every corner."""

    def __post_init__(self) -> None:
        if self.bias not in BIASES:
            raise ConfigError(f"{{bias}} {self.bias!r} is unknown; use one of {', '.join(BIASES)}")
        if self.retrieval_headroom_v < 0 or self.deficit_scale_v <= 0 or self.unscreened_penalty < 0:
            raise ConfigError("{retrieval_headroom_v} and {unscreened_penalty} must be >= 0 and {deficit_scale_v} > 0")
        if self.budget_per_corner < 1:
            raise ConfigError(f"{{budget}} {self.budget_per_corner} per corner is not a budget; use 1 or more")

    def budget(self, given: int | None, n_corners: int) -> int:
        """The simulation budget: the one given, else `budget_per_corner` x the number of corners."""
        return given if given is not None else self.budget_per_corner * n_corners
