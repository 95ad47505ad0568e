"""icgen eval v2: the retrieval baselines and the model-loop on a fake pool (no ngspice), where each winning design
came from, `--targets` files, and the paired comparison (McNemar's exact test, Newcombe's interval)."""
from __future__ import annotations

import json
import math
import re

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import EXAMPLE_DESIGN
from icgen.core.score import Specs
from icgen.data.dataset import design_of
from icgen.eval.config import DEFAULT_METHODS, METHOD_NAMES, EvalConfig
from icgen.eval.folder import EvalRun
from icgen.eval.methods import METHODS, Context, model_loop, retrieval, retrieval_local, same_design
from icgen.eval.outcome import Outcome, Target
from icgen.eval.paired import bootstrap_difference, compare_paired, mcnemar_exact, newcombe_paired, paired_rows
from icgen.eval.report import write_report
from icgen.eval.targets import TargetsError, read_targets
from icgen.sizing.loop import Proposal
from icgen.sizing.retrieval import rank_rows
from tests.test_loop import FakePool, ScriptedProposer, _table, fake_metrics


@pytest.fixture(scope="module")
def tech(ptm65):
    return ptm65


# ---- the paired comparison ------------------------------------------------------------------------------------

def test_mcnemar_is_the_exact_binomial_on_the_discordant_pairs():
    only_a = [True] * 10 + [True] * 5 + [False] * 5  # 10 targets only A met, 5 both, 5 neither
    only_b = [False] * 10 + [True] * 5 + [False] * 5
    result = compare_paired(only_a, only_b)
    assert (result.only_a, result.only_b, result.both, result.neither) == (10, 0, 5, 5)
    assert result.p_value == pytest.approx(2 * 0.5 ** 10, rel=1e-12)
    assert result.difference == pytest.approx(0.5)
    assert 0 < result.low < 0.5 < result.high <= 1  # contains the observed difference, and A is better
    swapped = compare_paired(only_b, only_a)
    assert swapped.p_value == result.p_value and swapped.difference == pytest.approx(-0.5)
    assert (swapped.low, swapped.high) == pytest.approx((-result.high, -result.low))
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 4) == pytest.approx(2 * (1 + 5) / 2 ** 5)  # P(X <= 1) doubled, X ~ Bin(5, 1/2)


def test_equal_discordance_gives_p_one_and_an_interval_around_zero():
    a = [True, False] * 4 + [True] * 3
    b = [False, True] * 4 + [True] * 3
    result = compare_paired(a, b)
    assert result.p_value == 1.0 and result.difference == 0.0 and result.low < 0 < result.high


def test_the_paired_bootstrap_of_median_shortfall_excludes_zero_only_for_a_real_shift():
    rng = __import__("numpy").random.default_rng(1)
    b = list(rng.uniform(0.5, 1.5, 200))
    better = [v - 0.3 for v in b]  # every target 0.3 closer
    diff, low, high = bootstrap_difference(better, b)
    assert diff == pytest.approx(-0.3) and low < high < 0
    noisy = [v + rng.normal(0, 0.05) for v in b]  # the same method, re-measured
    diff, low, high = bootstrap_difference(noisy, b)
    assert low < 0 < high
    with_invalid = [None] * 120 + b[120:]  # most answers unsimulated: the median is infinite, so A is worse
    diff, low, high = bootstrap_difference(with_invalid, b)
    assert diff == math.inf and low > 0
    assert bootstrap_difference(b, b, seed=3) == (0.0, 0.0, 0.0)
    diff, low, high = bootstrap_difference(better, b, quantile=0.75)  # the worse quarter moves as much
    assert diff == pytest.approx(-0.3, abs=0.02) and high < 0
    with pytest.raises(ValueError, match="targets must match"):
        bootstrap_difference(b, b[:-1])


