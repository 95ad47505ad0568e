"""Hardening: text that must never reach ngspice, inputs that must end in one line (exit 2) instead of a traceback,
read-only folders, and augmentation that goes through the same validation as every answer."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.paths import DEFAULT_DATA_DIR, SPICE_DIR
from icgen.core.tech import TechError, load_technology

from .test_parse import EXAMPLE_ANSWER

ICGEN = [sys.executable, "-m", "icgen.cli"]


def run(*args, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


def one_line_error(result, message: str) -> None:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("icgen: error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output


def _descriptor(tmp_path: Path, **changes) -> Path:
    import yaml

    raw = yaml.safe_load((SPICE_DIR / "ptm65.yaml").read_text())
    raw["model_file"] = str(SPICE_DIR / "ptm65.lib")
    raw.update(changes)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("field", ["name", "nmos", "pmos", "corner"])
def test_a_descriptor_field_with_a_control_block_never_reaches_ngspice(tmp_path, field):
    marker = tmp_path / "pwned"
    descriptor = _descriptor(tmp_path, **{field: f"x\n.control\nshell touch {marker}\n.endc\n"})
    with pytest.raises(TechError, match="not a plain name"):
        load_technology(descriptor)
    result = run("simulate", "--tech", str(descriptor))
    one_line_error(result, "not a plain name")
    assert not marker.exists()


def test_a_model_file_with_a_control_block_is_refused_unless_the_descriptor_opts_in(tmp_path):
    marker = tmp_path / "pwned"
    models = tmp_path / "foundry.lib"
    models.write_text((SPICE_DIR / "ptm65.lib").read_text() + f"\n  .CONTROL\nshell touch {marker}\n.endc\n")
    refused = run("simulate", "--tech", str(_descriptor(tmp_path, model_file=str(models))))
    one_line_error(refused, "holds a .control block")
    assert not marker.exists()
    trusted = load_technology(_descriptor(tmp_path, model_file=str(models), allow_control=True))
    assert trusted.allow_control and trusted.model_file == models


def test_a_model_path_with_a_quote_is_refused_with_a_way_out(tmp_path):
    odd = tmp_path / "it's"
    odd.mkdir()
    shutil.copy(SPICE_DIR / "ptm65.lib", odd / "m.lib")
    result = run("tech", "show", str(_descriptor(tmp_path, model_file=str(odd / "m.lib"))))
    one_line_error(result, "holds a quote")


@pytest.mark.parametrize("args, message", [
    (["--gain", "150", "--budget", "1000000000"], "is not 1 to 100000 simulations"),
    (["--gain", "38", "--seed", "-1"], "--seed -1 is negative"),
    (["--gain", "38", "--data", "/nonexistent"], "--data: /nonexistent: no such folder"),
])
def test_size_refuses_what_it_cannot_do_in_one_line(args, message):
    one_line_error(run("size", "--model", "none", *args), message)


@pytest.mark.ngspice
def test_unmet_specs_exit_1_and_met_specs_exit_0():
    unmet = run("size", "--gain", "150", "--budget", "3", "--model", "none", "--json")
    assert unmet.exit_code == 1 and json.loads(unmet.output)["met"] is False
    met = run("size", "--gain", "38", "--budget", "3", "--model", "none", "--json")
    assert met.exit_code == 0 and json.loads(met.output)["met"] is True


def _dataset_copy(tmp_path: Path, surrogate: bool = True) -> Path:
    copy = tmp_path / "data"
    copy.mkdir()
    for name in ("designs.parquet", "splits.parquet", "meta.json"):
        shutil.copy(DEFAULT_DATA_DIR / name, copy / name)
    if surrogate:
        shutil.copytree(DEFAULT_DATA_DIR / "surrogate", copy / "surrogate")
    return copy


def test_a_corrupt_table_is_one_line(tmp_path):
    data = _dataset_copy(tmp_path, surrogate=False)
    (data / "designs.parquet").write_bytes(b"PAR1 this is not parquet")
    one_line_error(run("size", "--gain", "38", "--model", "none", "--data", str(data)), "not a readable Parquet table")
    one_line_error(run("data", "stats", "--data", str(data)), "not a readable Parquet table")


@pytest.mark.parametrize("content, message", [
    ('{"completion": 5}', "must be the model's text"),
    ('{"R0": 1e9, "C0": 1e-12, "L1": 6e-7, "W1": 1e-5, "L2": 1e-7, "W2": 2e-5, "L3": 4e-7, "W3": 2e-5, '
     '"L4": 5e-7, "W4": 6e-5, "L5": 2e-7, "W5": 2e-5, "VIN": 0.6, "VB1": 0.9}', "outside ptm65's range"),
    ('{"R0": 3e3, "C0": 1e-12, "L1": 6e-7, "W1": 1e-5, "L2": 1e-7, "W2": 2e-5, "L3": 4e-7, "W3": 2e-5, '
     '"L4": 5e-7, "W4": -6e-5, "L5": 2e-7, "W5": 2e-5, "VIN": 0.6, "VB1": 0.9}', "outside ptm65's range"),
    (EXAMPLE_ANSWER + "\n.control\nshell touch x\n.endc\n", "not a valid design"),
    (EXAMPLE_ANSWER.replace("M6 nch VOUT net3 GND GND", "M6 pch VDD net3 VOUT GND"), "not a valid design"),
    ("[[[[" * 30000, "not valid JSON"),
])
def test_augment_around_validates_every_design_like_an_answer(tmp_path, content, message):
    data = _dataset_copy(tmp_path)
    around = tmp_path / "around.json"
    around.write_text(content)
    before = (data / "designs.parquet").read_bytes()
    one_line_error(run("data", "augment", "--data", str(data), "--around", str(around), "--n", "2"), message)
    assert (data / "designs.parquet").read_bytes() == before


@pytest.mark.ngspice
def test_augment_runs_on_the_shipped_dataset_as_a_fresh_clone_has_it(tmp_path):
    """No parts/ folder and no n_working in meta.json: the sampled rows come from the table itself."""
    data = _dataset_copy(tmp_path)
    assert "n_working" not in json.loads((data / "meta.json").read_text()) and not (data / "parts").exists()
    around = tmp_path / "around.txt"
    around.write_text(EXAMPLE_ANSWER)
    result = run("data", "augment", "--data", str(data), "--around", str(around), "--n", "3")
    assert result.exit_code == 0, result.output
    from icgen.data.dataset import Dataset

    table = Dataset(data).table
    assert len(table) > 39188 and (table["index"] >= 1_000_000_000).sum() >= 1


def _read_only(folder: Path) -> list[str] | None:
    """A command prefix that runs with `folder` mounted read-only (root cannot be stopped by chmod)."""
    probe = ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount --bind -o ro "$0" "$0" && ! touch "$0/.probe" 2>/dev/null', str(folder)]
    if shutil.which("unshare") and subprocess.run(probe, capture_output=True).returncode == 0:
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]
    return None


@pytest.mark.ngspice
def test_a_read_only_dataset_still_serves_size_and_the_writers_say_why_they_cannot(tmp_path):
    data = _dataset_copy(tmp_path, surrogate=False)
    prefix = _read_only(data)
    if prefix is None:
        pytest.skip("no read-only bind mount here (unshare -m needs CAP_SYS_ADMIN)")
    env = {**os.environ, "ICGEN_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    args = ["size", "--gain", "150", "--budget", "3", "--model", "none", "--data", str(data)]
    sized = subprocess.run(prefix + ICGEN + args, capture_output=True, text=True, env=env)
    assert sized.returncode == 1 and "Traceback" not in sized.stderr, sized.stderr  # ran; 150 dB is not met
    assert "fitting the simulator surrogate" in sized.stderr
    cached = list((tmp_path / "cache" / "surrogates").glob("*/meta.json"))
    assert len(cached) == 1 and not (data / "surrogate").exists()
    again = subprocess.run(prefix + ICGEN + args, capture_output=True, text=True, env=env)
    assert again.returncode == 1 and "fitting" not in again.stderr  # the user's cache serves the second run
    for command in (["data", "stats", "--data", str(data)], ["data", "split", "--data", str(data), "--force"],
                    ["data", "generate", "--n-working", "2", "--out", str(data / "x")]):
        result = subprocess.run(prefix + ICGEN + command, capture_output=True, text=True, env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert lines[-1].startswith("icgen: error: ") and "Read-only file system" in lines[-1], result.stderr


@pytest.mark.ngspice
def test_validate_fails_a_netlist_whose_operating_point_is_unhealthy(tmp_path):
    """The reported case: a netlist with M5 in triode was VALID with rc 0."""
    answer = tmp_path / "triode.txt"
    answer.write_text(EXAMPLE_ANSWER.replace("VB1=932.0mV", "VB1=200.0mV"))  # the tail's gate far down: M5 triode
    result = run("validate", str(answer))
    assert result.exit_code == 1 and "VALID:" not in result.output.replace("INVALID", "")
    assert "operating point: unhealthy:" in result.output and "M5 in triode" in result.output
    assert run("validate", str(answer), "--testbench", "fixed").exit_code == 1
    good = tmp_path / "good.txt"
    good.write_text(EXAMPLE_ANSWER)
    assert run("validate", str(good)).exit_code == 0


def test_a_closed_pipe_ends_quietly():
    """`icgen data export | head -1`: the reader goes away; no traceback, no misleading error."""
    proc = subprocess.run(f"{sys.executable} -m icgen.cli data export --split train | head -1", shell=True,
                          capture_output=True, text=True)
    assert proc.stdout.startswith('{"prompt"') and proc.stderr == "", proc.stderr
