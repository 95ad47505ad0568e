"""`icgen size`: propose sizings for target specs, verify each by simulation, refine until the specs are met.

    result = size(Specs(gain_db=38, pm_deg=52), tech, SizeConfig(), pool, table=training_rows)

The loop is a `SizingLoop`: a budget, the designs already simulated, the candidates, and an ordered list of steps
(`SizeConfig.steps`, looked up by name in `STEPS`):

- retrieval: the training designs whose recorded metrics best meet the specs;
- surrogate: trust-region steps on a neural surrogate of the simulator corrected by its error at the current design
  (icgen.sizing.surrogate, one simulation a step);
- model: the fine-tuned model's answers (a `Proposer`, which sees the best candidate so far), parsed, range-checked
  and simulated in parallel;
- refine: Newton steps along a designer's directions (icgen.sizing.refine);
- local: a local sweep with a shrinking radius;
- improve: once the specs are met, lower the objective (`SizeConfig.objective`, icgen.core.objective) under the
  bounds: surrogate-guided constrained steps and local sweeps from the best feasible design, until a round no
  longer improves it by `improve_tolerance` (`improve_patience` times) or the budget is spent.

The steps before `improve` run only while the specs are unmet, budget remains and the caller has not cancelled.
Every candidate is simulated and scored; only a healthy working amplifier can meet specs. With an objective other
than max-margin, "meeting the specs" means clearing them by `SizeConfig.margin`, and feasible designs rank by
the objective (any feasible design before any infeasible one).
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from ..core.design import Design, Metrics
from ..core.objective import Objective, objective
from ..core.sampling import Radius, local_sweep
from ..core.score import SpecError, Specs, check_specs, figures_of, healthy_result, rank_key
from ..core.status import Status
from ..core.tech import Technology, load_technology
from ..data.dataset import design_of, metrics_of
from ..sim.simulate import SimConfig, SimResult, SimulatorPool
from .config import DEFAULT_STEPS, MODEL_FIRST_STEPS, STEP_NAMES, UGB_BENCHES, SizeConfig  # noqa: F401
from .refine import DIRECTIONS, EXTRA_DIRECTIONS, broyden, jacobian, margin_vector, move, solve_step
from .resources import SizingResources
from .retrieval import rank_rows


@dataclass(frozen=True)
class Candidate:
    """A simulated candidate: where it came from and how it scored."""

    source: str
    """The step that proposed it: retrieval | surrogate | model | refine | local."""
    result: SimResult
    shortfall: float


@dataclass
class SizeResult:
    """The best design found, whether it meets the specs, and what it cost."""

    specs: Specs
    best: Candidate | None
    candidates: list[Candidate] = field(default_factory=list)
    simulations: int = 0
    seconds: float = 0.0
    model_texts: list[str] = field(default_factory=list)
    invalid_model_answers: int = 0
    cancelled: bool = False
    objective: str = "max-margin"
    """The objective the run optimised once the specs were met."""
    target_specs: Specs | None = None
    """The specs candidates had to clear: `specs` moved inward by the margin (the same as `specs` for max-margin)."""
    first_met_at: int | None = None
    """Simulations spent when the specs were first met (None: never)."""

    @property
    def met(self) -> bool:
        return self.best is not None and self.best.shortfall == 0.0


@dataclass(frozen=True)
class Progress:
    """What a progress callback sees after every batch of simulations."""

    step: str
    simulations: int
    budget: int
    best_shortfall: float | None
    met: bool


def default_rank(result: SimResult, specs: Specs) -> tuple:
    """Sort key, best first: shortfall; then a design whose devices are all in strong inversion; then the worst
    normalised margin (larger first); then power (lower first)."""
    short, worst, power = rank_key(result if result.metrics else None, specs, result.status, healthy_result(result))
    weak = not (result.health and all(d.region == "saturation" for d in result.health.devices))
    return short, weak, worst, power


Score = Callable[[SimResult, Specs], tuple]
"""A ranking of one simulated result against the specs, best first; element 0 is the shortfall (0: met)."""


def objective_rank(goal: Objective) -> Score:
    """Sort key for an objective: shortfall first (so any feasible design ranks before any infeasible one), then
    among feasible designs the objective's value (lower first), then default_rank's tie-breaks."""
    def rank(result: SimResult, specs: Specs) -> tuple:
        short, weak, worst, power = default_rank(result, specs)
        value = goal.value(figures_of(result)) if short == 0.0 else 0.0
        return short, value if not math.isnan(value) else math.inf, weak, worst, power

    return rank


@dataclass(frozen=True)
class Proposal:
    """What a proposer answered: the raw texts, the usable designs, and how many answers were unusable."""

    texts: list[str]
    designs: list[Design]
    invalid: int


class Proposer(Protocol):
    """The model step's source of designs: it sees the specs, the best candidate so far and a reference metric set."""

    def propose(self, specs: Specs, best: Candidate | None, reference: Metrics | None, samples: int,
                config: SizeConfig) -> Proposal | None: ...


