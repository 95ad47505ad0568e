"""`icgen eval`: the sizing loop and its baselines on the same held-out targets and the same simulation budget.

    outcomes = run_eval(EvalConfig(n=200, budget=20), table, splits, tech, pool, model=(model, tokenizer), out=DIR)

Targets are held-out simulated designs (feasible by construction) turned into bounds relaxed by a stated tolerance
(gain, UGB, PM, GM and BW as lower bounds, power as an upper bound), plus a few hand-written specs. Methods:

- model-greedy: the model alone, one greedy answer, simulated once (the original work's setting);
- model-best-of-n: greedy plus n-1 sampled answers, all simulated, the best kept;
- loop: `icgen size` (retrieval, surrogate steps, model, designer's directions, local search) under the budget;
- nearest-neighbour: the training design whose metrics are closest to the target, simulated;
- random-search: log-uniform random designs until the specs are met or the budget is spent;
- optuna-tpe: Optuna's TPE sampler minimising the normalised shortfall under the same budget.

Every (method, target) outcome is appended to outcomes.jsonl as it finishes, so an interrupted run resumes.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import random_designs
from .design import DESIGN_KEYS, VARIABLE_BY_KEY, Design, Metrics
from .score import LOG_METRICS as LOG_KEYS, SPEC_KEYS, SpecError, Specs, metric_units, rank_key, shortfall
from .simulate import SimConfig, SimResult, SimulatorPool
from .size import SizeConfig, model_designs, model_prompt, rank_rows, row_metrics, size
from .tech import Technology

METHODS = ("nearest-neighbour", "random-search", "optuna-tpe", "loop", "model-greedy", "model-best-of-n")
MODEL_METHODS = ("model-greedy", "model-best-of-n")
ERROR_KEYS = SPEC_KEYS


@dataclass(frozen=True)
class Tolerance:
    """How far a held-out design's metrics are relaxed to make its specs: dB, degrees, and a relative factor."""

    gain_db: float = 1.0
    pm_deg: float = 2.0
    gm_db: float = 1.0
    relative: float = 0.10
    """UGB and BW bounds at (1 - relative) x, the power bound at (1 + relative) x the design's values."""


@dataclass(frozen=True)
class EvalConfig:
    """Which targets, which methods, what budget."""

    split: str = "test"
    split_kind: str = "heldout"
    n: int = 200
    budget: int = 20
    samples: int = 6
    """N of best-of-N. The loop uses `icgen size`'s own default (SizeConfig.samples)."""
    seed: int = 0
    tolerance: Tolerance = field(default_factory=Tolerance)
    methods: tuple[str, ...] = METHODS
    hand: bool = True
    """Add the hand-written targets."""
    generate_batch: int = 16
    """Prompts per batched generate for the model-only methods."""

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
        if self.n < 0 or self.budget < 1 or self.samples < 1:
            raise ValueError("--n must be >= 0, --budget and --samples >= 1")
        if self.samples > self.budget:
            raise ValueError(f"--samples {self.samples} exceeds --budget {self.budget}: best-of-N must fit the budget")


@dataclass(frozen=True)
class Target:
    """Specs to meet; for held-out targets, the simulated metrics of the design they came from."""

    name: str
    kind: str  # heldout | hand
    specs: Specs
    reference: Metrics | None = None


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


def heldout_targets(table: pd.DataFrame, splits: pd.DataFrame, config: EvalConfig) -> list[Target]:
    """`config.n` working designs of the chosen split, drawn with the seed, as relaxed-bound targets."""
    if config.split_kind not in splits.columns:
        raise ValueError(f"--split-kind {config.split_kind!r}: the splits file has {', '.join(splits.columns[1:])}")
    index = set(splits.loc[splits[config.split_kind] == config.split, "index"])
    if not index:
        raise ValueError(f"--split {config.split!r} is empty in the {config.split_kind} splits; use test or validation")
    rows = table[table["index"].isin(index) & table["working"]]
    rows = rows.sample(n=min(config.n, len(rows)), random_state=config.seed).sort_values("index")
    targets = []
    for _, row in rows.iterrows():
        metrics = row_metrics(row)
        try:
            targets.append(Target(f"{config.split}-{int(row['index'])}", "heldout",
                                  relaxed_specs(metrics, config.tolerance), metrics))
        except SpecError:  # a metric outside what a user could ask for: not a target
            continue
    return targets


def all_targets(table: pd.DataFrame, splits: pd.DataFrame, config: EvalConfig) -> list[Target]:
    hand = [Target(name, "hand", specs) for name, specs in HAND_TARGETS] if config.hand else []
    return heldout_targets(table, splits, config) + hand


