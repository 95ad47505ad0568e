"""`icgen eval --corners`: every method judged by its worst corner. On a fake pool whose metrics depend on the corner
(tests/test_size_corners.py), a design that meets nominally but fails a corner counts as not met, a design failing
nominal costs one simulation, the budget counts every corner, and outcomes record the corners; bad corners are one
line (exit 2); a tiny real run (2 targets) re-simulates each met design at every corner."""
from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.corner import CornerError
from icgen.core.errors import ConfigError
from icgen.core.score import Specs, relaxed_specs, result_shortfall
from icgen.data.dataset import metrics_of
from icgen.eval.config import EvalConfig
from icgen.eval.methods import Context, Trials, nearest_neighbour, optuna_tpe, random_search, retrieval
from icgen.eval.outcome import Outcome, Target
from icgen.eval.report import write_report
from tests.test_loop import _table
from tests.test_size_corners import FRAGILE, STEADY, WEAK, CornerFakePool

ALL_9 = ["tt_1.08V_-40C", "tt_1.08V_27C", "tt_1.08V_125C", "tt_1.2V_-40C", "tt_1.2V_27C", "tt_1.2V_125C",
         "tt_1.32V_-40C", "tt_1.32V_27C", "tt_1.32V_125C"]
"""ptm65's `all`, as its descriptor lists them."""
GAIN_40 = Specs(gain_db=40)  # FRAGILE: 46 dB at nominal, 16 dB at 125 °C; STEADY: 42.5 / 41.5 dB; WEAK: 30.5 dB


def _context(tech, designs, corners=None, budget=None, pool=None):
    config = EvalConfig(budget=budget, samples=1, corners=corners, objective="max-margin")
    return Context(tech, pool or CornerFakePool(), _table(designs), config)


@pytest.mark.parametrize("method", [retrieval, lambda t, c, s: nearest_neighbour(t, c)],
                         ids=["retrieval (size_at_corners)", "nearest-neighbour (one shot)"])
def test_a_design_meeting_nominally_but_failing_a_corner_is_not_met(ptm65, method):
    target = Target("t", "hand", GAIN_40)
    nominal = method(target, _context(ptm65, [FRAGILE]), 0)
    assert nominal.met and nominal.simulations == 1 and nominal.corners == []
    pool = CornerFakePool()
    judged = method(target, _context(ptm65, [FRAGILE], corners="all", pool=pool), 0)
    assert not judged.met and judged.simulations == 9 == len(pool.runs)  # it passed nominal, so every corner ran
    assert judged.metrics["gain_db"] == pytest.approx(16.0, abs=0.1)  # its worst corner, 125 °C
    assert judged.shortfall > 0 and judged.corners == ALL_9
    steady = method(target, _context(ptm65, [STEADY], corners="all"), 0)
    assert steady.met and steady.simulations == 9 and steady.metrics["gain_db"] == pytest.approx(41.5, abs=0.01)


def test_a_design_failing_nominal_costs_one_simulation_and_is_not_met(ptm65):
    pool = CornerFakePool()
    outcome = nearest_neighbour(Target("t", "hand", GAIN_40), _context(ptm65, [WEAK], corners="all", pool=pool))
    assert not outcome.met and outcome.simulations == 1 and pool.runs == [("tt_1.2V_27C", WEAK)]


def test_a_design_met_where_it_was_simulated_but_not_at_every_corner_is_not_met(ptm65):
    pool = CornerFakePool()
    result = next(iter(pool.map([STEADY], _context(ptm65, [STEADY]).sim_config)))[1]
    assert result_shortfall(result, GAIN_40) == 0.0
    nominal_only = Trials([result], [[(ptm65.corner_sets["nominal"][0], result)]], 1, tuple(ALL_9))
    assert not nominal_only.met(0, GAIN_40)  # screened out by a stricter (margin) spec: never checked elsewhere
    assert Trials([result], [[(None, result)]], 1).met(0, GAIN_40)  # without corners the one simulation decides


class NominalOnlyPool(CornerFakePool):
    """Every design has 60 dB at the nominal corner and 20 dB at every other: each passes screening, none is met."""

    def map(self, designs, config):
        nominal = config.corner is None or config.corner.name == "tt_1.2V_27C"
        for index, result in super().map(designs, config):
            yield index, dataclasses.replace(result, metrics=dataclasses.replace(result.metrics,
                                                                                 gain_db=60.0 if nominal else 20.0))


