"""icgen eval: targets are feasible by construction, every method runs under the same budget, the run resumes,
and the report carries a row per method."""
import json

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import DESIGN_KEYS, Design
from icgen.core.paths import DEFAULT_DATA_DIR as SHIPPED
from icgen.core.score import shortfall
from icgen.data.dataset import Dataset
from icgen.data.dataset import metrics_of as row_metrics
from icgen.eval.methods import Context, nearest_neighbour
from icgen.eval.outcome import Target
from icgen.eval.targets import EvalConfig, heldout_targets, relaxed_specs
from icgen.sim.simulate import SimulatorPool, simulate

pytestmark = pytest.mark.ngspice


@pytest.fixture(scope="module")
def data(shipped_data):
    return shipped_data


def test_held_out_targets_are_met_by_the_designs_they_came_from(ptm65, data):
    table, splits, _ = data
    targets = heldout_targets(Dataset(SHIPPED), EvalConfig(n=5, seed=7))
    assert len(targets) == 5 and all(t.kind == "heldout" for t in targets)
    test_index = set(splits.loc[splits["heldout"] == "test", "index"])
    for target in targets:
        index = int(target.name.split("-")[1])
        assert index in test_index
        row = table[table["index"] == index].iloc[0]
        again = simulate(Design(**{k: float(row[k]) for k in DESIGN_KEYS}), ptm65)
        assert shortfall(again.metrics, target.specs, again.status, again.health.healthy) == 0.0
        assert target.specs.power_w > target.reference.power_w and target.specs.gain_db < target.reference.gain_db


def test_nearest_neighbour_finds_a_training_design_from_its_own_metrics(ptm65, data):
    _, _, train = data
    row = train[train["working"]].iloc[123]
    metrics = row_metrics(row)
    target = Target("own", "heldout", relaxed_specs(metrics, EvalConfig().tolerance), metrics)
    with SimulatorPool(workers=1) as pool:
        outcome = nearest_neighbour(target, Context(ptm65, pool, train, EvalConfig()))
    assert outcome.met and outcome.simulations == 1
    assert outcome.design == {k: float(row[k]) for k in DESIGN_KEYS}
    assert outcome.errors["gain_db"] == pytest.approx(0.0, abs=1e-6)


def test_eval_runs_every_baseline_writes_a_report_and_resumes(tmp_path):
    out = tmp_path / "eval"
    args = ["eval", "--n", "3", "--model", "none", "--budget", "8", "--samples", "2", "--out", str(out),
            "--methods", "nearest-neighbour,random-search,optuna-tpe,loop"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = (out / "outcomes.jsonl").read_text().splitlines()
    n_targets = 3 + 8  # held-out + hand-written
    assert len(lines) == 4 * n_targets
    outcomes = [json.loads(line) for line in lines]
    assert all(o["simulations"] <= 8 for o in outcomes)
    assert all(o["simulations"] == 1 for o in outcomes if o["method"] == "nearest-neighbour")
    report = (out / "report.md").read_text()
    for method in ("nearest-neighbour", "random-search", "optuna-tpe", "loop"):
        assert f"| {method}" in report
    assert (out / "eval.png").stat().st_size > 10_000 and (out / "summary.csv").is_file()
    assert json.loads((out / "meta.json").read_text())["config"]["budget"] == 8
    again = CliRunner().invoke(main, args)  # resume: nothing left to do, nothing appended
    assert again.exit_code == 0 and len((out / "outcomes.jsonl").read_text().splitlines()) == len(lines)
    sessions = json.loads((out / "sessions.json").read_text())
    assert [(s["outcomes_before"], s["outcomes_after"]) for s in sessions] == [(0, len(lines)), (len(lines), len(lines))]
    assert all(s["wall_s"] is not None for s in sessions)
    other = CliRunner().invoke(main, [a if a != "8" else "9" for a in args])  # same --out, another budget
    assert other.exit_code == 2 and "holds a run with other options" in other.output


@pytest.mark.parametrize("args, message", [
    (["--methods", "magic"], "unknown method 'magic'"),
    (["--samples", "30"], "exceeds --budget 20"),
    (["--split", "nowhere"], "--split 'nowhere' is empty"),
])
def test_bad_eval_options_are_one_line_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, ["eval", "--model", "none", "--out", str(tmp_path / "x"), *args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output


def test_model_methods_simulate_the_embedded_models_answers(tmp_path):
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["eval", "--n", "2", "--no-hand", "--samples", "2", "--out", str(out),
                                       "--methods", "model-greedy,model-best-of-n"])
    assert result.exit_code == 0, result.output
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert sorted(o["method"] for o in outcomes) == ["model-best-of-n"] * 2 + ["model-greedy"] * 2
    for o in outcomes:
        assert o["proposals"] == (1 if o["method"] == "model-greedy" else 2)
        assert o["simulations"] == o["valid"] and o["valid"] >= 1  # the embedded model's answers parse
        assert o["seconds"] > 0 and o["metrics"] is not None


def test_the_model_card_gets_one_closed_loop_section(tmp_path):
    from icgen.eval.outcome import Outcome
    from icgen.eval.report import CARD_HEADING, update_model_card

    card = tmp_path / "README.md"
    card.write_text("# Card\n\nbody\n\nClosed-loop results (designs simulated and scored against targets) are added "
                    "by `icgen eval`.\n")
    outcomes = [Outcome(method=m, target=f"t{i}", kind="heldout", met=i % 2 == 0, shortfall=0.0, simulations=i + 1,
                        seconds=0.1, proposals=1, valid=1, working=1, errors={"gain_db": 1.0})
                for m in ("loop", "nearest-neighbour") for i in range(4)]
    for _ in range(2):
        update_model_card(tmp_path, outcomes, EvalConfig(n=4), tmp_path / "report.md")
    text = card.read_text()
    assert text.count(CARD_HEADING) == 1 and "are added by" not in text and text.startswith("# Card\n\nbody")
    import re

    assert re.search(r"\| loop\s+\|\s+4 \|\s+50 \|", text), text
