"""The eval's methods, by name: the model alone, the sizing loop, and baselines, under one simulation budget.

- model-greedy: the model alone, one greedy answer, simulated once (the original work's setting);
- model-best-of-n: greedy plus n-1 sampled answers, all simulated, the best kept;
- model-loop: the loop's retrieval, then only the model, asked again with each new best until the budget is spent;
- loop: `icgen size` (retrieval, surrogate steps, model, designer's directions, local search) under the budget;
- retrieval: the loop's top-ranked training design, simulated once (the strong one-shot baseline);
- retrieval-move: that design, or one random single move of it when its recorded metrics miss (the fix format's
  control: a one-shot answer that cannot read the verdict);
- retrieval-local: the loop's retrieval, then its random local search, under the budget;
- nearest-neighbour: the training design whose metrics are closest to the target, simulated;
- random-search: log-uniform random designs until the specs are met or the budget is spent;
- optuna-tpe: Optuna's TPE sampler minimising the normalised shortfall under the same budget.

A new method is one function and one `Method` entry in `REGISTRY`. Every outcome's `source` says where its best
design came from (a model answer that repeats the retrieved design counts as retrieval: `same_design`).

With corners (`EvalConfig.corners`) every method is judged by its worst corner: the loop-based methods run
`icgen.sizing.corners.size_at_corners`, the others have each design simulated at every corner (nominal first; a
design failing it costs one simulation, as in the loop); a design meets only when simulated and met at every corner.
The budget counts simulations, and no method starts a design whose every corner would not fit in what is left.
"""
from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from ..core.design import DESIGN_KEYS, VARIABLE_BY_KEY, Design
from ..core.measure import V1_HEALTH, regrade
from ..core.objective import Objective, objective
from ..core.sampling import random_designs
from ..core.score import (
    SPEC_KINDS,
    Specs,
    check_specs,
    figures_of,
    healthy_result,
    metric_units,
    rank_key,
    result_shortfall,
    shortfall,
)
from ..core.status import Status
from ..core.tech import Technology
from ..data.dataset import design_of, metrics_of
from ..sim.simulate import SimConfig, SimResult
from ..sizing.config import CornerSizeConfig
from ..sizing.corners import CornerPool, size_at_corners
from ..sizing.loop import UGB_BENCHES, SizeConfig, SizeResult, objective_rank, size
from ..sizing.retrieval import rank_rows
from .config import METHOD_NAMES
from .outcome import ERROR_KEYS, Outcome, Target, metric_errors

if TYPE_CHECKING:
    from ..core.corner import Corner
    from .config import EvalConfig


def _key(design: Design) -> tuple:
    return tuple(design.to_dict().values())


@dataclass
class Trials:
    """What a method simulated, as the eval judges it: one result per design (with corners, its worst corner over the
    corners it was simulated at), each design's (corner, result) runs, and the simulations spent."""

    results: list[SimResult] = field(default_factory=list)
    runs: list[list[tuple[Corner | None, SimResult]]] = field(default_factory=list)
    simulations: int = 0
    corners: tuple[str, ...] = ()
    """The corner names a design must be simulated and met at; () for the nominal simulation only."""

    def complete(self, index: int) -> bool:
        """Whether design `index` was simulated at every corner (always, without corners)."""
        return not self.corners or set(self.corners) <= {c.name for c, _ in self.runs[index] if c is not None}

    def met(self, index: int, specs: Specs) -> bool:
        return self.complete(index) and _met(self.results[index], specs)

    def any_met(self, specs: Specs) -> bool:
        return any(self.met(i, specs) for i in range(len(self.results)))

    def extend(self, other: Trials) -> None:
        self.results += other.results
        self.runs += other.runs
        self.simulations += other.simulations

    @property
    def working(self) -> int:
        """Simulations (each corner of each design) that gave a healthy working amplifier."""
        return sum(r.status == Status.OK and healthy_result(r) for runs in self.runs for _, r in runs)


