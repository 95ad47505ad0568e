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
"""
from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
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
from ..sizing.loop import UGB_BENCHES, SizeConfig, SizeResult, objective_rank, size
from ..sizing.retrieval import rank_rows
from .config import METHOD_NAMES
from .outcome import ERROR_KEYS, Outcome, Target, metric_errors

if TYPE_CHECKING:
    from .config import EvalConfig


class Context:
    """What every method shares: technology, simulator pool, training rows, model, budget."""

    def __init__(self, tech: Technology, pool, train: pd.DataFrame, config: EvalConfig,
                 model=None, tokenizer=None, fmt: str = "compact", surrogate=None, proposer=None):
        self.tech, self.pool, self.train, self.config = tech, pool, train, config
        self.surrogate = surrogate
        self.model, self.tokenizer, self.fmt = model, tokenizer, fmt
        self.proposer = proposer
        """An icgen.sizing.loop.Proposer the model-loop asks instead of the model (None: the model)."""
        self.goal = objective(config.objective)
        """What the loop-based methods optimise once a target's specs are met; every outcome records its value."""
        self.sim_config = SimConfig(tech=tech, benches=UGB_BENCHES)  # every method's UGB checked alike
        self.working = train[train["working"]].reset_index(drop=True)
        self.features = _features(self.working)

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


def _outcome(method: str, target: Target, results: list[SimResult], seconds: float, proposals: int, valid: int,
             source: str = "", goal: Objective | None = None) -> Outcome:
    best = _best(results, target.specs, goal)
    short = result_shortfall(best, target.specs) if best else None
    metrics = best.metrics if best else None
    return Outcome(method=method, target=target.name, kind=target.kind, met=short == 0.0, shortfall=short,
                   simulations=len(results), seconds=seconds, proposals=proposals, valid=valid,
                   working=sum(r.status == Status.OK and healthy_result(r) for r in results), source=source,
                   met_v1=any(met_v1(r, target.specs) for r in results),
                   metrics=metrics.to_dict() if metrics else None, design=best.design.to_dict() if best else None,
                   errors=metric_errors(metrics, target.reference), specs=target.specs.given(),
                   objective_value=_value(best, goal) if short == 0.0 else None)


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
    results = ctx.simulate([design_of(row)], target.specs)
    return _outcome("nearest-neighbour", target, results, time.perf_counter() - start, 1, 1, goal=ctx.goal,
                    source="nearest-neighbour")


def random_search(target: Target, ctx: Context, seed: int, batch: int = 4) -> Outcome:
    """Log-uniform random designs in batches until one meets the specs or the budget is spent."""
    start = time.perf_counter()
    pending = random_designs(ctx.tech, ctx.config.budget, seed)
    results: list[SimResult] = []
    while pending and not any(_met(r, target.specs) for r in results):
        results += ctx.simulate(pending[:batch], target.specs)
        pending = pending[batch:]
    return _outcome("random-search", target, results, time.perf_counter() - start, len(results), len(results),
                    goal=ctx.goal,
                    source="random-search" if results else "")


def _suggested(trial, tech: Technology) -> Design:
    """The design an Optuna trial suggests over the technology's bounds (log scale for R0, C0, L, W)."""
    return Design(**{k: trial.suggest_float(k, *tech.bounds[k], log=VARIABLE_BY_KEY[k].log_scale) for k in DESIGN_KEYS})


def optuna_tpe(target: Target, ctx: Context, seed: int) -> Outcome:
    """Optuna's TPE over the design space (log scale for R0, C0, L, W), minimising the shortfall, one at a time."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    results: list[SimResult] = []
    for _ in range(ctx.config.budget):
        trial = study.ask()
        result = ctx.simulate([_suggested(trial, ctx.tech)], target.specs)[0]
        results.append(result)
        study.tell(trial, result_shortfall(result, target.specs))
        if _met(result, target.specs):
            break
    return _outcome("optuna-tpe", target, results, time.perf_counter() - start, len(results), len(results),
                    goal=ctx.goal,
                    source="optuna-tpe" if results else "")


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
    results: list[SimResult] = []
    for _ in range(ctx.config.budget):
        trial = study.ask()
        result = ctx.simulate([_suggested(trial, ctx.tech)], target.specs)[0]
        results.append(result)
        working = result.status == Status.OK and healthy_result(result)
        checks = check_specs(result if result.metrics else None, target.specs)
        violations = [0.0 if c.met else (1.0 if c.margin is None else -c.margin / SPEC_KINDS[c.key].scale)
                      for c in checks] + [0.0 if working else 1.0]
        trial.set_user_attr("violations", violations)
        value = goal.value(figures_of(result)) if result.metrics else math.nan
        study.tell(trial, value if not math.isnan(value) else 10.0)
    return _outcome("optuna-constrained", target, results, time.perf_counter() - start, len(results), len(results),
                    source="optuna-constrained" if results else "", goal=goal)


def _sized(method: str, target: Target, ctx: Context, config: SizeConfig) -> Outcome:
    """One `icgen size` run on the target with this config, the context's model (or proposer) and surrogate."""
    result = size(target.specs, ctx.tech, config, ctx.pool, table=ctx.train, model=ctx.model,
                  tokenizer=ctx.tokenizer, fmt=ctx.fmt, load_surrogate=lambda: ctx.surrogate, proposer=ctx.proposer)
    results = [c.result for c in result.candidates]
    proposals = len(results) + result.invalid_model_answers
    return _outcome(method, target, results, result.seconds, proposals, len(results), source=winning_source(result),
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
        return _outcome("retrieval-move", target, [], 0.0, 0, 0)
    start = time.perf_counter()
    top = ranked.iloc[0]
    design, source = design_of(top), "retrieval"
    if shortfall(metrics_of(top), target.specs) > 0:
        moves = single_moves(design, ctx.tech, FixConfig())
        rng = np.random.default_rng([seed, zlib.crc32(target.name.encode())])
        design, source = moves[int(rng.integers(len(moves)))], "move"
    results = ctx.simulate([design], target.specs)
    return _outcome("retrieval-move", target, results, time.perf_counter() - start, 1, len(results), source=source,
                    goal=ctx.goal)


def retrieval_local(target: Target, ctx: Context, seed: int) -> Outcome:
    """The loop's retrieval, then its random local search around the best design, under the eval's budget."""
    config = SizeConfig(steps=("retrieval", "local"), samples=0, budget=ctx.config.budget, seed=seed,
                        objective=ctx.config.objective)
    return _sized("retrieval-local", target, ctx, config)


def model_loop(target: Target, ctx: Context, seed: int) -> Outcome:
    """The loop's retrieval, then only the model (its greedy answer and `loop_samples - 1` sampled ones a round,
    shown the best so far) until the budget is spent or a round brings nothing new; no surrogate, no refinement,
    no local search."""
    budget = ctx.config.budget
    config = SizeConfig(steps=("retrieval", "model"), samples=ctx.config.loop_samples, model_rounds=budget,
                        budget=budget, seed=seed, objective=ctx.config.objective)
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
        results = ctx.simulate(designs, target.specs)
        seconds = shared + time.perf_counter() - sim_start
        best = _best(results, target.specs)
        source = "" if best is None else \
            "retrieval" if retrieved[i] is not None and same_design(best.design, retrieved[i]) else "model"
        outcomes.append(_outcome(method, target, results, seconds, len(mine), len(designs), source=source,
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