def test_the_interval_is_newcombes_method_10():
    # Newcombe (1998), Statistics in Medicine 17:2635, worked examples (a, b, c, d) -> method 10 limits
    assert newcombe_paired(36, 12, 2, 0) == pytest.approx((0.0569, 0.3404), abs=1e-4)
    assert newcombe_paired(2, 5, 0, 1) == pytest.approx((0.1957, 0.8105), abs=1e-4)
    # with many pairs it agrees with the paired Wald interval D +- z sqrt((b + c)/n - D^2) / sqrt(n)
    n, b, c = 1000, 150, 100
    d = (b - c) / n
    half = 1.959964 * math.sqrt((b + c) / n - d * d) / math.sqrt(n)
    assert newcombe_paired(500, b, c, 250) == pytest.approx((d - half, d + half), abs=1e-3)


def _outcome(method, target, met, kind="heldout"):
    return Outcome(method=method, target=target, kind=kind, met=met, shortfall=0.0 if met else 1.0, simulations=1,
                   seconds=0.1, proposals=1, valid=1, working=1, source="retrieval")


def test_paired_rows_pair_only_methods_present_on_the_targets_both_ran():
    outcomes = [_outcome("loop", f"t{i}", True) for i in range(6)]
    outcomes += [_outcome("retrieval", f"t{i}", i < 2) for i in range(5)]  # t5 has no retrieval outcome
    outcomes += [_outcome("loop", "f0", False, "file"), _outcome("retrieval", "f0", True, "file")]
    rows = paired_rows(outcomes)
    assert [(r["A"], r["B"]) for r in rows] == [("loop", "retrieval")]  # model-greedy etc. did not run
    row = rows[0]
    assert (row["targets"], row["only A"], row["only B"]) == (5, 3, 0)
    assert row["A − B (pp)"] == pytest.approx(60.0) and row["McNemar p"] == pytest.approx(0.25)
    file_row = paired_rows(outcomes, "file")[0]
    assert (file_row["targets"], file_row["only B"], file_row["A − B (pp)"]) == (1, 1, -100.0)


def test_the_report_has_paired_comparisons_and_a_section_for_file_targets(tmp_path):
    outcomes = [_outcome("loop", f"t{i}", True) for i in range(4)] + \
        [_outcome("retrieval", f"t{i}", i == 0) for i in range(4)] + \
        [_outcome("retrieval", "mine", False, "file"), _outcome("retrieval-local", "mine", True, "file")]
    report = write_report(outcomes, EvalConfig(targets="mine.jsonl"), tmp_path, {}).read_text()
    assert "## Paired comparisons" in report and "McNemar" in report
    assert re.search(r"\|\s*loop\s*\|\s*retrieval\s*\|\s*4\s*\|", report), report
    section = report.split("## Your targets (`mine.jsonl`)")[1].split("##")[0]
    assert "| mine" in section and "met (1)" in section and "short 1 (1)" in section


# ---- the method list ------------------------------------------------------------------------------------------

def test_the_new_methods_are_registered_and_the_cheap_ones_run_by_default():
    assert METHODS == METHOD_NAMES
    assert {"retrieval", "retrieval-local"} <= set(EvalConfig().methods) == set(DEFAULT_METHODS)
    assert "model-loop" in METHODS and "model-loop" not in DEFAULT_METHODS


# ---- retrieval, retrieval-local, model-loop on a fake pool ----------------------------------------------------

TRAINING = [EXAMPLE_DESIGN.replace(W1=w * 1e-6) for w in (10, 40, 25, 60)]  # gains 36.5, 48.5, 44.4, 52 dB


def _context(tech, pool, budget=8, proposer=None):
    return Context(tech, pool, _table(TRAINING), EvalConfig(budget=budget, samples=2), proposer=proposer)


def test_retrieval_simulates_exactly_the_top_ranked_training_design(tech):
    pool = FakePool()
    specs = Specs(gain_db=44)
    top = design_of(rank_rows(_table(TRAINING), specs).iloc[0])
    assert top == TRAINING[3]  # the largest gain margin, not the table's first row
    outcome = retrieval(Target("t", "file", specs), _context(tech, pool), seed=0)
    assert pool.simulated == [top] and outcome.simulations == 1 and outcome.design == top.to_dict()
    assert outcome.met and outcome.source == "retrieval" and outcome.specs == {"gain_db": 44}