class CornerRecorder:
    """Wraps a pool and records each result it answers under its design, with the result's corner: what a corner-aware
    loop simulated, corner by corner, seen from below its CornerPool."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.runs: dict[tuple, list[tuple[Corner | None, SimResult]]] = {}

    def map(self, designs, config):
        designs = list(designs)
        for index, result in self.pool.map(designs, config):
            self.runs.setdefault(_key(designs[index]), []).append((result.corner, result))
            yield index, result


class Context:
    """What every method shares: technology, simulator pool, training rows, model, budget."""

    def __init__(self, tech: Technology, pool, train: pd.DataFrame, config: EvalConfig,
                 model=None, tokenizer=None, fmt: str = "compact", surrogate=None, proposer=None,
                 corner_table: pd.DataFrame | None = None):
        self.tech, self.pool, self.train, self.config = tech, pool, train, config
        self.surrogate = surrogate
        self.corner_table = corner_table
        """With corners, the training rows' worst-corner table the loop-based methods retrieve from
        (icgen.sizing.corner_table); None: `robust_rows` of the nominal rows."""
        self.model, self.tokenizer, self.fmt = model, tokenizer, fmt
        self.proposer = proposer
        """An icgen.sizing.loop.Proposer the model-loop asks instead of the model (None: the model)."""
        self.goal = objective(config.objective)
        """What the loop-based methods optimise once a target's specs are met; every outcome records its value."""
        self.corners: tuple[Corner, ...] | None = config.corner_set(tech)
        """The corners every method is judged at (EvalConfig.corners), or None for the nominal simulation only."""
        self.config = config.resolved(tech)  # the budget in simulations
        self.corner_config = CornerSizeConfig()
        self.sim_config = SimConfig(tech=tech, benches=UGB_BENCHES)  # every method's UGB checked alike
        self.working = train[train["working"]].reset_index(drop=True)
        self.features = _features(self.working)

    @property
    def max_cost(self) -> int:
        """The most simulations one design can cost: one per corner."""
        return len(self.corners) if self.corners else 1

    @property
    def corner_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.corners) if self.corners else ()

    @property
    def has_model(self) -> bool:
        """Whether the model methods can run: a model, or a proposer standing in for it."""
        return self.model is not None or self.proposer is not None

    def simulate(self, designs: list[Design], specs: Specs | None = None) -> list[SimResult]:
        """Simulate with the UGB bench, plus the sign-off benches and estimates `specs` need (as the loop does)."""
        config = self.sim_config
        if specs is not None and (specs.benches() or specs.needs_estimates()):
            benches = tuple(dict.fromkeys(UGB_BENCHES + specs.benches()))
            config = SimConfig(tech=self.tech, benches=benches, estimates=specs.needs_estimates())
        return [result for _, result in self.pool.map(designs, config)] if designs else []

    def trials(self, designs: list[Design], specs: Specs) -> Trials:
        """`simulate`, and with corners each design at every corner (screened at nominal first, like the loop's
        CornerPool; a design proposed twice is simulated once): one worst-corner result per design."""
        if not self.corners:
            results = self.simulate(designs, specs)
            return Trials(results, [[(None, r)] for r in results], len(results))
        config = self.sim_config
        if specs.benches() or specs.needs_estimates():
            config = SimConfig(tech=self.tech, benches=tuple(dict.fromkeys(UGB_BENCHES + specs.benches())),
                               estimates=specs.needs_estimates())
        unique = list({_key(d): d for d in designs}.values())
        pool = CornerPool(self.pool, self.corners, self.tech, specs, self.corner_config.bias)
        worst = {_key(d): r for d, (_, r) in zip(unique, pool.map(unique, config))} if unique else {}
        seen: set[tuple] = set()
        runs = []
        for design in designs:  # a repeated design's runs are its first copy's, counted once
            runs.append([] if _key(design) in seen else pool.results(design))
            seen.add(_key(design))
        return Trials([worst[_key(d)] for d in designs], runs, pool.simulations, self.corner_names)


