"""`icgen eval`: the sizing loop and its baselines on the same held-out targets and the same simulation budget.

    result = evaluate(EvalConfig(n=200, budget=20), EvalRun("out/eval"), Dataset("data/ptm65"), tech)

Each (method, target) outcome is appended to the run folder (`icgen.eval.folder.EvalRun`) as it finishes, so an
interrupted run resumes; the report (`icgen.eval.report`) is rewritten at the end.
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from ..core.io import git_sha
from ..core.objective import objective
from ..core.tech import Technology
from ..data.dataset import Dataset
from ..sim.backends import ngspice_version
from ..sim.engines import open_pool, pool_provenance
from ..sizing.config import CornerSizeConfig
from ..sizing.corner_table import corner_table
from ..sizing.surrogate import surrogate_loader, surrogate_provenance
from .config import EvalConfig
from .folder import EvalRun, EvalRunError
from .methods import REGISTRY, Context
from .outcome import Outcome, Target
from .report import update_model_card, write_report
from .targets import TargetsError, all_targets, worst_corner_targets


def run_eval(targets: list[Target], ctx: Context, out: Path | EvalRun, progress=None) -> list[Outcome]:
    """Every method of the config on every target; outcomes appended to the run's outcomes.jsonl as they finish."""
    run = out if isinstance(out, EvalRun) else EvalRun(out)
    run.folder.mkdir(parents=True, exist_ok=True)
    done = run.done()
    config = ctx.config
    for name in config.methods:
        method = REGISTRY[name]
        if method.needs_model and ctx.model is None:
            continue
        todo = [(i, t) for i, t in enumerate(targets) if (name, t.name) not in done]
        bar = progress(total=len(targets), initial=len(targets) - len(todo), desc=name) if progress else None
        if method.batch is not None:
            for start in range(0, len(todo), config.generate_batch):
                chunk = [t for _, t in todo[start:start + config.generate_batch]]
                outcomes = method.batch(chunk, ctx, config.seed)
                run.append(outcomes)
                done.update({(o.method, o.target): o for o in outcomes})
                if bar:
                    bar.update(len(chunk))
        else:
            for i, target in todo:
                outcome = method.run(target, ctx, config.seed * 100003 + i)
                run.append([outcome])
                done[(name, target.name)] = outcome
                if bar:
                    bar.update(1)
        if bar:
            bar.close()
    names = {t.name for t in targets}
    return [o for key, o in done.items() if key[1] in names and key[0] in config.methods]


def evaluate(config: EvalConfig, run: EvalRun, data: Dataset, tech: Technology, model_dir: str | Path | None = None,
             progress=None, log: Callable[[str], None] | None = None, update_card: bool = False,
             scheduler: str | None = None) -> dict:
    """A whole eval: targets, the model (when `model_dir` is given), the resumable run, the report and provenance.

    Returns {"report": path, "card": path or None, "outcomes": [...]}.
    """
    from ..llm.model import load_finetuned, run_config
    from ..llm.model import model_info as read_model_info

    config = config.resolved(tech)  # a bad corner or set is refused here, before the run folder is touched
    corners = config.corner_set(tech)
    data.require()
    heldout = None
    if corners and config.corner_targets == "worst" and config.n:  # simulated at every corner: see the docstring
        with open_pool(scheduler=scheduler) as pool:
            heldout, dropped = worst_corner_targets(data, config, tech, corners, pool, CornerSizeConfig().bias)
        if log and dropped:
            log(f"{len(dropped)} of {len(heldout) + len(dropped)} held-out designs are not healthy working amplifiers "
                f"at every corner of {config.corners}: no target from them")
    targets = all_targets(data, config, heldout)
    low, high = tech.bounds["VIN"]
    pinned = next((t for t in targets if t.specs.vin_v is not None and not low <= t.specs.vin_v <= high), None)
    if pinned is not None:  # refused now, not hours into the run when the loop reaches it
        raise TargetsError(f"{{targets}}: target {pinned.name!r} fixes vin_v {pinned.specs.vin_v:g} V, outside "
                           f"{tech.name}'s VIN range {low:g} to {high:g} V")
    run.claim({"config": config.stamp(), "data": str(data.folder.resolve()), "model": str(model_dir or "none"),
               "tech": tech.name})
    model = tokenizer = info = None
    fmt = "compact"
    if model_dir is not None:
        fmt = run_config(model_dir)["format"]
        info = read_model_info(model_dir)
        model, tokenizer = load_finetuned(model_dir, merge=True)
    elif update_card:
        raise EvalRunError("{update_card} needs a model; drop {model} none")
    started = time.time()
    sessions = run.begin_session()
    train = data.training_rows(config.split_kind)
    with open_pool(scheduler=scheduler) as pool:
        engine = pool_provenance(pool)
        loader = surrogate_loader(data, config.split_kind, log) if "loop" in config.methods else None
        table = corner_table(data, config.split_kind, tech, corners, pool, CornerSizeConfig().bias, progress=progress,
                             log=log) if corners else None
        ctx = Context(tech, pool, train, config, model=model, tokenizer=tokenizer, fmt=fmt,
                      surrogate=loader() if loader else None, corner_table=table)
        outcomes = run_eval(targets, ctx, run, progress=progress)
    sessions = run.end_session(sessions, time.time() - started)
    provenance = {"git": git_sha(), "ngspice": ngspice_version(), "tech": tech.name, "data": str(data.folder),
                  "training designs": int(train["working"].sum()), "model": info,
                  "surrogate": surrogate_provenance(data, config.split_kind),
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
                  "engine": engine, "sessions": sessions,
                  "corners": {"set": config.corners, "names": [c.name for c in corners],
                              "bias": str(ctx.corner_config.bias),
                              "heldout_targets_from": config.corner_targets} if corners else None}
    dataset_best = None
    goal = objective(config.objective)
    if goal.improves:  # the best training design meeting each target, by its recorded figures: the objective's yardstick
        from ..sizing.tradeoffs import best_known

        dataset_best = {t.name: best_known(train, t.specs, goal) for t in targets}
    report = write_report(outcomes, config, run.folder, provenance, dataset_best=dataset_best)
    card = update_model_card(model_dir, outcomes, config, report) if update_card and model_dir is not None else None
    return {"report": report, "card": card, "outcomes": outcomes}