class ModelProposer:
    """A fine-tuned model asked with the spec prompt, loaded on first use (`load()` gives (model, tokenizer)); each
    round its greedy answer plus `samples - 1` sampled ones, or `samples` sampled ones when the best candidate shown
    is one it was already shown (its greedy answer to that prompt is known: asking again would repeat it)."""

    def __init__(self, tech: Technology, fmt: str = "compact", model=None, tokenizer=None,
                 load: Callable[[], tuple] | None = None) -> None:
        self.tech, self.fmt, self.model, self.tokenizer, self._load = tech, fmt, model, tokenizer, load
        self.rounds = 0
        """Rounds asked so far: each round's samples get their own seed."""
        self.shown: set[tuple] = set()
        """The best candidates already shown with the specs (their prompts had a greedy answer)."""

    def propose(self, specs: Specs, best: Candidate | None, reference: Metrics | None, samples: int,
                config: SizeConfig) -> Proposal | None:
        if self.model is None and self._load is not None:
            self.model, self.tokenizer = self._load()
        if self.model is None:
            return None
        from ..llm.complete import complete, spec_prompt, usable_designs
        from ..llm.pairs import pair_format

        start = (best.result.design, best.result.metrics) if best is not None and best.result.metrics else None
        if pair_format(self.fmt).needs_start and start is None:  # an edit prompt needs a simulated start
            return None
        prompt = spec_prompt(specs, reference, self.fmt, start)
        starts = [start[0] if start else None]
        shown = (prompt, _key(best.result.design) if best is not None else None)
        # the greedy answer first, then samples - 1 sampled ones: a round never loses the model's best guess
        completions = []
        if shown not in self.shown:
            self.shown.add(shown)
            completions = complete(self.model, self.tokenizer, [prompt], fmt=self.fmt,
                                   max_new_tokens=config.max_new_tokens, temperature=0.0, seed=config.seed,
                                   starts=starts)
        if samples > len(completions):
            completions += complete(self.model, self.tokenizer, [prompt], fmt=self.fmt,
                                    num_samples=samples - len(completions), max_new_tokens=config.max_new_tokens,
                                    temperature=config.temperature, seed=config.seed + self.rounds, starts=starts)
        self.rounds += 1
        designs, invalid = usable_designs(completions, self.tech)
        return Proposal([c.text for c in completions], designs, invalid)


def _key(design: Design) -> tuple:
    return tuple(design.to_dict().values())