SAME_DESIGN_RTOL = 1e-3
"""Two designs are the same when every variable agrees to 0.1 %: a copy printed with four significant digits."""


def same_design(a: Design, b: Design, rtol: float = SAME_DESIGN_RTOL) -> bool:
    """Whether two designs are the same sizing, up to the rounding of a printed answer."""
    da, db = a.to_dict(), b.to_dict()
    return all(math.isclose(da[k], db[k], rel_tol=rtol) for k in DESIGN_KEYS)


def winning_source(result: SizeResult) -> str:
    """The step whose candidate won a sizing run; a model answer repeating a retrieved design counts as retrieval."""
    best = result.best
    if best is None:
        return ""
    if best.source == "model":
        retrieved = [c.result.design for c in result.candidates if c.source == "retrieval"]
        if any(same_design(best.result.design, d) for d in retrieved):
            return "retrieval"
    return best.source


def _best(results: list[SimResult], specs: Specs, goal: Objective | None = None) -> SimResult | None:
    """The best result: by objective among those meeting the specs when `goal` improves, else by margin."""
    key = objective_rank(goal) if goal is not None and goal.improves else \
        (lambda r, s: rank_key(r if r.metrics else None, s, r.status, healthy_result(r)))
    ranked = sorted(results, key=lambda r: key(r, specs))
    return ranked[0] if ranked else None


def _outcome(method: str, target: Target, trials: Trials, seconds: float, proposals: int, valid: int,
             source: str = "", goal: Objective | None = None) -> Outcome:
    """The outcome of what a method simulated: its best design (among those met at every corner when any is), met
    only when simulated and met at every corner."""
    specs = target.specs
    met = [r for i, r in enumerate(trials.results) if trials.met(i, specs)]
    best = _best(met or trials.results, specs, goal)
    short = result_shortfall(best, specs) if best else None
    is_met = bool(met)
    metrics = best.metrics if best else None
    return Outcome(method=method, target=target.name, kind=target.kind, met=is_met, shortfall=short,
                   simulations=trials.simulations, seconds=seconds, proposals=proposals, valid=valid,
                   working=trials.working, source=source,
                   met_v1=any(trials.complete(i) and met_v1(r, specs) for i, r in enumerate(trials.results)),
                   metrics=metrics.to_dict() if metrics else None, design=best.design.to_dict() if best else None,
                   errors=metric_errors(metrics, target.reference), specs=specs.given(),
                   objective_value=_value(best, goal) if is_met else None, corners=list(trials.corners))


def _value(result: SimResult | None, goal: Objective | None) -> float | None:
    if result is None or goal is None or not goal.improves:
        return None
    value = goal.value(figures_of(result))
    return None if math.isnan(value) else value


def met_v1(result: SimResult, specs: Specs) -> bool:
    """Met under v1's definitions: the v1 health rule (no railed output, no device in triode or off; a zero shelf is
    no flag) and the open-loop metrics."""
    if result.status != Status.OK or result.health is None or result.metrics is None:
        return False
    return shortfall(result, specs, result.status, regrade(result.health, V1_HEALTH).healthy) == 0.0


def _met(result: SimResult, specs: Specs) -> bool:
    return result_shortfall(result, specs) == 0.0


def _features(rows: pd.DataFrame) -> np.ndarray:
    """Metric space for nearest-neighbour distances: one unit = 6 dB, 10 degrees or a decade."""
    return metric_units(rows, ERROR_KEYS)


def nearest_neighbour(target: Target, ctx: Context) -> Outcome:
    """The training design whose recorded metrics are closest to the target's (given specs only), simulated."""
    start = time.perf_counter()
    wanted = target.reference.to_dict() if target.reference else target.specs.to_dict()
    point = _features(pd.DataFrame([{k: (np.nan if wanted.get(k) is None else wanted[k]) for k in ERROR_KEYS}]))[0]
    use = ~np.isnan(point)
    known = ctx.features[:, use]
    known = np.where(np.isnan(known), point[use] + 3.0, known)  # a training design without this metric: far
    index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(known)
    row = ctx.working.iloc[int(index.kneighbors(point[use][None], return_distance=False)[0, 0])]
    trials = ctx.trials([design_of(row)], target.specs)
    return _outcome("nearest-neighbour", target, trials, time.perf_counter() - start, 1, 1, goal=ctx.goal,
                    source="nearest-neighbour")