@dataclass
class Outcome:
    """One method on one target: whether it met the specs, what it cost, and how close its best design came."""

    method: str
    target: str
    kind: str
    met: bool
    shortfall: float | None
    simulations: int
    seconds: float
    proposals: int
    """Designs the method proposed (model answers included even when they could not be simulated)."""
    valid: int
    """Proposals that parsed and validated into an in-range netlist."""
    working: int
    """Simulated proposals that are healthy working amplifiers."""
    source: str = ""
    metrics: dict | None = None
    design: dict | None = None
    errors: dict = field(default_factory=dict)


def metric_errors(metrics: Metrics | None, reference: Metrics | None) -> dict[str, float]:
    """|achieved - reference| per metric: dB or degrees, decades for UGB, BW and power."""
    if metrics is None or reference is None:
        return {}
    errors = {}
    for key in ERROR_KEYS:
        a, r = getattr(metrics, key), getattr(reference, key)
        if a is None or r is None or (key in LOG_KEYS and (a <= 0 or r <= 0)):
            continue
        errors[key] = abs(math.log10(a / r)) if key in LOG_KEYS else abs(a - r)
    return errors


class Context:
    """What every method shares: technology, simulator pool, training rows, model, budget."""

    def __init__(self, tech: Technology, pool: SimulatorPool, train: pd.DataFrame, config: EvalConfig,
                 model=None, tokenizer=None, fmt: str = "compact", surrogate=None):
        self.tech, self.pool, self.train, self.config = tech, pool, train, config
        self.surrogate = surrogate
        self.model, self.tokenizer, self.fmt = model, tokenizer, fmt
        self.sim_config = SimConfig(tech=tech)
        self.working = train[train["working"]].reset_index(drop=True)
        self._features = _features(self.working)

    def simulate(self, designs: list[Design]) -> list[SimResult]:
        return [result for _, result in self.pool.map(designs, self.sim_config)] if designs else []


def _healthy(result: SimResult) -> bool:
    return bool(result.health and result.health.healthy)


def _best(results: list[SimResult], specs: Specs) -> SimResult | None:
    ranked = sorted(results, key=lambda r: rank_key(r.metrics, specs, r.status, _healthy(r)))
    return ranked[0] if ranked else None


def _outcome(method: str, target: Target, results: list[SimResult], seconds: float, proposals: int, valid: int,
             source: str = "") -> Outcome:
    best = _best(results, target.specs)
    short = shortfall(best.metrics, target.specs, best.status, _healthy(best)) if best else None
    metrics = best.metrics if best else None
    return Outcome(method=method, target=target.name, kind=target.kind, met=short == 0.0, shortfall=short,
                   simulations=len(results), seconds=seconds, proposals=proposals, valid=valid,
                   working=sum(r.status == "ok" and _healthy(r) for r in results), source=source,
                   metrics=metrics.to_dict() if metrics else None, design=best.design.to_dict() if best else None,
                   errors=metric_errors(metrics, target.reference))


def _met(result: SimResult, specs: Specs) -> bool:
    return shortfall(result.metrics, specs, result.status, _healthy(result)) == 0.0


# ---- baselines -------------------------------------------------------------------------------------------------

def _features(rows: pd.DataFrame) -> np.ndarray:
    """Metric space for nearest-neighbour distances: one unit = 6 dB, 10 degrees or a decade."""
    return metric_units(rows, ERROR_KEYS)


def nearest_neighbour(target: Target, ctx: Context) -> Outcome:
    """The training design whose recorded metrics are closest to the target's (given specs only), simulated."""
    start = time.perf_counter()
    wanted = target.reference.to_dict() if target.reference else target.specs.to_dict()
    point = _features(pd.DataFrame([{k: (np.nan if wanted.get(k) is None else wanted[k]) for k in ERROR_KEYS}]))[0]
    use = ~np.isnan(point)
    diff = np.where(np.isnan(ctx._features[:, use]), 3.0, ctx._features[:, use] - point[use])  # missing GM: far
    row = ctx.working.iloc[int(np.argmin((diff ** 2).sum(axis=1)))]
    results = ctx.simulate([Design(**{k: float(row[k]) for k in DESIGN_KEYS})])
    return _outcome("nearest-neighbour", target, results, time.perf_counter() - start, 1, 1)


