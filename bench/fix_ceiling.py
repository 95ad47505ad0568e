"""How far the fix model's move set can reach: the eval's `model-loop` with an oracle in the model's place.

    .venv/bin/python bench/fix_ceiling.py [--n 200] [--budget 20] [--answers 4] [--data data/ptm65-v2]
        [--compare bench/results/eval-fix-loop] [--factors 0.5,0.7,1.4,2] [--volts -0.05,-0.02,0.02,0.05] [--coupled]

The oracle answers each round as the fix model would (the loop shows it the best candidate so far; it gives
`--answers` designs a round, as `icgen eval`'s loop_samples), but it is a perfect reader of one move: it simulates
every single move of the move set from the best candidate (`icgen.llm.fixes.single_moves`, outside the loop's
budget) and answers the best-ranked moves it has not answered before. Everything else is the eval's: the held-out
targets (seed 0), retrieval first, the budget, the loop's ranking and its health rule. So its met share is what a
model that always picked the best single moves would reach, a ceiling for one-move answers under this budget (greedy:
not the best sequence of moves); the gap from the trained model to it is the model's, the gap from it to 90 % is the
move set's. `--factors`, `--volts` and `--coupled` give the oracle another move set (`FixConfig`'s fields: the
scales of a size, the shifts of a bias, and each device's W and L scaled together), to measure what a richer set
would reach before pairs are drawn and a model trained on it. With --compare, the paired McNemar test against that
eval folder's `model-loop` and `retrieval-local`. Writes bench/results/fix-ceiling.json (fix-ceiling-bB-aA.json with
another budget or answers; -fFvV, and c when coupled, with another move set; -dN with --doubles N: two-move answers
too, the pairs of the N best single moves).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from icgen import __version__  # noqa: E402
from icgen.core.io import git_sha  # noqa: E402
from icgen.core.tech import DEFAULT_TECH, load_technology  # noqa: E402
from icgen.data.dataset import Dataset  # noqa: E402
from icgen.eval.config import EvalConfig  # noqa: E402
from icgen.eval.methods import Context, model_loop  # noqa: E402
from icgen.eval.paired import compare_paired  # noqa: E402
from icgen.eval.targets import heldout_targets  # noqa: E402
from icgen.llm.fixes import FixConfig, combine, single_moves  # noqa: E402
from icgen.sim.backends import ngspice_version  # noqa: E402
from icgen.sim.simulate import SimConfig, SimulatorPool  # noqa: E402
from icgen.sizing.loop import Proposal, default_rank  # noqa: E402


class OracleMoves:
    """A Proposer that simulates every single move from the best candidate and answers the best-ranked unanswered
    ones; `probes` counts its own simulations (outside the loop's budget)."""

    def __init__(self, tech, pool, moves: FixConfig = FixConfig(), doubles: int = 0) -> None:
        self.tech, self.pool, self.moves, self.doubles = tech, pool, moves, doubles
        self.answered: set[tuple] = set()
        self.probes = 0

    def reset(self) -> None:
        self.answered = set()

    def _simulate(self, designs, sim) -> list:
        results = [None] * len(designs)
        for index, result in self.pool.map(designs, sim):
            results[index] = result
        self.probes += len(designs)
        return results

    def propose(self, specs, best, reference, samples, config):
        if best is None:
            return None
        moves = [m for m in single_moves(best.result.design, self.tech, self.moves)
                 if tuple(m.to_dict().values()) not in self.answered]
        if not moves:
            return None
        sim = SimConfig(tech=self.tech, benches=specs.benches(), estimates=specs.needs_estimates())
        results = self._simulate(moves, sim)
        if self.doubles >= 2:  # two-move answers: the pairs of the best singles on different variables
            start = best.result.design
            order = sorted(range(len(moves)), key=lambda i: default_rank(results[i], specs))[:self.doubles]
            pairs = [c for a, b in combinations(order, 2) if (c := combine(start, moves[a], moves[b])) is not None
                     and tuple(c.to_dict().values()) not in self.answered and not self.tech.out_of_bounds(c)]
            moves, results = moves + pairs, results + self._simulate(pairs, sim)
        ranked = sorted(range(len(moves)), key=lambda i: default_rank(results[i], specs))[:samples]
        chosen = [moves[i] for i in ranked]
        self.answered.update(tuple(m.to_dict().values()) for m in chosen)
        return Proposal(texts=["oracle"] * len(chosen), designs=chosen, invalid=0)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--answers", type=int, default=EvalConfig.loop_samples, help="Answers per round.")
    parser.add_argument("--data", default=str(ROOT / "data" / "ptm65-v2"))
    parser.add_argument("--compare", default=str(ROOT / "bench" / "results" / "eval-fix-loop"))
    parser.add_argument("--factors", default=None, help="Scales of a size move, comma-separated (default: FixConfig's).")
    parser.add_argument("--volts", default=None, help="Shifts of a bias move in volts, comma-separated.")
    parser.add_argument("--coupled", action="store_true", help="Also scale each device's W and L together.")
    parser.add_argument("--doubles", type=int, default=0, help="Also answer two-move fixes: the pairs of the N "
                                                                 "best single moves (0: single moves only).")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    default = FixConfig()
    try:
        moves = FixConfig(factors=_floats(args.factors) if args.factors else default.factors,
                          volts=_floats(args.volts) if args.volts else default.volts, coupled=args.coupled)
    except ValueError as error:
        parser.error(f"--factors and --volts take comma-separated numbers such as 0.7,1.4 ({error})")
    started = time.perf_counter()
    tech = load_technology(DEFAULT_TECH)
    data = Dataset(args.data).require()
    config = EvalConfig(n=args.n, budget=args.budget, loop_samples=args.answers, methods=("model-loop",), hand=False)
    train = data.training_rows(config.split_kind)
    targets = heldout_targets(data, config)
    rows = []
    with SimulatorPool() as pool:
        oracle = OracleMoves(tech, pool, moves, args.doubles)
        ctx = Context(tech, pool, train, config, proposer=oracle)
        for i, target in enumerate(targets):
            oracle.reset()
            probes = oracle.probes
            outcome = model_loop(target, ctx, config.seed * 100003 + i)  # as icgen eval seeds its i-th target
            rows.append({"target": target.name, "met": outcome.met, "shortfall": outcome.shortfall,
                         "simulations": outcome.simulations, "source": outcome.source,
                         "oracle_probes": oracle.probes - probes})
            print(f"{i + 1:>4}/{len(targets)} {target.name:<12} met={outcome.met!s:<5} sims={outcome.simulations:>3} "
                  f"source={outcome.source:<10} probes={oracle.probes - probes}", flush=True)
    met = sum(r["met"] for r in rows)
    summary = {"command": "bench/fix_ceiling.py " + " ".join(sys.argv[1:]), "targets": len(rows), "met": met,
               "met_share": met / len(rows) if rows else None, "budget": args.budget, "answers_per_round": args.answers,
               "by_source": {s: sum(r["met"] and r["source"] == s for r in rows) for s in {r["source"] for r in rows}},
               "oracle_probes": sum(r["oracle_probes"] for r in rows),
               "moves": {"factors": list(moves.factors), "volts": list(moves.volts), "coupled": moves.coupled},
               "doubles_from": args.doubles}
    compare = Path(args.compare) / "outcomes.jsonl"
    if compare.exists():
        records = [json.loads(line) for line in compare.read_text().splitlines() if line.strip()]
        mine = {r["target"]: r["met"] for r in rows}
        for method in ("model-loop", "retrieval-local"):
            theirs = {r["target"]: r["met"] for r in records if r["method"] == method and r["kind"] == "heldout"}
            common = [t for t in mine if t in theirs]
            if common:
                paired = compare_paired([mine[t] for t in common], [theirs[t] for t in common])
                summary[f"vs_{method}"] = {"targets": len(common), "oracle_met": sum(mine[t] for t in common),
                                           "their_met": sum(theirs[t] for t in common), "only_oracle": paired.only_a,
                                           "only_theirs": paired.only_b, "p": paired.p_value}
    summary.update({"wall_s": time.perf_counter() - started, "icgen": __version__, "git": git_sha(),
                    "ngspice": ngspice_version(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                    "rows": rows})
    suffix = "" if (args.budget, args.answers) == (20, EvalConfig.loop_samples) else f"-b{args.budget}-a{args.answers}"
    if moves != default:
        suffix += f"-f{len(moves.factors)}v{len(moves.volts)}" + ("c" if moves.coupled else "")
    if args.doubles >= 2:
        suffix += f"-d{args.doubles}"
    path = write_result(args.out, f"fix-ceiling{suffix}", summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