def random_search(target: Target, ctx: Context, seed: int, batch: int = 4) -> Outcome:
    """Log-uniform random designs in batches until one meets the specs or the budget is spent (with corners, until
    no further design's every corner fits in what is left)."""
    start = time.perf_counter()
    budget = ctx.config.budget
    pending = random_designs(ctx.tech, budget, seed)
    trials = Trials(corners=ctx.corner_names)
    while pending and not trials.any_met(target.specs):
        size_now = min(batch, (budget - trials.simulations) // ctx.max_cost)
        if size_now < 1:
            break
        trials.extend(ctx.trials(pending[:size_now], target.specs))
        pending = pending[size_now:]
    n = len(trials.results)
    return _outcome("random-search", target, trials, time.perf_counter() - start, n, n, goal=ctx.goal,
                    source="random-search" if n else "")


def _suggested(trial, tech: Technology) -> Design:
    """The design an Optuna trial suggests over the technology's bounds (log scale for R0, C0, L, W)."""
    return Design(**{k: trial.suggest_float(k, *tech.bounds[k], log=VARIABLE_BY_KEY[k].log_scale) for k in DESIGN_KEYS})


def optuna_tpe(target: Target, ctx: Context, seed: int) -> Outcome:
    """Optuna's TPE over the design space (log scale for R0, C0, L, W), minimising the shortfall, one at a time."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    trials = Trials(corners=ctx.corner_names)
    while trials.simulations + ctx.max_cost <= ctx.config.budget:
        trial = study.ask()
        trials.extend(ctx.trials([_suggested(trial, ctx.tech)], target.specs))
        study.tell(trial, result_shortfall(trials.results[-1], target.specs))
        if trials.met(len(trials.results) - 1, target.specs):
            break
    n = len(trials.results)
    return _outcome("optuna-tpe", target, trials, time.perf_counter() - start, n, n, goal=ctx.goal,
                    source="optuna-tpe" if n else "")


def optuna_constrained(target: Target, ctx: Context, seed: int) -> Outcome:
    """Optuna's TPE with constraints (`constraints_func`): minimise the objective (min-power unless the eval says
    otherwise; max-margin falls back to min-power) subject to every spec's margin and a healthy working amplifier,
    under the same budget. The constrained optimiser a user would pick instead of icgen."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    goal = ctx.goal if ctx.goal.improves else objective("min-power")
    start = time.perf_counter()
    sampler = optuna.samplers.TPESampler(seed=seed, constraints_func=lambda trial: trial.user_attrs["violations"])
    study = optuna.create_study(direction="minimize", sampler=sampler)
    trials = Trials(corners=ctx.corner_names)
    while trials.simulations + ctx.max_cost <= ctx.config.budget:
        trial = study.ask()
        trials.extend(ctx.trials([_suggested(trial, ctx.tech)], target.specs))
        result = trials.results[-1]
        working = result.status == Status.OK and healthy_result(result)
        checks = check_specs(result if result.metrics else None, target.specs)
        violations = [0.0 if c.met else (1.0 if c.margin is None else -c.margin / SPEC_KINDS[c.key].scale)
                      for c in checks] + [0.0 if working else 1.0]
        trial.set_user_attr("violations", violations)
        value = goal.value(figures_of(result)) if result.metrics else math.nan
        study.tell(trial, value if not math.isnan(value) else 10.0)
    n = len(trials.results)
    return _outcome("optuna-constrained", target, trials, time.perf_counter() - start, n, n,
                    source="optuna-constrained" if n else "", goal=goal)


