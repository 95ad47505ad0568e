"""Monte Carlo mismatch (`icgen signoff --mc N --seed S`): seeded Pelgrom offsets, applied as BSIM4's delvto, the
yield's Wilson interval, and an offset spread that grows as the devices shrink."""
from __future__ import annotations

import statistics

import numpy as np
import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.deck import render_circuit
from icgen.core.design import EXAMPLE_DESIGN
from icgen.core.mismatch import MismatchError, device_sigmas, draw_offsets, pelgrom_avt, wilson_interval
from icgen.core.tech import load_technology


def test_the_same_seed_gives_the_same_samples_and_another_seed_others(ptm65):
    a = draw_offsets(EXAMPLE_DESIGN, ptm65, 50, seed=7)
    assert a == draw_offsets(EXAMPLE_DESIGN, ptm65, 50, seed=7)
    assert a != draw_offsets(EXAMPLE_DESIGN, ptm65, 50, seed=8)
    assert draw_offsets(EXAMPLE_DESIGN, ptm65, 10, seed=7) == a[:10]  # sample i does not depend on n
    assert set(a[0]) == {"M1", "M2", "M3", "M4", "M5", "M6", "M7"}


def test_the_spread_follows_pelgrom_a_quarter_of_the_area_twice_the_sigma(ptm65):
    small = EXAMPLE_DESIGN.replace(W1=EXAMPLE_DESIGN.W1 / 2, L1=EXAMPLE_DESIGN.L1 / 2)
    assert device_sigmas(EXAMPLE_DESIGN, ptm65)["M1"] == pytest.approx(3.5e-9 / (15e-6 * 622e-9) ** 0.5)
    big = [s["M1"] for s in draw_offsets(EXAMPLE_DESIGN, ptm65, 4000, seed=0)]
    tiny = [s["M1"] for s in draw_offsets(small, ptm65, 4000, seed=0)]
    assert statistics.stdev(tiny) / statistics.stdev(big) == pytest.approx(2.0, rel=1e-9)  # same normals, scaled
    assert statistics.stdev(big) == pytest.approx(device_sigmas(EXAMPLE_DESIGN, ptm65)["M1"], rel=0.05)


def test_the_wilson_interval_on_known_examples():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    low, high = wilson_interval(200, 200)
    assert high == 1.0 and low == pytest.approx(0.9812, abs=1e-4)  # all passed: the bound is still below 1
    assert wilson_interval(0, 20)[0] == 0.0


def test_offsets_are_written_as_delvto_on_the_instance_lines(ptm65):
    deck = render_circuit(EXAMPLE_DESIGN, ptm65, delvto={"M1": 0.005, "M4": -0.002})
    lines = {line.split()[0]: line for line in deck.splitlines() if line.startswith("M")}
    assert lines["M1"].endswith("delvto=5m") and lines["M4"].endswith("delvto=-2m")
    assert "delvto" not in lines["M2"]


def test_a_technology_without_pelgrom_coefficients_is_refused(tmp_path):
    from icgen.core.tech import spice_dir

    text = (spice_dir() / "ptm65.yaml").read_text().replace("pelgrom_avt_v_m", "unused_key")
    text = text.replace("model_file: ptm65.lib", f"model_file: {spice_dir() / 'ptm65.lib'}")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(MismatchError, match="pelgrom_avt_v_m"):
        pelgrom_avt(load_technology(path))


@pytest.mark.ngspice
def test_the_simulated_offset_spread_grows_as_the_devices_shrink(ptm65):
    from icgen.sim.montecarlo import MonteCarloConfig, monte_carlo
    from icgen.sim.simulate import SimulatorPool

    scaled = {k: getattr(EXAMPLE_DESIGN, k) / 2 for k in ("W1", "L1", "W3", "L3")}  # input pair and mirror: 1/4
    small = EXAMPLE_DESIGN.replace(**scaled)
    config = MonteCarloConfig(samples=60, seed=3)
    with SimulatorPool(workers=2) as pool:
        big = monte_carlo(EXAMPLE_DESIGN, ptm65, None, config, pool)
        tiny = monte_carlo(small, ptm65, None, config, pool)
        again = monte_carlo(EXAMPLE_DESIGN, ptm65, None, config, pool)
    assert big.offset_v == again.offset_v  # reproducible
    ratio = statistics.stdev(tiny.offset_v) / statistics.stdev(big.offset_v)
    assert 1.6 < ratio < 2.5  # Pelgrom: a quarter of the area, about twice the spread
    assert 1.5e-3 < statistics.stdev(big.offset_v) < 4e-3  # M1/M2 and M3/M4 pairs, each about 1.6 mV


