"""The designer's specs (issue 12): units, bounds, the figure each reads, the benches each asks for, a fixed VIN,
and one end-to-end sizing whose sign-off figures are re-measured."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.score import (
    ITAIL_TOLERANCE,
    SPEC_KINDS,
    SpecError,
    Specs,
    check_specs,
    format_spec,
    parse_spec,
    shortfall,
    specs_from_options,
    table_rank,
)
from icgen.core.signoff import Signoff
from icgen.core.status import Status
from icgen.core.tech import load_technology
from icgen.sim.simulate import SimResult
from icgen.sizing.loop import SizeConfig, size
from tests.test_loop import FakePool, _health, _table, fake_metrics


@pytest.mark.parametrize("option, text, value", [
    ("slew", "10V/us", 1e7), ("slew", "10 V/µs", 1e7), ("slew", "2e6", 2e6), ("slew", "500kV/s", 5e5),
    ("settling", "50ns", 50e-9), ("cmrr", "60dB", 60.0), ("psrr", "50", 50.0), ("offset", "1mV", 1e-3),
    ("swing", "0.8V", 0.8), ("area", "500um2", 500e-12), ("area", "0.5mm²", 0.5e-6), ("itail", "20uA", 20e-6),
    ("vin", "600mV", 0.6), ("settle-to", "0.1%", 0.001), ("gbw", "20MHz", 20e6),
])
def test_designer_specs_parse_with_checked_units(option, text, value):
    assert parse_spec(option, text) == pytest.approx(value, rel=1e-12)


def test_noise_carries_its_spot_frequency():
    assert parse_spec("noise", "30nV/rtHz@1kHz") == pytest.approx((30e-9, 1e3))
    assert parse_spec("noise", "30nV/rtHz") == pytest.approx((30e-9, 1e6))
    specs = specs_from_options({"noise": "5nV/rtHz@1kHz", "settle_to": "0.1%", "settling": "20ns"})
    assert (specs.noise_v_rthz, specs.noise_at_hz, specs.settle_to) == pytest.approx((5e-9, 1e3, 1e-3))


@pytest.mark.parametrize("option, text, says", [
    ("slew", "10V/uA", "not a slew rate"), ("area", "500um", "not an area"), ("itail", "20uV", "not a current"),
    ("settle-to", "0.1", "not a percentage"), ("noise", "3nV/rtHz@fast", "after @ is not a frequency"),
    ("cmrr", "60dBm", "not a ratio in dB"),
])
def test_malformed_designer_specs_say_what_would_be_right(option, text, says):
    with pytest.raises(SpecError, match=says):
        parse_spec(option, text)


@pytest.mark.parametrize("kwargs, says", [
    ({"noise_v_rthz": 3e-8, "noise_at_hz": 2e6}, "reported at 1kHz and 1MHz"),
    ({"settling_s": 5e-8, "settle_to": 0.05}, "1% or 0.1%"), ({"vin_v": 0.6}, "at least one spec"),
    ({"cmrr_db": 400}, "not a CMRR"), ({"area_m2": -1}, "not an area budget"),
])
def test_impossible_designer_specs_are_refused(kwargs, says):
    with pytest.raises(SpecError, match=says):
        Specs(**kwargs)


def _result(signoff: Signoff, itail: float = 1e-6, vin: float = 0.6) -> SimResult:
    from icgen.core.design import EXAMPLE_DESIGN

    design = dataclasses.replace(EXAMPLE_DESIGN, VIN=vin)
    health = _health()
    health = dataclasses.replace(health, devices=tuple(dataclasses.replace(d, id_a=itail) if d.name == "M5" else d
                                                       for d in health.devices))
    return SimResult(design=design, status=Status.OK, reason=None, metrics=fake_metrics(design), health=health,
                     tech="ptm65", testbench="feedback", backend="fake", seconds=0.0, signoff=signoff)


def test_each_spec_reads_its_own_figure_and_bound():
    figures = Signoff(slew_rise_v_per_s=2e7, slew_fall_v_per_s=5e6, psrr_plus_db=70, psrr_minus_db=45,
                      offset_v=-2e-3, settling_1pct_s=30e-9, settling_01pct_s=80e-9, swing_low_v=0.2,
                      swing_high_v=0.9, noise_1khz_v_rthz=200e-9, noise_1mhz_v_rthz=20e-9, cmrr_db=61, area_m2=4e-10)
    result = _result(figures, itail=21e-6)
    checks = {c.key: c for c in check_specs(result, Specs(
        slew_v_per_s=1e7, psrr_db=50, offset_v=1e-3, settling_s=50e-9, swing_v=0.8, noise_v_rthz=30e-9, cmrr_db=60,
        area_m2=5e-10, itail_a=20e-6))}
    assert checks["slew_v_per_s"].achieved == 5e6 and not checks["slew_v_per_s"].met  # the worse edge
    assert checks["psrr_db"].achieved == 45 and not checks["psrr_db"].met  # the worse rail
    assert checks["offset_v"].achieved == 2e-3 and not checks["offset_v"].met  # |offset|, an upper bound
    assert checks["settling_s"].achieved == 30e-9 and checks["settling_s"].met  # 1 % by default
    assert checks["swing_v"].achieved == pytest.approx(0.7) and checks["swing_v"].margin == pytest.approx(-0.1)
    assert checks["noise_v_rthz"].met and checks["cmrr_db"].met and checks["area_m2"].met
    assert checks["itail_a"].met  # 5 % off: inside the band
    to_01 = check_specs(result, Specs(settling_s=50e-9, settle_to=0.001))[0]
    assert to_01.achieved == 80e-9 and not to_01.met
    # PSRR 5 dB short = 5/6 unit; swing 0.1 V short = 1 unit; offset a factor 2 = log10(2) decades; slew likewise
    short = shortfall(result, Specs(psrr_db=50, swing_v=0.8, offset_v=1e-3, slew_v_per_s=1e7))
    assert short == pytest.approx(5 / 6 + 1 + 2 * math.log10(2))


def test_tail_current_is_a_band_not_a_bound():
    for ratio, met in ((1.0, True), (1 + 0.9 * ITAIL_TOLERANCE, True), (1 - 0.08, True), (1.2, False), (0.8, False)):
        check = check_specs(_result(Signoff(), itail=20e-6 * ratio), Specs(itail_a=20e-6))[0]
        assert check.met is met, ratio


def test_a_figure_that_was_not_measured_never_meets_its_spec():
    check = check_specs(_result(Signoff()), Specs(cmrr_db=10))[0]
    assert check.achieved is None and not check.met
    assert shortfall(_result(Signoff()), Specs(cmrr_db=10)) == 1.0


def test_specs_ask_for_exactly_the_benches_they_need():
    assert Specs(gain_db=40).benches() == ()
    assert Specs(ugb_hz=1e6).benches() == ("buffer_ac",)
    assert Specs(settling_s=1e-7, slew_v_per_s=1e6).benches() == ("buffer_ac", "small_step", "large_step")
    assert Specs(psrr_db=40, cmrr_db=50).benches() == ("cmrr", "psrr_plus", "psrr_minus")
    assert Specs(noise_v_rthz=1e-8).benches() == ("noise",) and Specs(swing_v=0.5).benches() == ("swing",)
    assert Specs(offset_v=1e-3).benches() == () and Specs(offset_v=1e-3).needs_estimates()
    assert not Specs(gain_db=40).needs_estimates()


def test_table_rank_reads_the_same_figures_and_treats_a_missing_column_as_unmeasured():
    table = pd.DataFrame({"psrr_plus_db": [60.0, 40.0, np.nan], "psrr_minus_db": [55.0, 70.0, 70.0],
                          "power_w": [1e-5, 1e-6, 1e-6]})
    short, _, _ = table_rank(table, Specs(psrr_db=50))
    assert short == pytest.approx([0.0, 10 / 6, 1.0])
    short, _, _ = table_rank(table, Specs(cmrr_db=50))  # no cmrr column: 1 unit short everywhere
    assert short == pytest.approx([1.0, 1.0, 1.0])


def test_every_spec_prints_in_its_unit():
    assert format_spec("slew_v_per_s", 1e7) == "10 V/µs"
    assert format_spec("area_m2", 5e-10) == "500 µm²"
    assert format_spec("noise_v_rthz", 3e-8) == "30 nV/√Hz"
    assert format_spec("cmrr_db", None) == "—"
    assert set(SPEC_KINDS) >= {"gbw_hz", "settling_s", "slew_v_per_s", "cmrr_db", "psrr_db", "offset_v", "swing_v",
                               "noise_v_rthz", "area_m2", "itail_a"}


def test_a_fixed_vin_is_every_candidates_vin(tmp_path):
    tech = load_technology("ptm65")
    pool = FakePool()
    from icgen.core.design import EXAMPLE_DESIGN

    table = _table([EXAMPLE_DESIGN, dataclasses.replace(EXAMPLE_DESIGN, W1=30e-6, VIN=0.7)])
    result = size(Specs(gain_db=90, vin_v=0.55), tech, SizeConfig(budget=12, steps=("retrieval", "local")), pool,
                  table=table)
    assert pool.simulated and {d.VIN for d in pool.simulated} == {0.55}
    assert result.simulations == len(pool.simulated)
    with pytest.raises(SpecError, match="outside ptm65's VIN range"):
        size(Specs(gain_db=40, vin_v=1.15), tech, SizeConfig(budget=2), pool)


@pytest.mark.parametrize("args, says", [
    (["--slew", "10V"], "--slew: '10V' is not a slew rate"),
    (["--gain", "40", "--settle-to", "3%"], "--settle-to"),
    (["--gain", "40", "--vin", "2V", "--model", "none", "--data", "none"], "outside ptm65's VIN range"),
])
def test_bad_designer_specs_are_one_line_and_exit_2(args, says):
    out = CliRunner().invoke(main, ["size", *args])
    assert out.exit_code == 2, out.output
    assert says in out.output and "Traceback" not in out.output
    assert len([line for line in out.output.splitlines() if line.strip()]) == 1


def test_sizing_for_designer_specs_meets_them_as_re_measured():
    """Real simulation: CMRR, PSRR, offset, a tail-current band and a fixed VIN, then the winner re-simulated with
    every sign-off bench must show the same figures."""
    from icgen.core.paths import DEFAULT_DATA_DIR
    from icgen.data.dataset import Dataset
    from icgen.sim.simulate import simulate

    table = Dataset(DEFAULT_DATA_DIR).training_rows()
    specs = Specs(gain_db=40, pm_deg=55, cmrr_db=60, psrr_db=45, offset_v=2e-3, itail_a=20e-6, vin_v=0.6)
    result = size(specs, "ptm65", SizeConfig(budget=30, steps=("retrieval", "refine", "local")), table=table)
    assert result.met, [(c.key, c.achieved) for c in check_specs(result.best.result, specs)]
    design = result.best.result.design
    assert design.VIN == 0.6
    again = simulate(design, "ptm65", signoff=True)
    for check in check_specs(again, specs):
        assert check.met, check


def test_the_eval_judges_the_same_run_by_the_old_rules_too():
    """A 20 mV saturation margin and a UGB shelf fail v2's health but not v1's; a device in triode fails both."""
    from icgen.core.measure import V1_HEALTH, V2_HEALTH, regrade
    from icgen.eval.methods import met_v1

    base = _result(Signoff())
    thin = tuple(dataclasses.replace(d, vds_v=d.vdsat_v + 0.02, saturation_margin_v=0.02) if d.name == "M5" else d
                 for d in base.health.devices)
    flagged = dataclasses.replace(base.health, devices=thin, flags=("M5 saturation margin 20 mV < 50 mV",
                                                                     "UGB shelf (buffer bandwidth 1e5 Hz < 0.8 x UGB)"))
    result = dataclasses.replace(base, health=flagged)
    specs = Specs(gain_db=35)
    assert shortfall(result, specs, result.status, result.health.healthy) > 0  # v2: not met
    assert regrade(flagged, V1_HEALTH).healthy and not regrade(flagged, V2_HEALTH).healthy
    assert met_v1(result, specs)
    triode = tuple(dataclasses.replace(d, vds_v=d.vdsat_v - 0.01, saturation_margin_v=-0.01) if d.name == "M5"
                   else d for d in base.health.devices)
    broken = dataclasses.replace(base, health=dataclasses.replace(base.health, devices=triode, flags=("M5 in triode",)))
    assert not met_v1(broken, specs)
    assert not met_v1(result, Specs(gain_db=60))  # the metrics still have to meet the specs