def random_search(target: Target, ctx: Context, seed: int, batch: int = 4) -> Outcome:
    """Log-uniform random designs in batches until one meets the specs or the budget is spent."""
    start = time.perf_counter()
    pending = random_designs(ctx.tech, ctx.config.budget, seed)
    results: list[SimResult] = []
    while pending and not any(_met(r, target.specs) for r in results):
        results += ctx.simulate(pending[:batch])
        pending = pending[batch:]
    return _outcome("random-search", target, results, time.perf_counter() - start, len(results), len(results))


def optuna_tpe(target: Target, ctx: Context, seed: int) -> Outcome:
    """Optuna's TPE over the design space (log scale for R0, C0, L, W), minimising the shortfall, one at a time."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    results: list[SimResult] = []
    for _ in range(ctx.config.budget):
        trial = study.ask()
        values = {k: trial.suggest_float(k, *ctx.tech.bounds[k], log=VARIABLE_BY_KEY[k].log_scale)
                  for k in DESIGN_KEYS}
        result = ctx.simulate([Design(**values)])[0]
        results.append(result)
        study.tell(trial, shortfall(result.metrics, target.specs, result.status, _healthy(result)))
        if _met(result, target.specs):
            break
    return _outcome("optuna-tpe", target, results, time.perf_counter() - start, len(results), len(results))


def loop(target: Target, ctx: Context, seed: int) -> Outcome:
    """The full `icgen size` loop with the eval's budget and samples (model already loaded)."""
    config = SizeConfig(samples=SizeConfig.samples if ctx.model is not None else 0, budget=ctx.config.budget,
                        seed=seed)
    result = size(target.specs, ctx.tech, config, ctx.pool, table=ctx.train, model=ctx.model,
                  tokenizer=ctx.tokenizer, fmt=ctx.fmt, load_surrogate=lambda: ctx.surrogate)
    results = [c.result for c in result.candidates]
    proposals = len(results) + result.invalid_model_answers
    outcome = _outcome("loop", target, results, result.seconds, proposals, len(results),
                       source=result.best.source if result.best else "")
    return outcome


# ---- the model alone, batched over targets ---------------------------------------------------------------------