def test_retrieval_local_spends_at_most_the_budget(tech):
    for budget in (3, 8):
        pool = FakePool()
        outcome = retrieval_local(Target("t", "heldout", Specs(gain_db=90)), _context(tech, pool, budget), seed=1)
        assert outcome.simulations == len(pool.simulated) == budget and not outcome.met  # unreachable: all spent
        assert all(len(batch) <= budget for batch in pool.batches)
    pool = FakePool()
    outcome = retrieval_local(Target("t", "heldout", Specs(gain_db=52.5)), _context(tech, pool, 20), seed=1)
    assert outcome.met and outcome.source == "local" and outcome.simulations < 20  # stops once met


def test_a_model_answering_the_retrieved_design_back_counts_as_retrieval(tech):
    start = EXAMPLE_DESIGN  # the only training design: gain 40 dB
    copy = start.replace(W1=start.W1 * (1 + 2e-4))  # printed to 4 digits it is the same design: +0.0017 dB
    other = start.replace(W1=start.W1 * 1.2)  # a design of its own: +1.6 dB
    specs = Specs(gain_db=40.001)  # retrieval misses by a hair, either answer meets it
    for answer, source in ((copy, "retrieval"), (other, "model")):
        pool = FakePool()
        ctx = Context(tech, pool, _table([start]), EvalConfig(budget=6, samples=2),
                      proposer=ScriptedProposer([answer]))
        outcome = model_loop(Target("t", "hand", specs), ctx, seed=0)
        assert pool.simulated == [start, answer]  # the model's answer was simulated, and it won
        assert outcome.met and outcome.design == answer.to_dict() and outcome.source == source
    assert same_design(start, copy) and not same_design(start, other)
    assert not same_design(start, start.replace(VB1=start.VB1 * 1.002))