@pytest.mark.parametrize("search", [random_search, optuna_tpe], ids=["random-search", "optuna-tpe"])
def test_the_baselines_budget_counts_every_corner_and_never_starts_a_design_that_does_not_fit(ptm65, search):
    pool = NominalOnlyPool()
    outcome = search(Target("t", "hand", GAIN_40), _context(ptm65, [STEADY], corners="all", budget=22, pool=pool), 3)
    assert not outcome.met and outcome.metrics["gain_db"] == 20.0
    assert outcome.simulations == len(pool.runs) == 18  # two designs at 9 corners; a third would not fit in 4
    assert outcome.working == 18 and outcome.proposals == 2 and outcome.corners == ALL_9
    nominal = search(Target("t", "hand", GAIN_40), _context(ptm65, [STEADY], budget=22, pool=NominalOnlyPool()), 3)
    assert nominal.met and nominal.simulations == (4 if search is random_search else 1)  # one batch, one trial


def test_without_corners_the_budget_and_judgement_are_unchanged(ptm65):
    assert EvalConfig().budget == 20 == EvalConfig().resolved(ptm65).budget  # icgen size's default, as before
    assert EvalConfig(corners="all").budget is None  # until the technology says how many corners
    assert EvalConfig(corners="all").resolved(ptm65).budget == 180  # 20 x 9, as icgen size --corners all
    assert EvalConfig(corners="all", budget=60).resolved(ptm65).budget == 60
    pool = CornerFakePool()
    outcome = random_search(Target("t", "hand", Specs(gain_db=150)), _context(ptm65, [STEADY], pool=pool), 0)
    assert outcome.simulations == 20 == len(pool.runs) and {c for c, _ in pool.runs} == {None}


@pytest.mark.parametrize("corners, budget, error, words", [
    ("bogus", None, CornerError, ["--corners", "'bogus' is neither a set nor a corner", "nominal, all"]),
    ("ss_1.2V_27C", None, CornerError, ["--corners", "no process corners"]),
    ("all,tt_1.2V_300C", None, CornerError, ["300 °C is outside"]),
    ("all", 8, ConfigError, ["--budget 8 cannot simulate one design at the 9 corners of all; use 9"]),
    ("all", 40, ConfigError, ["--samples 6 at 9 corners exceeds --budget 40", "--budget 54"]),
])
def test_bad_corners_are_refused_in_one_line(ptm65, tmp_path, corners, budget, error, words):
    with pytest.raises(error) as caught:
        EvalConfig(corners=corners, budget=budget).resolved(ptm65)
    assert all(w in str(caught.value) for w in words)
    args = ["eval", "--corners", corners, "--n", "0", "--no-hand", "--model", "none", "--out", str(tmp_path / "e")]
    result = CliRunner().invoke(main, args + (["--budget", str(budget)] if budget else []))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("icgen: error: ") and words[0] in lines[0]
    assert not (tmp_path / "e").exists()  # refused before the run folder was touched


def test_the_report_and_meta_name_the_corner_set(tmp_path):
    outcome = Outcome(method="loop", target="t", kind="heldout", met=True, shortfall=0.0, simulations=9, seconds=0.1,
                      proposals=1, valid=1, working=9, corners=ALL_9)
    config = EvalConfig(corners="all", budget=180)
    provenance = {"corners": {"set": "all", "names": ALL_9, "bias": "track-vdd"}}
    report = write_report([outcome], config, tmp_path, provenance).read_text()
    assert "**Judged at every corner of `all`** (9 corners: tt_1.08V_-40C, tt_1.08V_27C" in report
    assert "budget 180 simulations per target" in report
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["config"]["corners"] == "all" and meta["corners"]["names"] == ALL_9
    (tmp_path / "plain").mkdir()
    plain = write_report([outcome], EvalConfig(budget=20), tmp_path / "plain", {}).read_text()
    assert "Judged at every corner" not in plain