def model_only(targets: list[Target], ctx: Context, best_of: int, seed: int) -> list[Outcome]:
    """Greedy (best_of 1) or greedy + best_of-1 sampled answers per target; generation batched over targets and its
    time shared equally among them; each target's answers simulated together."""
    from .generate import generate

    method = "model-greedy" if best_of == 1 else "model-best-of-n"
    prompts = []
    for target in targets:
        ranked = rank_rows(ctx.train, target.specs)
        prompts.append(model_prompt(target.specs, row_metrics(ranked.iloc[0]) if len(ranked) else None, ctx.fmt))
    start = time.perf_counter()
    completions = generate(ctx.model, ctx.tokenizer, prompts, fmt=ctx.fmt, temperature=0.0, seed=seed,
                           max_new_tokens=SizeConfig.max_new_tokens)
    if best_of > 1:
        completions += generate(ctx.model, ctx.tokenizer, prompts, fmt=ctx.fmt, num_samples=best_of - 1,
                                temperature=SizeConfig.temperature, seed=seed, max_new_tokens=SizeConfig.max_new_tokens,
                                batch_size=max(1, ctx.config.generate_batch // (best_of - 1)))
    shared = (time.perf_counter() - start) / max(len(targets), 1)
    outcomes = []
    for i, target in enumerate(targets):
        mine = [c for c in completions if c.prompt_index == i]
        designs, invalid = model_designs(mine, ctx.tech)
        sim_start = time.perf_counter()
        results = ctx.simulate(designs)
        seconds = shared + time.perf_counter() - sim_start
        outcomes.append(_outcome(method, target, results, seconds, len(mine), len(designs), source="model"))
    return outcomes


# ---- the run ---------------------------------------------------------------------------------------------------

def _done(path: Path) -> dict[tuple[str, str], Outcome]:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                data = json.loads(line)
                done[(data["method"], data["target"])] = Outcome(**data)
    return done


def _append(path: Path, outcomes: list[Outcome]) -> None:
    with path.open("a") as f:
        for outcome in outcomes:
            f.write(json.dumps(asdict(outcome)) + "\n")
        f.flush()


def run_eval(targets: list[Target], ctx: Context, out: Path, progress=None) -> list[Outcome]:
    """Every method of the config on every target; outcomes appended to out/outcomes.jsonl as they finish."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "outcomes.jsonl"
    done = _done(path)
    config = ctx.config
    for method in config.methods:
        if method in MODEL_METHODS and ctx.model is None:
            continue
        todo = [(i, t) for i, t in enumerate(targets) if (method, t.name) not in done]
        bar = progress(total=len(targets), initial=len(targets) - len(todo), desc=method) if progress else None
        if method in MODEL_METHODS:
            best_of = 1 if method == "model-greedy" else config.samples
            for start in range(0, len(todo), config.generate_batch):
                chunk = [t for _, t in todo[start:start + config.generate_batch]]
                outcomes = model_only(chunk, ctx, best_of, config.seed)
                _append(path, outcomes)
                done.update({(o.method, o.target): o for o in outcomes})
                if bar:
                    bar.update(len(chunk))
        else:
            for i, target in todo:
                seed = config.seed * 100003 + i
                if method == "nearest-neighbour":
                    outcome = nearest_neighbour(target, ctx)
                elif method == "random-search":
                    outcome = random_search(target, ctx, seed)
                elif method == "optuna-tpe":
                    outcome = optuna_tpe(target, ctx, seed)
                else:
                    outcome = loop(target, ctx, seed)
                _append(path, [outcome])
                done[(method, target.name)] = outcome
                if bar:
                    bar.update(1)
        if bar:
            bar.close()
    names = {t.name for t in targets}
    return [o for key, o in done.items() if key[1] in names and key[0] in config.methods]


# ---- the report ------------------------------------------------------------------------------------------------

def summarize(outcomes: list[Outcome], kind: str = "heldout") -> pd.DataFrame:
    """One row per method: success, validity, cost and median per-metric error over targets of one kind."""
    rows = []
    frame = pd.DataFrame([asdict(o) for o in outcomes if o.kind == kind])
    if frame.empty:
        return pd.DataFrame()
    for method in [m for m in METHODS if m in set(frame["method"])]:
        part = frame[frame["method"] == method]
        proposals = part["proposals"].sum()
        row = {"method": method, "targets": len(part), "met %": 100 * part["met"].mean(),
               "valid %": 100 * part["valid"].sum() / proposals if proposals else float("nan"),
               "working %": 100 * part["working"].sum() / max(part["simulations"].sum(), 1),
               "median sims": part["simulations"].median(), "p90 sims": part["simulations"].quantile(0.9),
               "median s": part["seconds"].median(), "p90 s": part["seconds"].quantile(0.9)}
        for key, label in (("gain_db", "|Δgain| dB"), ("ugb_hz", "|ΔUGB| dec"), ("pm_deg", "|ΔPM| °"),
                           ("power_w", "|Δpower| dec")):
            values = [e[key] for e in part["errors"] if key in e]
            row[label] = float(np.median(values)) if values else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def plot_eval(outcomes: list[Outcome], path: Path, budget: int) -> Path:
    """Success rate per method, and the fraction of held-out targets met within k simulations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame([asdict(o) for o in outcomes if o.kind == "heldout"])
    methods = [m for m in METHODS if m in set(frame["method"])]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rates = [100 * frame.loc[frame["method"] == m, "met"].mean() for m in methods]
    left.barh(methods, rates, color="tab:blue")
    for y, rate in enumerate(rates):
        left.text(rate + 1, y, f"{rate:.1f}%", va="center")
    left.set_xlim(0, 110)
    left.set_xlabel("held-out targets met (%)")
    left.invert_yaxis()
    ks = np.arange(0, budget + 1)
    for m in methods:
        part = frame[frame["method"] == m]
        sims = part.loc[part["met"], "simulations"].to_numpy()
        right.step(ks, [100 * (sims <= k).sum() / len(part) for k in ks], where="post", label=m)
    right.set_xlabel("simulations spent")
    right.set_ylabel("targets met (%)")
    right.set_ylim(0, 100)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle("icgen eval: same targets, same simulation budget")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def hand_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """Hand-written targets x methods: 'met (sims)' or the remaining shortfall."""
    frame = pd.DataFrame([asdict(o) for o in outcomes if o.kind == "hand"])
    if frame.empty:
        return frame
    cell = frame.apply(lambda r: f"met ({r['simulations']})" if r["met"] else
                       f"short {r['shortfall']:.2g} ({r['simulations']})", axis=1)
    table = frame.assign(cell=cell).pivot(index="target", columns="method", values="cell")
    order = [t for t, _ in HAND_TARGETS if t in table.index]
    return table.loc[order, [m for m in METHODS if m in table.columns]]


def write_report(outcomes: list[Outcome], config: EvalConfig, out: Path, provenance: dict) -> Path:
    """report.md (tables, tolerance, provenance), eval.png, summary.csv and outcomes.csv under `out`."""
    summary = summarize(outcomes)
    summary.to_csv(out / "summary.csv", index=False)
    pd.DataFrame([asdict(o) for o in outcomes]).to_csv(out / "outcomes.csv", index=False)
    figure = plot_eval(outcomes, out / "eval.png", config.budget) if not summary.empty else None
    tol = config.tolerance
    lines = [
        "# icgen eval", "",
        f"{int(summary['targets'].max()) if not summary.empty else 0} held-out targets from the "
        f"`{config.split}` split ({config.split_kind} splits), budget {config.budget} simulations per target and "
        f"method, best-of-N with N = {config.samples}, the loop with `icgen size`'s defaults, seed {config.seed}.", "",
        f"Targets: each held-out design's simulated metrics as bounds relaxed by the tolerance: gain ≥ gain − "
        f"{tol.gain_db:g} dB, UGB ≥ {1 - tol.relative:g}×, PM ≥ PM − {tol.pm_deg:g}°, GM ≥ GM − {tol.gm_db:g} dB "
        f"(when positive), BW ≥ {1 - tol.relative:g}×, power ≤ {1 + tol.relative:g}×. Met = every bound holds on "
        "a healthy operating point (no railed output, no device in triode or off), re-simulated by ngspice.", "",
        "Columns: valid % = model answers (or proposed designs) that parse and validate into an in-range netlist; "
        "working % = simulated candidates that are healthy working amplifiers; sims and seconds per target "
        "(failures count the budget they spent); errors = median |best design − held-out design| per metric. "
        "Model-only methods generate for many targets in one batch; each target is charged an equal share of "
        "that time. The loop's seconds include its own generate calls and surrogate steps; loading the model and the "
        "surrogate (once per run) is excluded.", "",
        summary.to_markdown(index=False, floatfmt=".3g") if not summary.empty else "(no held-out targets)", "",
    ]
    if figure:
        lines += [f"![eval]({figure.name})", ""]
    loop_rows = [o for o in outcomes if o.method == "loop" and o.kind == "heldout" and o.met]
    if loop_rows:
        sources = pd.Series([o.source for o in loop_rows]).value_counts()
        lines += ["Where the loop's winning design came from (held-out targets met): " +
                  ", ".join(f"{k} {v}" for k, v in sources.items()) + ".", ""]
    hand = hand_table(outcomes)
    if not hand.empty:
        lines += ["## Hand-written targets", "", "Cell: met (simulations) or remaining normalised shortfall.", "",
                  hand.to_markdown(), ""]
    lines += ["## Provenance", "", "```json", json.dumps(provenance, indent=2, default=str), "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    (out / "meta.json").write_text(json.dumps({"config": asdict(config), **provenance}, indent=2, default=str))
    return path


CARD_HEADING = "## Closed-loop results"


def update_model_card(model_dir: str | Path, outcomes: list[Outcome], config: EvalConfig, report: Path) -> Path:
    """Replace the model card's closed-loop section (or the placeholder line) with this eval's summary table."""
    card = Path(model_dir) / "README.md"
    text = card.read_text() if card.is_file() else "# Model card\n"
    for marker in (CARD_HEADING, "Closed-loop results (designs simulated"):
        if marker in text:
            text = text[:text.index(marker)].rstrip() + "\n"
            break
    summary = summarize(outcomes)
    section = [
        "", CARD_HEADING, "",
        f"`icgen eval` on {int(summary['targets'].max())} held-out targets ({config.split} split of the "
        f"{config.split_kind} splits), budget {config.budget} simulations each; full report: `{report}`.",
        "", summary.to_markdown(index=False, floatfmt=".3g"), "",
    ]
    rates = dict(zip(summary["method"], summary["met %"]))
    if "model-greedy" in rates and "nearest-neighbour" in rates:
        verdict = "better than" if rates["model-greedy"] > rates["nearest-neighbour"] else "not better than"
        section += [f"The model alone (greedy, one shot) meets {rates['model-greedy']:.3g} % of targets: {verdict} "
                    f"nearest neighbour from the training set ({rates['nearest-neighbour']:.3g} %).", ""]
    winners = pd.Series([o.source for o in outcomes if o.method == "loop" and o.kind == "heldout" and o.met])
    if len(winners):
        section += ["Where the loop's winning designs came from: " +
                    ", ".join(f"{k} {v}" for k, v in winners.value_counts().items()) + ".", ""]
    card.write_text(text + "\n".join(section))
    return card
