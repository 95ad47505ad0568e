"""Corner-aware sizing (`icgen size --corners`): the worst corner decides the ranking, a candidate failing the
nominal corner costs one simulation, every simulation counts against the budget, and a reported "met" holds at
every corner on re-simulation. The rules are pinned on a fake pool whose metrics depend on the corner; one real run
on ptm65 `all` checks the whole path."""
from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import EXAMPLE_DESIGN, Design, Metrics
from icgen.core.measure import DeviceOp, Health
from icgen.core.score import Specs
from icgen.core.status import Status
from icgen.sim.corners import worst_result
from icgen.sim.simulate import SimResult
from icgen.sizing.config import CornerSizeConfig, SizeConfig
from icgen.sizing.corners import CornerPool, size_at_corners
from icgen.sizing.loop import Proposal, size


def corner_metrics(design: Design, corner) -> Metrics:
    """A made-up amplifier: gain rises with W1 (40 dB at 15 um); at 125 °C it loses 10 dB per 3 kOhm of R0; at a
    supply below nominal its PM drops 5 degrees; power scales with the supply."""
    hot = corner is not None and corner.temp_c >= 125
    low = corner is not None and corner.vdd_v < 1.2
    vdd = corner.vdd_v if corner is not None else 1.2
    return Metrics(gain_db=40 + 20 * math.log10(design.W1 / 15e-6) - (10 * design.R0 / 3e3 if hot else 0.0),
                   bw3db_hz=1e3, ugb_hz=1e6, pm_deg=60 + 10 * math.log10(design.C0 / 1e-12) - (5 if low else 0),
                   gm_db=10.0, power_w=10e-6 * vdd / 1.2)


def _health() -> Health:
    devices = tuple(DeviceOp(name=f"M{i}", region="saturation", vgs_v=0.5, vds_v=0.4, vth_v=0.4, vdsat_v=0.1,
                             saturation_margin_v=0.3, id_a=1e-6, gm_s=1e-5, gds_s=1e-7) for i in range(1, 8))
    return Health(vout_v=0.6, vdd_v=1.2, devices=devices, flags=())


class CornerFakePool:
    """Answers like SimulatorPool.map from corner_metrics at the config's corner (one config, or one per design);
    records (corner, design) runs."""

    def __init__(self) -> None:
        self.runs: list[tuple[str | None, Design]] = []

    def map(self, designs, config):
        designs = list(designs)
        configs = list(config) if isinstance(config, (list, tuple)) else [config] * len(designs)  # or one per design
        for index, design in reversed(list(enumerate(designs))):  # completion order differs from input order
            config = configs[index]
            self.runs.append((config.corner.name if config.corner else None, design))
            yield index, SimResult(design=design, status=Status.OK, reason=None,
                                   metrics=corner_metrics(design, config.corner), health=_health(),
                                   tech=config.tech.name, testbench=config.testbench, backend="fake", seconds=0.0,
                                   corner=config.corner)


class Scripted:
    """A model step answering a fixed list of designs, once."""

    def __init__(self, designs: list[Design]) -> None:
        self.designs = designs

    def propose(self, specs, best, reference, samples, config):
        return Proposal(texts=["fake"] * len(self.designs), designs=self.designs, invalid=0)


SATISFY = SizeConfig(objective="max-margin", steps=("model",), budget=100)
FRAGILE = EXAMPLE_DESIGN.replace(W1=30e-6, R0=9e3)  # 46 dB at nominal, 16 dB at 125 °C
STEADY = EXAMPLE_DESIGN.replace(W1=20e-6, R0=300.0)  # 42.5 dB at nominal, 41.5 dB at 125 °C
WEAK = EXAMPLE_DESIGN.replace(W1=5e-6, R0=300.0)  # 30.5 dB at nominal: fails there


def test_the_worst_corner_decides_the_ranking_where_nominal_would_pick_the_other_design(ptm65):
    specs = Specs(gain_db=40)
    nominal = size(specs, ptm65, SATISFY, CornerFakePool(), proposer=Scripted([FRAGILE, STEADY]))
    assert nominal.best.result.design == FRAGILE  # more nominal margin
    found = size_at_corners(specs, ptm65, ptm65.corner_set("all"), SATISFY, CornerFakePool(),
                            proposer=Scripted([FRAGILE, STEADY]))
    result = found.result
    assert result.met and result.best.result.design == STEADY
    assert result.best.result.metrics.gain_db == pytest.approx(40 + 20 * math.log10(20 / 15) - 1.0)  # its worst corner: 125 °C
    assert result.best.result.metrics.pm_deg == pytest.approx(60 - 5)  # its worst corner for PM: 1.08 V
    fragile = next(c for c in result.candidates if c.result.design == FRAGILE)
    assert fragile.shortfall == pytest.approx((40 - (46.02 - 30)) / 6, abs=0.01)
    assert found.report.passed and len(found.report.rows) == 9 and not found.skipped