def _sized(method: str, target: Target, ctx: Context, config: SizeConfig) -> Outcome:
    """One `icgen size` run on the target with this config, the context's model (or proposer) and surrogate; with
    corners `size_at_corners` (as `icgen size --corners`), each candidate judged by the corners it was simulated at."""
    options = dict(table=ctx.train, model=ctx.model, tokenizer=ctx.tokenizer, fmt=ctx.fmt,
                   load_surrogate=lambda: ctx.surrogate, proposer=ctx.proposer)
    if ctx.corners:
        recorder = CornerRecorder(ctx.pool)
        result = size_at_corners(target.specs, ctx.tech, ctx.corners, config, recorder,
                                 corner_config=ctx.corner_config, retrieval_table=ctx.corner_table,
                                 **options).result
        results = [c.result for c in result.candidates]
        trials = Trials(results, [recorder.runs.get(_key(r.design), []) for r in results], result.simulations,
                        ctx.corner_names)
    else:
        result = size(target.specs, ctx.tech, config, ctx.pool, **options)
        results = [c.result for c in result.candidates]
        trials = Trials(results, [[(None, r)] for r in results], len(results))
    proposals = len(results) + result.invalid_model_answers
    return _outcome(method, target, trials, result.seconds, proposals, len(results), source=winning_source(result),
                    goal=ctx.goal)


def loop(target: Target, ctx: Context, seed: int) -> Outcome:
    """The full `icgen size` loop with the eval's budget and samples (model already loaded)."""
    config = SizeConfig(samples=SizeConfig.samples if ctx.has_model else 0, budget=ctx.config.budget, seed=seed,
                        objective=ctx.config.objective)
    return _sized("loop", target, ctx, config)


def retrieval(target: Target, ctx: Context, seed: int) -> Outcome:
    """The loop's top-ranked training design (`rank_rows`, first row), simulated once as the loop simulates it."""
    config = SizeConfig(steps=("retrieval",), retrieve=1, samples=0, budget=ctx.config.budget, seed=seed,
                        objective=ctx.config.objective)
    return _sized("retrieval", target, ctx, config)


def retrieval_move(target: Target, ctx: Context, seed: int) -> Outcome:
    """The fix model's control at its cost (one simulation): retrieval's first design when its recorded metrics meet
    the target (as a model answering `keep` would), otherwise that design with one single move of the fix move set
    drawn at random (`icgen.llm.fixes.single_moves`): what a model that cannot read the verdict would answer."""
    from ..llm.fixes import FixConfig, single_moves

    ranked = rank_rows(ctx.train, target.specs)
    if not len(ranked):
        return _outcome("retrieval-move", target, Trials(corners=ctx.corner_names), 0.0, 0, 0)
    start = time.perf_counter()
    top = ranked.iloc[0]
    design, source = design_of(top), "retrieval"
    if shortfall(metrics_of(top), target.specs) > 0:
        moves = single_moves(design, ctx.tech, FixConfig())
        rng = np.random.default_rng([seed, zlib.crc32(target.name.encode())])
        design, source = moves[int(rng.integers(len(moves)))], "move"
    trials = ctx.trials([design], target.specs)
    return _outcome("retrieval-move", target, trials, time.perf_counter() - start, 1, 1, source=source,
                    goal=ctx.goal)


def retrieval_local(target: Target, ctx: Context, seed: int) -> Outcome:
    """The loop's retrieval, then its random local search around the best design, under the eval's budget."""
    config = SizeConfig(steps=("retrieval", "local"), samples=0, budget=ctx.config.budget, seed=seed,
                        objective=ctx.config.objective)
    return _sized("retrieval-local", target, ctx, config)


def model_loop(target: Target, ctx: Context, seed: int) -> Outcome:
    """The loop's retrieval, then only the model (its greedy answer and `loop_samples - 1` sampled ones a round,
    shown the best so far; all sampled when the best has not changed) until the budget is spent or `loop_patience`
    rounds in a row bring nothing new; no surrogate, no refinement, no local search."""
    budget = ctx.config.budget
    config = SizeConfig(steps=("retrieval", "model"), samples=ctx.config.loop_samples, model_rounds=budget,
                        model_patience=ctx.config.loop_patience, budget=budget, seed=seed,
                        objective=ctx.config.objective)
    return _sized("model-loop", target, ctx, config)