@pytest.mark.ngspice
def test_a_tiny_real_run_records_the_corners_and_its_met_designs_pass_every_corner_again(tmp_path, ptm65):
    from icgen.core.design import Design
    from icgen.sim.simulate import SimConfig, SimulatorPool
    from icgen.sizing.loop import UGB_BENCHES

    out = tmp_path / "eval"
    args = ["eval", "--n", "3", "--no-hand", "--methods", "nearest-neighbour,retrieval", "--corners",
            "nominal,tt_1.08V_125C,tt_1.32V_-40C", "--model", "none", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    names = ["tt_1.2V_27C", "tt_1.08V_125C", "tt_1.32V_-40C"]
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    # held-out targets from worst-corner metrics (the default): a design unhealthy at some corner gives none
    assert len({o["target"] for o in outcomes}) >= 1 and len(outcomes) == 2 * len({o["target"] for o in outcomes})
    assert all(o["corners"] == names for o in outcomes)
    assert all(1 <= o["simulations"] <= 60 for o in outcomes)  # budget 20 x 3 corners
    assert json.loads((out / "meta.json").read_text())["corners"]["set"] == "nominal,tt_1.08V_125C,tt_1.32V_-40C"
    assert "Judged at every corner of `nominal,tt_1.08V_125C,tt_1.32V_-40C`" in (out / "report.md").read_text()
    corners = ptm65.corner_set("nominal,tt_1.08V_125C,tt_1.32V_-40C")
    with SimulatorPool(workers=1) as pool:
        for o in outcomes:
            if not o["met"]:
                continue
            design, specs = Design(**o["design"]), Specs.from_dict(o["specs"])
            for corner in corners:
                config = SimConfig(tech=ptm65, benches=UGB_BENCHES, corner=corner)
                again = next(iter(pool.map([design], config)))[1]
                assert result_shortfall(again, specs) == 0.0, (o["method"], o["target"], corner.name)


def test_a_design_proposed_twice_is_simulated_once_at_every_corner(ptm65):
    pool = CornerFakePool()
    trials = _context(ptm65, [STEADY], corners="all", pool=pool).trials([STEADY, WEAK, STEADY], GAIN_40)
    assert trials.simulations == len(pool.runs) == 9 + 1  # STEADY at 9 corners once, WEAK screened out at nominal
    assert [len(r) for r in trials.runs] == [9, 1, 0] and trials.working == 10
    assert trials.met(0, GAIN_40) and not trials.met(1, GAIN_40) and trials.results[2] is trials.results[0]


def test_a_run_stamped_before_corners_existed_still_resumes():
    config = EvalConfig(n=3, budget=8)
    assert config.stamp() == repr(config).replace(", corners=None", "").replace(", corner_targets='worst'", "")
    assert "corners" not in config.stamp()
    assert EvalConfig(corners="all").stamp().endswith("corners='all', corner_targets='worst')")
    assert EvalConfig(corners="all").stamp() != EvalConfig(corners="all", corner_targets="nominal").stamp()


def test_worst_corner_targets_are_met_at_every_corner_by_their_own_design_and_nominal_ones_are_not(ptm65):
    from icgen.core.paths import DEFAULT_DATA_DIR
    from icgen.data.dataset import Dataset, design_of
    from icgen.eval.targets import heldout_rows, worst_corner_targets
    from icgen.sim.simulate import SimConfig, SimulatorPool
    from icgen.sizing.loop import UGB_BENCHES

    data = Dataset(DEFAULT_DATA_DIR).require()
    config = EvalConfig(n=3, hand=False, corners="all")
    corners = ptm65.corner_set("all")
    rows = data.rows("test", "heldout").set_index("index", drop=False)
    first = [f"test-{int(row['index'])}" for _, row in heldout_rows(data, config).iterrows()]
    with SimulatorPool(workers=1) as pool:
        worst, dropped = worst_corner_targets(data, config, ptm65, corners, pool)
        assert len(worst) == 3 and len({t.name for t in worst}) == 3 and not {t.name for t in worst} & set(dropped)
        assert set(first) <= {t.name for t in worst} | set(dropped)  # drawn in heldout_targets' order
        nominal_failed = 0
        for target in worst:
            row = rows.loc[int(target.name.split("-")[1])]
            looser = relaxed_specs(metrics_of(row))  # its nominal target
            assert target.specs.gain_db <= looser.gain_db and target.specs.pm_deg <= looser.pm_deg
            assert target.specs.ugb_hz <= looser.ugb_hz and target.specs.power_w >= looser.power_w
            for corner in corners:
                again = next(iter(pool.map([design_of(row)],
                                           SimConfig(tech=ptm65, benches=UGB_BENCHES, corner=corner))))[1]
                assert result_shortfall(again, target.specs) == 0.0, (target.name, corner.name)
                nominal_failed += result_shortfall(again, looser) > 0
        assert nominal_failed > 0  # the nominal targets are not met at every corner by their own designs


def test_corner_targets_is_validated():
    with pytest.raises(ConfigError, match="corner-targets"):
        EvalConfig(corners="all", corner_targets="best")