class SizingLoop:
    """One sizing run: the budget, the designs already simulated (never simulated twice), and the candidates."""

    def __init__(self, specs: Specs, tech: Technology, config: SizeConfig, pool, *, table: pd.DataFrame | None = None,
                 proposer: Proposer | None = None, load_surrogate: Callable | None = None,
                 testbench: str = "feedback", score: Score = default_rank,
                 progress: Callable[[Progress], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> None:
        self.goal = objective(config.objective)
        self.user_specs = specs
        specs = config.target_specs(specs)  # what a feasible design must clear
        self.specs, self.tech, self.config, self.pool = specs, tech, config, pool
        self.table, self.proposer, self.load_surrogate = table, proposer, load_surrogate
        if score is default_rank and self.goal.improves:
            score = objective_rank(self.goal)
        self.score, self.progress, self.cancel = score, progress, cancel
        # each candidate gets the sign-off benches its specs need; a UGB spec is checked against the buffer too: a
        # zero shelf (UGB far above the buffer's bandwidth) is a health flag
        self.sim_config = SimConfig(tech=tech, testbench=testbench, benches=specs.benches(),
                                    estimates=specs.needs_estimates() or self.goal.needs_estimates)
        if specs.vin_v is not None and not tech.bounds["VIN"][0] <= specs.vin_v <= tech.bounds["VIN"][1]:
            low, high = tech.bounds["VIN"]
            raise SpecError(f"{{vin_v}} {specs.vin_v:g} V is outside {tech.name}'s VIN range {low:g} to {high:g} V")
        self.result = SizeResult(specs=self.user_specs, best=None, objective=self.goal.name, target_specs=specs)
        self.seen: set[tuple] = set()
        self.step = ""
        self.ranked_rows = rank_rows(table, specs, self.goal) if table is not None and len(table) else None
        self.reference = metrics_of(self.ranked_rows.iloc[0]) \
            if self.ranked_rows is not None and len(self.ranked_rows) else None

    # ---- state
    @property
    def best(self) -> Candidate | None:
        return self.result.best

    @property
    def left(self) -> int:
        """Simulations left in the budget."""
        return self.config.budget - self.result.simulations

    @property
    def cancelled(self) -> bool:
        return bool(self.cancel and self.cancel())

    @property
    def done(self) -> bool:
        """Specs met, budget spent, or cancelled: no step does anything more."""
        return self.result.met or self.left <= 0 or self.cancelled

    def rank(self, candidate: Candidate) -> tuple:
        return self.score(candidate.result, self.specs)

    def margins(self, candidate: Candidate | None) -> np.ndarray | None:
        """Margins of a healthy working candidate (None otherwise): where refinement may stand."""
        if candidate is None or candidate.result.status != Status.OK or not healthy_result(candidate.result):
            return None
        return margin_vector(candidate.result, self.specs)

    # ---- the one way designs are simulated
    def simulate(self, designs: list[Design], source: str) -> list[Candidate | None]:
        """Simulate the designs not seen before and inside the bounds, within the budget; their candidates in the
        order given, None where a design was skipped."""
        if self.specs.vin_v is not None:  # a fixed input common mode: every candidate has it
            designs = [dataclasses.replace(d, VIN=self.specs.vin_v) for d in designs]
        # a pool that simulates a design more than once (icgen.sizing.corners.CornerPool: every corner) says what
        # each result cost (`cost`) and the most one design can cost (`max_cost`), reserved so the budget holds
        cost = getattr(self.pool, "cost", None)
        most = getattr(self.pool, "max_cost", 1)
        fresh = []
        for d in designs:
            key = _key(d)
            if key not in self.seen and not self.tech.out_of_bounds(d) and (len(fresh) + 1) * most <= self.left:
                self.seen.add(key)
                fresh.append(d)
        by_index: dict[int, Candidate] = {}
        spent = 0
        for index, result in self.pool.map(fresh, self.sim_config):
            cand = Candidate(source, result, float(self.score(result, self.specs)[0]))
            self.result.candidates.append(cand)
            by_index[index] = cand
            spent += cost(result) if cost else 1
        self.result.simulations += spent if cost else len(fresh)
        ranked = sorted(self.result.candidates, key=self.rank)
        self.result.best = ranked[0] if ranked else None
        if self.result.met and self.result.first_met_at is None:
            self.result.first_met_at = self.result.simulations
        if self.progress and fresh:
            best = self.result.best
            self.progress(Progress(source, self.result.simulations, self.config.budget,
                                   best.shortfall if best else None, self.result.met))
        order = {_key(d): by_index.get(i) for i, d in enumerate(fresh)}
        return [order.get(_key(d)) for d in designs]

    def run(self) -> SizeResult:
        start = time.perf_counter()
        for name in self.config.steps:
            if self.left <= 0 or self.cancelled:
                break
            if self.result.met != (name == "improve"):  # satisfy steps until met, then only the improve step
                continue
            self.step = name
            STEPS[name](self)
        self.result.cancelled = self.cancelled and not self.result.met
        self.result.seconds = time.perf_counter() - start
        return self.result


# ---- the steps -------------------------------------------------------------------------------------------------

def retrieval_step(loop: SizingLoop) -> None:
    """Simulate the training designs whose recorded metrics best meet the specs."""
    if loop.ranked_rows is not None and loop.config.retrieve:
        loop.simulate([design_of(row) for _, row in loop.ranked_rows.head(loop.config.retrieve).iterrows()],
                      "retrieval")


def model_step(loop: SizingLoop) -> None:
    """Ask the proposer (the fine-tuned model) for `samples` designs, shown the best candidate so far and its
    simulated metrics; up to `model_rounds` times, while the specs are unmet, until `model_patience` rounds in a row
    bring no new design."""
    if loop.config.samples <= 0 or loop.proposer is None:
        return
    idle = 0
    for _ in range(loop.config.model_rounds):
        if loop.done:
            return
        proposal = loop.proposer.propose(loop.specs, loop.best, loop.reference, loop.config.samples, loop.config)
        if proposal is None:
            return
        loop.result.model_texts += proposal.texts
        loop.result.invalid_model_answers += proposal.invalid
        before = loop.result.simulations
        loop.simulate(proposal.designs, "model")
        idle = idle + 1 if loop.result.simulations == before else 0
        if idle >= loop.config.model_patience:  # rounds in a row that brought no new design
            return


def surrogate_step(loop: SizingLoop) -> None:
    """Trust-region steps on the surrogate corrected by its error at the centre: one simulation per step; a step
    that improves moves the centre, one that does not halves the radius."""
    if loop.load_surrogate is None or loop.best is None or loop.best.result.status != Status.OK:
        return
    surrogate = loop.load_surrogate()
    if surrogate is None:
        return
    from .surrogate import predicted_margins
    from .surrogate import surrogate_step as propose_step

    config, specs = loop.config, loop.specs.core_specs()  # the surrogate predicts the open-loop six only
    if specs is None:
        return
    centre, radius = loop.best, config.surrogate_radius
    while not loop.done and radius >= config.surrogate_min_radius:
        base = loop.margins(centre)
        if base is None:
            return
        base = margin_vector(centre.result, specs)
        offset = base - predicted_margins(surrogate, [centre.result.design], specs)[0]
        offset = np.where(np.isnan(offset), 0.0, np.clip(offset, -1.0, 1.0))
        design = propose_step(surrogate, centre.result.design, offset, specs, loop.tech, radius,
                              target=config.step_margin)
        tried = loop.simulate([design], "surrogate")[0]
        if tried is not None and loop.rank(tried) < loop.rank(centre) and loop.margins(tried) is not None:
            centre = tried
        else:
            radius /= 2


def refine_step(loop: SizingLoop) -> None:
    """Refine a near miss along the designer's directions of `icgen.sizing.refine` (probe, step, update, shrink)."""
    config = loop.config
    directions = DIRECTIONS + (EXTRA_DIRECTIONS if config.extra_directions else ())
    start = loop.best
    if start is None or start.result.status != Status.OK or loop.left <= len(directions):
        return
    centre, base = start, margin_vector(start.result, loop.specs)
    units = np.eye(len(directions))
    probes = loop.simulate([move(centre.result.design, e, loop.tech, directions) for e in units], "refine")
    jac, usable = jacobian(base, [loop.margins(p) for p in probes])
    trust = config.trust
    while not loop.done and trust >= 0.25:
        step = solve_step(base, jac, usable, trust, target=config.step_margin)
        if float(np.abs(step).max(initial=0.0)) < 0.05:
            break
        tried = loop.simulate([move(centre.result.design, a * step, loop.tech, directions)
                               for a in config.step_scales], "refine")
        full = loop.margins(tried[0])
        if full is not None:
            jac = broyden(jac, config.step_scales[0] * step, full - base)
        fresh = [c for c in tried if c is not None]
        if not fresh:
            break
        best = min(fresh, key=loop.rank)
        if loop.rank(best) < loop.rank(centre) and loop.margins(best) is not None:
            centre, base = best, loop.margins(best)
        else:
            trust /= 2


def local_step(loop: SizingLoop) -> None:
    """Scrambled-Sobol points around the best design with a radius that shrinks each round."""
    config = loop.config
    round_index = 0
    rng = np.random.default_rng(config.seed)
    while not loop.done and loop.best is not None:
        shrink = 0.6 ** round_index
        radius = Radius(relative=max(config.radius * shrink, 0.01), volts=max(config.radius_v * shrink, 0.002))
        designs = local_sweep(loop.best.result.design, loop.tech, config.local_batch, int(rng.integers(1 << 30)),
                              radius)
        before = loop.result.simulations
        loop.simulate(designs, "local")
        if loop.result.simulations == before:  # nothing new left to try around this centre
            break
        round_index += 1


def improve_step(loop: SizingLoop) -> None:
    """Once the specs are met: lower the objective under the bounds. Each round simulates one surrogate-guided step
    (the objective minimised with every predicted margin kept, when the surrogate predicts the objective) and a local
    sweep around the best feasible design; a round that lowers the objective by less than `improve_tolerance`
    shrinks the radius and counts towards `improve_patience`."""
    config, goal = loop.config, loop.goal
    if not goal.improves or not loop.result.met:
        return
    surrogate = loop.load_surrogate() if loop.load_surrogate is not None else None
    rng = np.random.default_rng(config.seed + 1)
    stalls, round_index = 0, 0
    while loop.left > 0 and not loop.cancelled and stalls < config.improve_patience:
        best = loop.best
        before = goal.value(figures_of(best.result))
        designs = []
        core = loop.specs.core_specs()
        if surrogate is not None and core is not None and goal.name in OBJECTIVE_STEPS:
            from .surrogate import objective_step, predicted_margins

            offset = margin_vector(best.result, core) - predicted_margins(surrogate, [best.result.design], core)[0]
            offset = np.where(np.isnan(offset), 0.0, np.clip(offset, -1.0, 1.0))
            designs.append(objective_step(surrogate, best.result.design, offset, core, loop.tech,
                                          config.surrogate_radius * 0.5 ** round_index, goal.name,
                                          target=config.step_margin))
        shrink = 0.6 ** round_index
        radius = Radius(relative=max(config.radius * shrink, 0.01), volts=max(config.radius_v * shrink, 0.002))
        designs += local_sweep(best.result.design, loop.tech, config.local_batch, int(rng.integers(1 << 30)), radius)
        spent = loop.result.simulations
        loop.simulate(designs, "improve")
        if loop.result.simulations == spent:
            break
        after = goal.value(figures_of(loop.best.result))
        if not before - after >= config.improve_tolerance:
            stalls += 1
            round_index += 1
        else:
            stalls = 0


OBJECTIVE_STEPS = ("min-power", "max-ugb", "max-fom")
"""Objectives the surrogate predicts (from power and UGB), so the improve step can aim a step at them."""


STEPS: dict[str, Callable[[SizingLoop], None]] = {
    "retrieval": retrieval_step, "surrogate": surrogate_step, "model": model_step, "refine": refine_step,
    "local": local_step,
    "improve": improve_step,
}
"""Step name -> step function; a new step is one function here and its name in config.STEP_NAMES."""
if tuple(STEPS) != STEP_NAMES:  # pragma: no cover - a step added in one place only
    raise ImportError(f"sizing steps {tuple(STEPS)} differ from config.STEP_NAMES {STEP_NAMES}")


def size(specs: Specs, tech: Technology | str = "ptm65", config: SizeConfig = SizeConfig(), pool=None, *,
         table: pd.DataFrame | None = None, model=None, tokenizer=None, fmt: str = "compact",
         testbench: str = "feedback", load_model=None, load_surrogate=None, proposer: Proposer | None = None,
         score: Score = default_rank, progress: Callable[[Progress], None] | None = None,
         cancel: Callable[[], bool] | None = None, resources: SizingResources | None = None) -> SizeResult:
    """Search for a design meeting `specs` within `config.budget` simulations; see the module docstring.

    `resources` (icgen.sizing.resources) gives the table and the loaders at once. `table`: the training rows
    retrieval searches. The model step asks `proposer`, or a `ModelProposer` over
    `model`/`tokenizer` or over `load_model` (a callable returning (model, tokenizer), called only when the model
    step runs). `load_surrogate` (a callable returning an `icgen.sizing.surrogate.Surrogate` or None) is likewise
    called only when the surrogate step runs. Without `pool` a simulator pool is opened for this call.
    """
    tech = load_technology(tech) if isinstance(tech, str) else tech
    if resources is not None:
        table = resources.table if table is None else table
        load_surrogate = load_surrogate or resources.load_surrogate
        load_model = load_model or resources.load_model
        fmt = resources.fmt
    if proposer is None and (model is not None or load_model is not None):
        proposer = ModelProposer(tech, fmt, model, tokenizer, load_model)
    if pool is None:
        with SimulatorPool() as own:
            return size(specs, tech, config, own, table=table, fmt=fmt, testbench=testbench,
                        load_surrogate=load_surrogate, proposer=proposer, score=score, progress=progress,
                        cancel=cancel)
    loop = SizingLoop(specs, tech, config, pool, table=table, proposer=proposer, load_surrogate=load_surrogate,
                      testbench=testbench, score=score, progress=progress, cancel=cancel)
    return loop.run()


def spec_table(result: SizeResult) -> list[dict]:
    """Rows of spec / achieved / margin / pass for the best design."""
    rows = []
    for check in check_specs(result.best.result if result.best else None, result.specs):
        rows.append({"spec": check.key, "target": check.target, "achieved": check.achieved,
                     "margin": None if check.margin is None or math.isinf(check.margin) else check.margin,
                     "pass": check.met})
    return rows
