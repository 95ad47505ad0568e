"""The eval's report: a summary table per method, a figure, the hand-written and file targets, paired comparisons
(icgen.eval.paired), and the model card section."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .folder import EvalRun
from .methods import METHODS
from .outcome import Outcome
from .paired import paired_rows
from .targets import HAND_TARGETS

if TYPE_CHECKING:
    from .config import EvalConfig


def summarize(outcomes: list[Outcome], kind: str = "heldout") -> pd.DataFrame:
    """One row per method: success, validity, cost and median per-metric error over targets of one kind."""
    rows = []
    frame = pd.DataFrame([asdict(o) for o in outcomes if o.kind == kind])
    if frame.empty:
        return pd.DataFrame()
    for method in [m for m in METHODS if m in set(frame["method"])]:
        part = frame[frame["method"] == method]
        proposals = part["proposals"].sum()
        old = part["met_v1"].dropna() if "met_v1" in part else pd.Series(dtype=bool)
        row = {"method": method, "targets": len(part), "met %": 100 * part["met"].mean(),
               "met % (v1 rules)": 100 * old.astype(bool).mean() if len(old) else float("nan"),
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


def target_table(outcomes: list[Outcome], kind: str) -> pd.DataFrame:
    """Targets of one kind x methods: 'met (sims)' or the remaining shortfall; targets in the order they ran."""
    frame = pd.DataFrame([asdict(o) for o in outcomes if o.kind == kind])
    if frame.empty:
        return frame
    cell = frame.apply(lambda r: f"met ({r['simulations']})" if r["met"] else
                       f"short {r['shortfall']:.2g} ({r['simulations']})" if pd.notna(r["shortfall"]) else
                       f"no design ({r['simulations']})", axis=1)
    table = frame.assign(cell=cell).pivot(index="target", columns="method", values="cell")
    order = [t for t, _ in HAND_TARGETS if t in table.index] if kind == "hand" else list(dict.fromkeys(frame["target"]))
    return table.loc[order, [m for m in METHODS if m in table.columns]]


def hand_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """Hand-written targets x methods: 'met (sims)' or the remaining shortfall."""
    return target_table(outcomes, "hand")


def source_lines(outcomes: list[Outcome], kind: str = "heldout") -> list[str]:
    """Where each method's winning designs came from on the targets it met, for methods with more than one origin."""
    parts = []
    for method in METHODS:
        sources = pd.Series([o.source for o in outcomes if o.method == method and o.kind == kind and o.met])
        if len(sources) and set(sources) != {method}:
            parts.append(f"{method}: " + ", ".join(f"{k} {v}" for k, v in sources.value_counts().items()))
    return [f"Where the winning designs came from ({kind} targets met): " + "; ".join(parts) + ".", ""] if parts else []


PAIRED_NOTE = ("Paired comparisons on the same targets: McNemar's exact test (two-sided binomial test at 1/2 on the "
               "targets only one of the two met) and the difference in met share A − B in percentage points with "
               "Newcombe's 95 % interval for paired proportions (method 10: Wilson score limits combined with the "
               "pairs' phi correlation).")