def test_a_candidate_failing_nominal_costs_one_simulation_not_nine(ptm65):
    pool = CornerFakePool()
    progress = []
    found = size_at_corners(Specs(gain_db=40), ptm65, ptm65.corner_set("all"), SATISFY, pool,
                            proposer=Scripted([WEAK, STEADY]), progress=progress.append)
    weak_runs = [corner for corner, design in pool.runs if design == WEAK]
    assert weak_runs == ["tt_1.2V_27C"]  # screened at nominal only
    assert sum(1 for _, design in pool.runs if design == STEADY) == 9
    assert found.result.simulations == 10 == len(pool.runs)
    assert progress[-1].simulations == 10  # progress reports simulations, not designs


NEAR = EXAMPLE_DESIGN.replace(W1=14.5e-6, R0=9e3)  # 39.7 dB at nominal (fails it by 0.3 dB), 9.7 dB at 125 °C
KNOWN = EXAMPLE_DESIGN.replace(W1=19e-6, R0=1.5e3)  # 42 dB at nominal, 37 dB at 125 °C: 3 dB short there


def test_a_near_miss_at_nominal_does_not_outrank_a_design_known_at_every_corner(ptm65):
    # NEAR's nominal shortfall (0.05) is only a lower bound of its worst corner's (5); KNOWN's 0.5 is exact
    found = size_at_corners(Specs(gain_db=40), ptm65, ptm65.corner_set("all"), SATISFY, CornerFakePool(),
                            proposer=Scripted([NEAR, KNOWN]))
    result = found.result
    assert not result.met and result.best.result.design == KNOWN
    near = next(c for c in result.candidates if c.result.design == NEAR)
    known_short = (40 - (40 + 20 * math.log10(19 / 15) - 5)) / 6
    assert result.best.shortfall == pytest.approx(known_short, abs=1e-3)
    assert near.shortfall == pytest.approx((40 - (40 + 20 * math.log10(14.5 / 15))) / 6 + 1.0, abs=1e-3)
    unpenalised = size_at_corners(Specs(gain_db=40), ptm65, ptm65.corner_set("all"), SATISFY, CornerFakePool(),
                                  proposer=Scripted([NEAR, KNOWN]),
                                  corner_config=CornerSizeConfig(unscreened_penalty=0.0)).result
    assert unpenalised.best.result.design == NEAR  # ranked on its lower bound, as before the penalty


def test_a_best_design_that_fails_nominal_reports_the_corners_it_skipped(ptm65):
    found = size_at_corners(Specs(gain_db=40), ptm65, ptm65.corner_set("all"), SATISFY, CornerFakePool(),
                            proposer=Scripted([WEAK]))
    assert not found.result.met and found.result.simulations == 1
    assert [r.corner.name for r in found.report.rows] == ["tt_1.2V_27C"] and len(found.skipped) == 8


def test_every_simulation_counts_against_the_budget_and_it_is_never_exceeded(ptm65):
    # every design near FRAGILE passes nominal and fails 125 °C: each costs all 9 corners
    pool = CornerFakePool()
    config = SizeConfig(objective="max-margin", steps=("model", "local"), budget=40)
    result = size_at_corners(Specs(gain_db=40), ptm65, ptm65.corner_set("all"), config, pool,
                             proposer=Scripted([FRAGILE])).result
    assert not result.met and result.simulations == len(pool.runs) <= 40
    assert result.simulations == 36  # four designs fit; a fifth would need 9 more than the 4 left


def test_the_corner_budget_defaults_to_twenty_per_corner_unless_given():
    assert CornerSizeConfig().budget(None, 9) == 180 and CornerSizeConfig().budget(30, 9) == 30


def test_the_worst_result_takes_each_figure_at_its_worst_corner_and_names_flags_by_corner(ptm65):
    corners = ptm65.corner_set("all")
    results = []
    for corner in corners:
        flags = ("M5 saturation margin 10 mV < 50 mV",) if corner.name == "tt_1.08V_125C" else ()
        results.append((corner, SimResult(design=STEADY, status=Status.OK, reason=None,
                                          metrics=corner_metrics(STEADY, corner),
                                          health=Health(0.6, 1.2, _health().devices, flags), tech="ptm65",
                                          testbench="feedback", backend="fake", seconds=0.0, corner=corner)))
    worst = worst_result(results)
    assert worst.metrics.power_w == pytest.approx(10e-6 * 1.32 / 1.2)  # power: the highest
    assert worst.metrics.gain_db == pytest.approx(41.50, abs=0.01)
    assert worst.health.flags == ("tt_1.08V_125C: M5 saturation margin 10 mV < 50 mV",)
    assert not worst.health.healthy


def test_the_corner_pool_screens_at_nominal_first_even_when_listed_last(ptm65):
    corners = ptm65.corner_set("tt_1.08V_125C,nominal")
    pool = CornerPool(CornerFakePool(), corners, ptm65, Specs(gain_db=40))
    assert [c.name for c in pool.corners] == ["tt_1.2V_27C", "tt_1.08V_125C"] and pool.max_cost == 2


