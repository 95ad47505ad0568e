"""Objectives (issue 14): feasible designs rank by the objective and before any infeasible one; the loop keeps
improving after feasibility and stops at its tolerance; a margin keeps reported designs off the edge; degenerate
results are warned about."""
from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import EXAMPLE_DESIGN
from icgen.core.errors import ConfigError
from icgen.core.objective import NO_MARGIN, OBJECTIVES, Margin, degenerate_warnings, objective, parse_margin
from icgen.core.score import SPEC_KINDS, Specs
from icgen.core.tech import load_technology
from icgen.sizing.loop import SizeConfig, objective_rank, size
from icgen.sizing.tradeoffs import Tradeoff, pareto_front
from tests.test_loop import FakePool, _table, fake_metrics


def _result(design):
    return next(FakePool().map([design], type("C", (), {"tech": load_technology("ptm65"), "testbench": "feedback"})))[1]


def test_feasible_designs_rank_by_power_and_before_any_infeasible_one():
    rank = objective_rank(objective("min-power"))
    specs = Specs(gain_db=38)
    cheap_feasible = _result(EXAMPLE_DESIGN.replace(W1=15e-6, W4=8e-6))  # 40 dB, 1.25 uW
    dear_feasible = _result(EXAMPLE_DESIGN.replace(W1=30e-6, W4=64e-6))  # 46 dB, 10 uW: more margin, more power
    cheapest_infeasible = _result(EXAMPLE_DESIGN.replace(W1=5e-6, W4=1e-6))  # 30.5 dB, 0.16 uW
    order = sorted([cheapest_infeasible, dear_feasible, cheap_feasible], key=lambda r: rank(r, specs))
    assert order == [cheap_feasible, dear_feasible, cheapest_infeasible]
    assert rank(cheap_feasible, specs)[0] == 0.0 < rank(cheapest_infeasible, specs)[0]
    ugb_rank = objective_rank(objective("max-ugb"))  # the fake UGB is the same everywhere: then margin decides
    assert sorted([cheap_feasible, dear_feasible], key=lambda r: ugb_rank(r, specs))[0] == dear_feasible


def test_the_loop_keeps_improving_after_feasibility_and_stops_at_its_tolerance():
    tech = load_technology("ptm65")
    start = EXAMPLE_DESIGN.replace(W1=30e-6, W4=64e-6)  # meets gain 38 at 10 uW; W4 alone sets power
    table = _table([start])
    keep_going = size(Specs(gain_db=38), tech, SizeConfig(budget=40, steps=("retrieval", "improve")), FakePool(),
                      table=table)
    assert keep_going.met and keep_going.first_met_at == 1
    assert keep_going.best.source == "improve"
    assert keep_going.best.result.metrics.power_w < 0.8 * fake_metrics(start).power_w
    assert keep_going.best.result.metrics.gain_db >= 38.5  # inside the margin
    # a tolerance no round can reach: it stops after `improve_patience` rounds of `local_batch` designs
    patient = size(Specs(gain_db=38), tech, SizeConfig(budget=40, steps=("retrieval", "improve"), improve_tolerance=9,
                                                       improve_patience=2, local_batch=4), FakePool(), table=table)
    assert patient.simulations == 1 + 2 * 4
    satisfied = size(Specs(gain_db=38), tech, SizeConfig(budget=40, steps=("retrieval", "improve"),
                                                         objective="max-margin"), FakePool(), table=table)
    assert satisfied.simulations == 1  # max-margin stops at the first design meeting the specs


def test_a_design_on_the_edge_does_not_meet_with_a_margin():
    tech = load_technology("ptm65")
    edge = EXAMPLE_DESIGN.replace(W1=15e-6)  # 40.0 dB exactly
    for margin, met in ((Margin(), False), (NO_MARGIN, True)):
        result = size(Specs(gain_db=40), tech, SizeConfig(budget=1, steps=("retrieval",), margin=margin), FakePool(),
                      table=_table([edge]))
        assert result.met is met, margin
    tight = Margin(db=0.5, deg=1, relative=0.02).tighten(Specs(gain_db=40, pm_deg=50, ugb_hz=1e6, power_w=1e-5,
                                                              itail_a=2e-5))
    assert (tight.gain_db, tight.pm_deg, tight.ugb_hz, tight.power_w, tight.itail_a) == \
        pytest.approx((40.5, 51, 1.02e6, 1e-5 / 1.02, 2e-5))


def test_margin_and_objective_inputs_are_checked():
    assert parse_margin("1dB,2%") == Margin(db=1.0, deg=1.0, relative=0.02)
    assert parse_margin("0") == NO_MARGIN
    for bad in ("1 volt", "-1dB", "5"):
        with pytest.raises(ConfigError):
            parse_margin(bad)
    with pytest.raises(ConfigError, match="not an objective"):
        SizeConfig(objective="cheapest")
    assert set(OBJECTIVES) == {"min-power", "max-ugb", "max-fom", "min-area", "max-margin"}


def test_objective_values_are_decades():
    figures = {"power_w": 1e-6, "ugb_hz": 1e7, "area_m2": 5e-10}
    assert objective("min-power").value(figures) == pytest.approx(-6)
    assert objective("max-ugb").value(figures) == pytest.approx(-7)
    assert objective("max-fom").value(figures) == pytest.approx(-math.log10(1e7 * 1e-12 / 1e-6))
    assert objective("min-area").value(figures) == pytest.approx(math.log10(5e-10))
    assert math.isnan(objective("min-power").value({"power_w": None}))


def test_a_degenerate_result_is_warned_about():
    assert degenerate_warnings({"ugb_hz": 50.0, "power_w": 8e-9}, {"gain_db": 38})[0].startswith("the UGB is 50 Hz")
    assert len(degenerate_warnings({"ugb_hz": 50.0, "power_w": 8e-9}, {"gain_db": 38})) == 2
    assert degenerate_warnings({"ugb_hz": 50.0, "power_w": 8e-9}, {"ugb_hz": 10, "power_w": 1e-8}) == []
    out = CliRunner().invoke(main, ["size", "--gain", "38dB", "--pm", "52", "--model", "none"])
    assert out.exit_code == 0, out.output
    assert "warning: the UGB is" in out.output and "objective min-power:" in out.output


def test_the_pareto_front_keeps_only_non_dominated_tradeoffs():
    points = [Tradeoff(-6.0, 0.1, "a", 0), Tradeoff(-5.5, 0.3, "b", 1), Tradeoff(-5.4, 0.2, "c", 2),
              Tradeoff(-5.0, 0.5, "d", 3)]
    assert [p.source for p in pareto_front(points)] == ["a", "b", "d"]


def test_pareto_prints_and_plots(tmp_path):
    plot = tmp_path / "p.png"
    out = CliRunner().invoke(main, ["size", "--gain", "40dB", "--pm", "55", "--ugb", "1MHz", "--model", "none",
                                    "--pareto", "3", "--pareto-plot", str(plot)])
    assert out.exit_code == 0, out.output
    assert "trade-offs found" in out.output and plot.is_file() and plot.stat().st_size > 1000
    assert SPEC_KINDS["power_w"].bound == "max"