def model_only(targets: list[Target], ctx: Context, best_of: int, seed: int) -> list[Outcome]:
    """Greedy (best_of 1) or greedy + best_of-1 sampled answers per target; generation batched over targets and its
    time shared equally among them; each target's answers simulated together."""
    from ..llm.complete import complete, spec_prompt, usable_designs

    method = "model-greedy" if best_of == 1 else "model-best-of-n"
    prompts, retrieved = [], []
    for target in targets:
        ranked = rank_rows(ctx.train, target.specs)
        top = ranked.iloc[0] if len(ranked) else None
        start = (design_of(top), metrics_of(top)) if top is not None else None  # what an edit prompt starts from
        prompts.append(spec_prompt(target.specs, metrics_of(top) if top is not None else None, ctx.fmt, start))
        retrieved.append(design_of(ranked.iloc[0]) if len(ranked) else None)
    start = time.perf_counter()
    completions = complete(ctx.model, ctx.tokenizer, prompts, fmt=ctx.fmt, temperature=0.0, seed=seed,
                           max_new_tokens=SizeConfig.max_new_tokens, starts=retrieved)
    if best_of > 1:
        completions += complete(ctx.model, ctx.tokenizer, prompts, fmt=ctx.fmt, num_samples=best_of - 1,
                                temperature=SizeConfig.temperature, seed=seed, max_new_tokens=SizeConfig.max_new_tokens,
                                batch_size=max(1, ctx.config.generate_batch // (best_of - 1)), starts=retrieved)
    shared = (time.perf_counter() - start) / max(len(targets), 1)
    outcomes = []
    for i, target in enumerate(targets):
        mine = [c for c in completions if c.prompt_index == i]
        designs, invalid = usable_designs(mine, ctx.tech)
        sim_start = time.perf_counter()
        trials = ctx.trials(designs, target.specs)
        seconds = shared + time.perf_counter() - sim_start
        met = [r for k, r in enumerate(trials.results) if trials.met(k, target.specs)]
        best = _best(met or trials.results, target.specs)
        source = "" if best is None else \
            "retrieval" if retrieved[i] is not None and same_design(best.design, retrieved[i]) else "model"
        outcomes.append(_outcome(method, target, trials, seconds, len(mine), len(designs), source=source,
                                 goal=ctx.goal))
    return outcomes


@dataclass(frozen=True)
class Method:
    """An eval method: per target (`run(target, ctx, seed)`) or batched over targets (`batch(targets, ctx, seed)`)."""

    name: str
    run: Callable[[Target, Context, int], Outcome] | None = None
    batch: Callable[[list[Target], Context, int], list[Outcome]] | None = None
    needs_model: bool = False
    """Skipped when the eval runs without a model."""


REGISTRY: dict[str, Method] = {m.name: m for m in (
    Method("nearest-neighbour", run=lambda target, ctx, seed: nearest_neighbour(target, ctx)),
    Method("retrieval", run=retrieval),
    Method("retrieval-move", run=retrieval_move),
    Method("random-search", run=random_search),
    Method("optuna-tpe", run=optuna_tpe),
    Method("optuna-constrained", run=optuna_constrained),
    Method("retrieval-local", run=retrieval_local),
    Method("loop", run=loop),
    Method("model-greedy", batch=lambda targets, ctx, seed: model_only(targets, ctx, 1, seed), needs_model=True),
    Method("model-best-of-n", batch=lambda targets, ctx, seed: model_only(targets, ctx, ctx.config.samples, seed),
           needs_model=True),
    Method("model-loop", run=model_loop, needs_model=True),
)}
METHODS: tuple[str, ...] = tuple(REGISTRY)
if METHODS != METHOD_NAMES:  # pragma: no cover - a method added in one place only
    raise ImportError(f"eval methods {METHODS} differ from config.METHOD_NAMES {METHOD_NAMES}")
