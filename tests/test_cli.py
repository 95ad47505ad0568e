"""The command line as a user meets it: JSON shapes, exit codes, one-line errors."""
import json

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import DESIGN_KEYS, METRIC_KEYS

from .test_parse import EXAMPLE_ANSWER


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


@pytest.mark.ngspice
def test_simulate_json_has_design_metrics_status_health(tmp_path):
    plot = tmp_path / "bode.png"
    result = run("simulate", "--json", "--testbench", "fixed", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data["design"]) == list(DESIGN_KEYS) and list(data["metrics"]) == list(METRIC_KEYS)
    assert data["status"] == "ok" and data["health"]["healthy"] is False
    assert plot.stat().st_size > 10_000


@pytest.mark.ngspice
def test_simulate_reads_an_answer_file_and_overrides(tmp_path):
    answer = tmp_path / "answer.txt"
    answer.write_text(EXAMPLE_ANSWER)
    result = run("simulate", str(answer), "--C0", "3p", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["design"]["C0"] == 3e-12


@pytest.mark.ngspice
def test_validate_accepts_the_example_and_rejects_a_broken_answer(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(EXAMPLE_ANSWER)
    bad.write_text(EXAMPLE_ANSWER.replace("M6 nch VOUT net3", "M6 nch VOUT net1") + "\n.control\nshell ls\n.endc")
    ok = run("validate", str(good))
    assert ok.exit_code == 0 and "VALID" in ok.output
    broken = run("validate", str(bad), "--json")
    assert broken.exit_code == 1
    report = json.loads(broken.output)
    assert report["valid"] is False and report["simulation"] is None
    wheres = [p["where"] for p in report["problems"]]
    assert "line 6, M6" in wheres and any(w.startswith("line 11") for w in wheres)


@pytest.mark.parametrize("args, message", [
    (["simulate", "--W1", "abc"], "--W1: 'abc' is not a number"),
    (["simulate", "--L1", "1m"], "L1: 1000.0um is outside ptm65's range"),
    (["simulate", "--tech", "tsmc7"], "unknown technology 'tsmc7'"),
    (["simulate", "nonexistent.json"], "nonexistent.json: no such file"),
    (["validate", "nonexistent.txt"], "nonexistent.txt: no such file"),
])
def test_bad_input_is_one_line_with_exit_code_2(args, message):
    result = run(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("icgen: error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_tech_show_json_gives_absolute_paths_and_bounds():
    result = run("tech", "show", "ptm65", "--json")
    data = json.loads(result.stdout)
    assert data["model_file"].startswith("/") and data["model_file"].endswith("ptm65.lib")
    assert (data["nmos"], data["pmos"], data["vdd_v"], data["cl_f"]) == ("nch", "pch", 1.2, 1e-12)
    assert set(data["bounds"]) == set(DESIGN_KEYS)


@pytest.mark.ngspice
def test_a_user_descriptor_with_its_own_model_names_simulates(tmp_path, ptm65):
    """A designer's own technology: their model file and names, referenced by path, nothing copied into the repo."""
    models = ptm65.model_file.read_text().replace(".model nch ", ".model my_n ").replace(".model pch ", ".model my_p ")
    (tmp_path / "foundry.lib").write_text(models)
    bounds = "\n".join(f"  {k}: [{lo!r}, {hi!r}]" for k, (lo, hi) in ptm65.bounds.items())
    (tmp_path / "mine.yaml").write_text(f"name: mine\nmodel_file: foundry.lib\nnmos: my_n\npmos: my_p\n"
                                        f"vdd_v: 1.2\ncl_f: 1.0e-12\nbounds:\n{bounds}\n")
    result = run("simulate", "--tech", str(tmp_path / "mine.yaml"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["gain_db"] == pytest.approx(64.1, abs=0.1)