def paired_section(outcomes: list[Outcome]) -> list[str]:
    """The report's "Paired comparisons" lines: one table per target kind where a pair of methods both ran."""
    lines = []
    for kind in ("heldout", "file"):
        rows = paired_rows(outcomes, kind)
        if rows:
            lines += [f"{kind} targets:", "", pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"), ""]
    return ["## Paired comparisons", "", PAIRED_NOTE, "", *lines] if lines else []


def objective_table(outcomes: list[Outcome], dataset_best: dict[str, float | None]) -> pd.DataFrame:
    """Per method, on the targets it met: its objective against the best known for the same target (the best over
    every method's met designs and the best training design meeting it), as a factor 10 ** (value - best)."""
    best: dict[str, float] = {}
    for name, value in dataset_best.items():
        if value is not None:
            best[name] = value
    for o in outcomes:
        if o.met and o.objective_value is not None:
            best[o.target] = min(best.get(o.target, np.inf), o.objective_value)
    rows = []
    for method in [m for m in METHODS if any(o.method == m for o in outcomes)]:
        mine = [o for o in outcomes if o.method == method]
        ratios = np.array([10 ** (o.objective_value - best[o.target]) for o in mine
                           if o.met and o.objective_value is not None and o.target in best])
        vs_data = np.array([10 ** (o.objective_value - dataset_best[o.target]) for o in mine
                            if o.met and o.objective_value is not None and dataset_best.get(o.target) is not None])
        rows.append({"method": method, "targets": len(mine), "met %": 100 * np.mean([o.met for o in mine]),
                     "median x best known": float(np.median(ratios)) if len(ratios) else float("nan"),
                     "median x best training design": float(np.median(vs_data)) if len(vs_data) else float("nan"),
                     "within 1.5x of it %": 100 * float(np.mean(vs_data <= 1.5)) if len(vs_data) else float("nan"),
                     "p90 x best known": float(np.quantile(ratios, 0.9)) if len(ratios) else float("nan"),
                     "within 1.2x %": 100 * float(np.mean(ratios <= 1.2)) if len(ratios) else float("nan"),
                     "median sims": float(np.median([o.simulations for o in mine]))})
    return pd.DataFrame(rows)


def write_report(outcomes: list[Outcome], config: EvalConfig, out: Path | EvalRun, provenance: dict,
                 dataset_best: dict[str, float | None] | None = None) -> Path:
    """report.md (tables, tolerance, provenance), eval.png, summary.csv, outcomes.csv and meta.json of a run."""
    run = out if isinstance(out, EvalRun) else EvalRun(out)
    summary = summarize(outcomes)
    summary.to_csv(run.path(EvalRun.SUMMARY), index=False)
    pd.DataFrame([asdict(o) for o in outcomes]).to_csv(run.path(EvalRun.OUTCOMES_CSV), index=False)
    budget = config.budget or max((o.simulations for o in outcomes), default=1)  # None: corners not yet resolved
    figure = plot_eval(outcomes, run.path(EvalRun.FIGURE), budget) if not summary.empty else None
    tol = config.tolerance
    lines = [
        "# icgen eval", "",
        f"{int(summary['targets'].max()) if not summary.empty else 0} held-out targets from the "
        f"`{config.split}` split ({config.split_kind} splits), budget {config.budget} simulations per target and "
        f"method, best-of-N with N = {config.samples}, the loop with `icgen size`'s defaults, seed {config.seed}.", "",
        f"Targets: each held-out design's simulated metrics as bounds relaxed by the tolerance: gain ≥ gain − "
        f"{tol.gain_db:g} dB, UGB ≥ {1 - tol.relative:g}×, PM ≥ PM − {tol.pm_deg:g}°, GM ≥ GM − {tol.gm_db:g} dB "
        f"(when positive), BW ≥ {1 - tol.relative:g}×, power ≤ {1 + tol.relative:g}×. Met = every bound holds on "
        "a healthy operating point, re-simulated by ngspice: no railed output, every device at least 50 mV into "
        "saturation, and a UGB the unity-gain buffer's bandwidth agrees with (≥ 0.8×, no zero shelf). "
        "`met % (v1 rules)` judges the same runs by the old definitions: no device in triode or off, the open-loop "
        "UGB taken as measured.", "",
        "Columns: valid % = model answers (or proposed designs) that parse and validate into an in-range netlist; "
        "working % = simulated candidates that are healthy working amplifiers; sims and seconds per target "
        "(failures count the budget they spent); errors = median |best design − held-out design| per metric. "
        "Model-only methods generate for many targets in one batch; each target is charged an equal share of "
        "that time. The loop's seconds include its own generate calls and surrogate steps; loading the model and the "
        "surrogate (once per run) is excluded.", "",
        summary.to_markdown(index=False, floatfmt=".3g") if not summary.empty else "(no held-out targets)", "",
    ]
    if config.corners is not None:
        names = provenance.get("corners", {}) or {}
        lines[4:4] = [corner_note(config, names.get("names") or []), ""]
    if figure:
        lines += [f"![eval]({figure.name})", ""]
    lines += source_lines(outcomes)
    if dataset_best is not None:
        table = objective_table(outcomes, dataset_best)
        known = sum(v is not None for v in dataset_best.values())
        lines += [f"## Objective: {config.objective}", "",
                  f"Each method's objective on the targets it met, as a factor of the best known for the same target: "
                  f"the best over every method's met designs and the best training design meeting it ({known} of "
                  f"{len(dataset_best)} targets have one). 1.0 is the best known; 2.0 twice its power for min-power. "
                  f"The loop keeps a margin on every bound (`SizeConfig.margin`); the baselines do not.", "",
                  table.to_markdown(index=False, floatfmt=".3g"), ""]
    hand = hand_table(outcomes)
    if not hand.empty:
        lines += ["## Hand-written targets", "", "Cell: met (simulations) or remaining normalised shortfall.", "",
                  hand.to_markdown(), ""]
    mine = target_table(outcomes, "file")
    if not mine.empty:
        summary_mine = summarize(outcomes, "file").dropna(axis=1, how="all")  # no reference design: no error columns
        lines += [f"## Your targets (`{config.targets}`)", "",
                  "The specs of each line of the targets file, bounds as given. Cell: met (simulations) or remaining "
                  "normalised shortfall.", "", summary_mine.to_markdown(index=False, floatfmt=".3g"), "",
                  mine.to_markdown(), "", *source_lines(outcomes, "file")]
    lines += paired_section(outcomes)
    lines += ["## Provenance", "", "```json", json.dumps(provenance, indent=2, default=str), "```", ""]
    path = run.path(EvalRun.REPORT)
    path.write_text("\n".join(lines))
    run.path(EvalRun.META).write_text(json.dumps({"config": asdict(config), **provenance}, indent=2, default=str))
    return path


def corner_note(config: EvalConfig, names: list[str]) -> str:
    """The report's paragraph saying every method was judged at the corners of `config.corners`."""
    listed = f" ({len(names)} corners: {', '.join(names)})" if names else ""
    return (f"**Judged at every corner of `{config.corners}`**{listed}: a target is met only when its design is "
            "simulated at every corner and meets every bound on a healthy operating point at each; figures and "
            "errors are each at its worst corner. The loop-based methods run `icgen size --corners` "
            "(`size_at_corners`, scored by the worst corner); the others have each design simulated at the nominal "
            "corner first and at the rest when it passes there. Simulations count every corner (budget "
            f"{config.budget}), and no method starts a design whose every corner would not fit in what is left.")


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