class Climber:
    """A model that answers `samples` new designs every round (W1 up 10 %, 21 %, ... on the best so far) and
    records how many it was asked for."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def propose(self, specs, best, reference, samples, config):
        self.asked.append(samples)
        assert best is not None
        designs = [best.result.design.replace(W1=best.result.design.W1 * 1.1 ** (k + 1)) for k in range(samples)]
        return Proposal(texts=["x"] * samples, designs=designs, invalid=0)


@pytest.mark.parametrize("loop_samples, rounds", [(1, 5), (4, 2)])
def test_the_model_loop_asks_the_model_after_retrieval_until_the_budget_is_spent(tech, loop_samples, rounds):
    pool, climber = FakePool(), Climber()
    ctx = Context(tech, pool, _table(TRAINING), EvalConfig(budget=7, samples=2, loop_samples=loop_samples),
                  proposer=climber)
    outcome = model_loop(Target("t", "hand", Specs(gain_db=90)), ctx, seed=0)
    # SizeConfig.retrieve = 2 retrieved, then rounds of loop_samples answers until the 7 are spent
    assert outcome.simulations == len(pool.simulated) == 7 and climber.asked == [loop_samples] * rounds
    assert outcome.source == "model" and not outcome.met
    assert math.isclose(outcome.metrics["gain_db"], max(fake_metrics(d).gain_db for d in pool.simulated))


def test_outcomes_recorded_before_specs_existed_still_load(tmp_path):
    old = {k: v for k, v in vars(_outcome("loop", "t0", True)).items() if k != "specs"}
    (tmp_path / EvalRun.OUTCOMES).write_text(json.dumps(old) + "\n")
    assert EvalRun(tmp_path).done()[("loop", "t0")].specs == {}


# ---- --targets ------------------------------------------------------------------------------------------------

def test_a_targets_file_gives_named_file_targets_with_its_bounds(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"name": "low-power", "gain_db": 50, "pm_deg": 60, "power_w": 2e-5}\n\n'
                    '{"ugb_hz": 5e6, "cmrr_db": 70}\n')
    first, second = read_targets(path)
    assert (first.name, first.kind, second.name, second.kind) == ("low-power", "file", "line-3", "file")
    assert first.specs == Specs(gain_db=50, pm_deg=60, power_w=2e-5) and first.reference is None
    assert second.specs.given() == {"ugb_hz": 5e6, "cmrr_db": 70}


@pytest.mark.parametrize("text, message", [
    ('{"gain_db": 50}\n{"gain_db": 50,\n', "line 2: not JSON"),
    ('{"gain_db": 50}\n\n{"gain": 50}\n', "line 3: unknown spec key 'gain'"),
    ('{"gain_db": "50dB"}\n', "line 1: gain_db: '50dB' is not a number"),
    ('[50, 60]\n', "line 1: a list, not a JSON object"),
    ('{"name": "a", "gain_db": 50}\n{"name": "a", "pm_deg": 60}\n', "line 2: the name 'a' is used twice"),
    ('\n\n', "holds no targets"),
])
def test_a_bad_targets_line_is_named_by_its_number(tmp_path, text, message):
    path = tmp_path / "mine.jsonl"
    path.write_text(text)
    with pytest.raises(TargetsError, match=message):
        read_targets(path)


@pytest.mark.parametrize("text, message", [
    ('{"gain_db": 50}\n{"gain_db": 50, pm_deg: 60}\n', "line 2: not JSON"),
    ('{"gain_db": 50, "phase": 60}\n', "line 1: unknown spec key 'phase'"),
])
def test_icgen_eval_refuses_a_bad_targets_file_in_one_line(tmp_path, text, message):
    path = tmp_path / "mine.jsonl"
    path.write_text(text)
    result = CliRunner().invoke(main, ["eval", "--model", "none", "--targets", str(path), "--out",
                                       str(tmp_path / "out")])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"--targets {path} {message}" in lines[0]
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.ngspice
def test_icgen_eval_runs_a_targets_file_and_reports_it(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"name": "easy", "gain_db": 38, "pm_deg": 52}\n{"name": "hard", "gain_db": 95}\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["eval", "--model", "none", "--n", "0", "--no-hand", "--budget", "3", "--samples", "1",
                                       "--targets", str(path), "--methods", "retrieval,retrieval-local",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert sorted((o["method"], o["target"]) for o in outcomes) == [
        ("retrieval", "easy"), ("retrieval", "hard"), ("retrieval-local", "easy"), ("retrieval-local", "hard")]
    assert all(o["kind"] == "file" for o in outcomes)
    by = {(o["method"], o["target"]): o for o in outcomes}
    assert by[("retrieval", "easy")]["specs"] == {"gain_db": 38, "pm_deg": 52}
    assert by[("retrieval", "hard")]["simulations"] == 1 and by[("retrieval-local", "hard")]["simulations"] == 3
    assert not by[("retrieval-local", "hard")]["met"]
    report = (out / "report.md").read_text()
    assert f"## Your targets (`{path}`)" in report and "## Paired comparisons" in report


def test_retrieval_move_keeps_a_start_that_meets_and_moves_one_that_misses(tech):
    from icgen.eval.methods import retrieval_move
    from icgen.llm.fixes import FixConfig, single_moves

    pool = FakePool()
    ctx = _context(tech, pool)
    easy = Specs(gain_db=30)
    kept = retrieval_move(Target("easy", "hand", easy), ctx, seed=0)
    top = design_of(rank_rows(_table(TRAINING), easy).iloc[0])
    assert pool.simulated == [top] and kept.source == "retrieval" and kept.simulations == 1
    hard = Specs(gain_db=90)
    moved = retrieval_move(Target("hard", "hand", hard), ctx, seed=0)
    top = design_of(rank_rows(_table(TRAINING), hard).iloc[0])
    assert moved.simulations == 1 and moved.source == "move"
    assert pool.simulated[-1] in single_moves(top, tech, FixConfig()) and pool.simulated[-1] != top
    again = retrieval_move(Target("hard", "hand", hard), _context(tech, FakePool()), seed=0)
    assert again.design == moved.design  # seeded by target name and seed