@pytest.mark.ngspice
def test_signoff_mc_reports_the_yield_with_its_interval():
    out = CliRunner().invoke(main, ["signoff", "--corners", "nominal", "--mc", "40", "--seed", "2", "--json"])
    import json

    report = json.loads(out.output)["monte_carlo"]
    assert report["samples"] == 40 and len(report["offset_v"]) == 40
    low, high = report["wilson_95"]
    assert low <= report["yield"] <= high
    assert out.exit_code == (0 if report["passed"] == 40 else 1)


@pytest.mark.ngspice
def test_signoff_mc_with_a_plot_writes_the_histograms_beside_the_bode_curves(tmp_path):
    from PIL import Image

    bode = tmp_path / "signoff.png"
    out = CliRunner().invoke(main, ["signoff", "--corners", "tt_1.2V_-40C,tt_1.2V_125C", "--mc", "20", "--seed", "1",
                                    "--gain", "30dB", "--plot", str(bode)])
    assert out.exit_code in (0, 1), out.output
    histograms = tmp_path / "signoff-mc.png"
    assert f"Monte Carlo histograms: {histograms}" in out.output
    with Image.open(histograms) as image:
        assert image.size == (1210, 715)  # the 2 x 3 grid of panels at 110 dpi
        pixels = np.asarray(image.convert("L"))
    assert (pixels < 128).mean() > 0.01  # bars and axes drawn, not an empty canvas
    assert bode.is_file()
    no_mc = tmp_path / "only.png"
    assert CliRunner().invoke(main, ["signoff", "--corners", "nominal", "--plot", str(no_mc)]).exit_code in (0, 1)
    assert no_mc.is_file() and not (tmp_path / "only-mc.png").exists()


def test_signoff_mc_zero_is_bad_input():
    out = CliRunner().invoke(main, ["signoff", "--corners", "nominal", "--mc", "0"])
    assert out.exit_code == 2 and "--mc" in out.output


@pytest.mark.ngspice
def test_the_offset_spread_matches_pelgroms_prediction_with_the_mirrors_share(ptm65):
    """sigma(offset)^2 = 2 s1^2 + 2 (gm3/gm1 s3)^2 + (s6^2 + (gm7/gm6 s7)^2) / A1^2, from the nominal operating
    point; without the mirror's share the prediction is 1.6x too low here, far outside the sampling error."""
    import math

    from icgen.sim.montecarlo import MonteCarloConfig, monte_carlo
    from icgen.sim.simulate import simulate

    nominal = {d.name: d for d in simulate(EXAMPLE_DESIGN, ptm65).health.devices}
    sigma = device_sigmas(EXAMPLE_DESIGN, ptm65)
    mirror = nominal["M3"].gm_s / nominal["M1"].gm_s
    first_stage_gain = nominal["M1"].gm_s / (nominal["M1"].gds_s + nominal["M3"].gds_s)
    second = (sigma["M6"] ** 2 + (nominal["M7"].gm_s / nominal["M6"].gm_s * sigma["M7"]) ** 2) / first_stage_gain ** 2
    predicted = math.sqrt(2 * sigma["M1"] ** 2 + 2 * (mirror * sigma["M3"]) ** 2 + second)
    n = 200
    measured = statistics.stdev(monte_carlo(EXAMPLE_DESIGN, ptm65, None, MonteCarloConfig(samples=n, seed=0)).offset_v)
    standard_error = 1 / math.sqrt(2 * (n - 1))  # of a sample standard deviation, relative
    assert abs(measured / predicted - 1) < 3 * standard_error
    assert measured / (math.sqrt(2) * sigma["M1"]) > 1 + 3 * standard_error  # the mirror's share is there