@pytest.mark.ngspice
def test_a_real_run_on_ptm65_all_meets_at_every_corner_on_resimulation(ptm65):
    from icgen.core.paths import DEFAULT_DATA_DIR
    from icgen.sim.corners import signoff_corners
    from icgen.sim.simulate import SimulatorPool
    from icgen.sizing.resources import SizingResources

    specs = Specs(gain_db=40, pm_deg=50)
    resources = SizingResources.load(DEFAULT_DATA_DIR, None)
    config = SizeConfig(objective="max-margin", budget=90)
    with SimulatorPool(workers=2) as pool:
        found = size_at_corners(specs, ptm65, ptm65.corner_set("all"), config, pool, resources=resources)
        result = found.result
        assert result.met and result.simulations <= 90 and found.report.passed
        again = signoff_corners(result.best.result.design, ptm65, ptm65.corner_set("all"), specs, pool=pool)
    assert again.passed and len(again.rows) == 9
    assert min(row.result.metrics.gain_db for row in again.rows) == pytest.approx(result.best.result.metrics.gain_db)


@pytest.mark.ngspice
def test_size_corners_json_reports_every_corner_and_the_worst_figures():
    out = CliRunner().invoke(main, ["size", "--gain", "40dB", "--pm", "50", "--corners", "all", "--model", "none",
                                    "--json"])  # min-power, the default budget: 20 x 9 corners
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["met"] and report["simulations"] <= 180 and report["corners"]["passed"]
    assert len(report["corners"]["corners"]) == 9 and report["corners_skipped"] == []
    worst_power = max(c["metrics"]["power_w"] for c in report["corners"]["corners"])
    assert report["metrics"]["power_w"] == pytest.approx(worst_power)  # the figures reported: each at its worst


@pytest.mark.ngspice
def test_size_corners_prints_a_line_per_corner():
    out = CliRunner().invoke(main, ["size", "--gain", "40dB", "--pm", "50", "--corners", "all", "--model", "none",
                                    "--objective", "max-margin", "--budget", "90"])
    assert out.exit_code == 0, out.output
    assert sum(line.startswith("tt_") and line.rstrip().endswith("pass") for line in out.output.splitlines()) == 9
    assert "passed at all 9 corners" in out.output


def test_size_bias_reaches_the_corner_loop_and_needs_corners(monkeypatch):
    import icgen.sizing.corners as corners_module

    seen = []

    def capture(*args, corner_config, **kwargs):
        seen.append(corner_config.bias)
        raise KeyboardInterrupt  # stop before any simulation

    monkeypatch.setattr(corners_module, "size_at_corners", capture)
    args = ["size", "--gain", "40dB", "--model", "none", "--data", "none", "--corners", "all"]
    CliRunner().invoke(main, args + ["--bias", "fixed"])
    CliRunner().invoke(main, args)
    assert seen == ["fixed", "track-vdd"]
    out = CliRunner().invoke(main, ["size", "--gain", "40dB", "--model", "none", "--bias", "fixed"])
    assert out.exit_code == 2 and "add --corners" in out.output and "Traceback" not in out.output


@pytest.mark.parametrize("corners, message", [
    ("hot", "neither a set nor a corner"),
    ("ss_1.2V_27C", "this technology has no process corners"),
    ("tt_1.2V_200C", "outside -55..175"),
])
def test_an_unknown_corner_or_set_is_bad_input_in_one_line(corners, message):
    out = CliRunner().invoke(main, ["size", "--gain", "40dB", "--corners", corners, "--model", "none"])
    lines = out.output.strip().splitlines()
    assert out.exit_code == 2 and len(lines) == 1 and message in lines[0], out.output


def test_the_saturation_deficit_grades_an_unhealthy_design_and_leaves_a_healthy_one_alone():
    from icgen.sizing.corners import saturation_deficit

    devices = list(_health().devices)
    devices[4] = DeviceOp(name="M5", region="triode", vgs_v=0.5, vds_v=0.2, vth_v=0.4, vdsat_v=0.23,
                          saturation_margin_v=-0.03, id_a=1e-6, gm_s=1e-5, gds_s=1e-7)
    sick = SimResult(design=STEADY, status=Status.OK, reason=None, metrics=corner_metrics(STEADY, None),
                     health=Health(0.6, 1.2, tuple(devices), ("M5 in triode",)), tech="ptm65", testbench="feedback",
                     backend="fake", seconds=0.0)
    assert saturation_deficit(sick) == pytest.approx((0.05 + 0.03) / 0.1)
    healthy = SimResult(design=STEADY, status=Status.OK, reason=None, metrics=corner_metrics(STEADY, None),
                        health=_health(), tech="ptm65", testbench="feedback", backend="fake", seconds=0.0)
    assert saturation_deficit(healthy) == 0.0


def test_retrieval_searches_designs_with_saturation_headroom_for_a_lower_supply():
    import pandas as pd

    from icgen.sizing.corners import robust_rows

    table = pd.DataFrame({"min_saturation_margin_v": [0.02, 0.2, 0.16]})
    assert list(robust_rows(table, 0.15).index) == [1, 2]
    assert len(robust_rows(table, 0.5)) == 3  # none has it: every row


def test_a_negative_unscreened_penalty_is_refused():
    from icgen.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unscreened-penalty"):
        CornerSizeConfig(unscreened_penalty=-1.0)
