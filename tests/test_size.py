"""icgen size: specs met by designs that re-simulate to meet them; budgets respected; bad specs refused."""
import json

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import Design
from icgen.core.score import Specs, shortfall
from icgen.sim.simulate import SimulatorPool, simulate
from icgen.sizing.loop import SizeConfig, size

pytestmark = pytest.mark.ngspice


@pytest.fixture(scope="module")
def training_rows(shipped_data):
    return shipped_data[2]


def test_retrieval_and_search_meet_a_feasible_spec_and_it_resimulates(ptm65, training_rows):
    specs = Specs(gain_db=38, pm_deg=52)
    with SimulatorPool(workers=2) as pool:
        result = size(specs, ptm65, SizeConfig(budget=10), pool, table=training_rows)
    assert result.met and result.simulations <= 10
    again = simulate(result.best.result.design, ptm65)
    assert again.health.healthy and shortfall(again.metrics, specs) == 0


def test_an_unreachable_spec_returns_the_closest_design_within_budget(ptm65, training_rows):
    specs = Specs(gain_db=150, pm_deg=60)
    with SimulatorPool(workers=2) as pool:
        result = size(specs, ptm65, SizeConfig(budget=6, retrieve=2), pool, table=training_rows)
    assert not result.met and result.simulations <= 6
    assert result.best.shortfall > 0 and result.best.result.metrics.gain_db > 60


def test_size_json_reports_a_verified_design():
    result = CliRunner().invoke(main, ["size", "--gain", "38dB", "--pm", "52", "--model", "none", "--json",
                                       "--budget", "8"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["met"] is True and data["simulations"] <= 8
    assert data["metrics"]["gain_db"] >= 38 and data["metrics"]["pm_deg"] >= 52
    design = Design.from_dict(data["design"])
    assert "M1 pch net3 VINP net2 VDD" in data["answer"] and design.W1 > 0


@pytest.mark.parametrize("args, message", [
    (["--gain", "38 dBm"], "--gain: '38 dBm' is not a gain in dB; use 38dB or 38"),
    (["--pm", "200"], "--pm: 200 degrees is not a phase margin"),
    (["--ugb", "1MHz", "--bw", "10MHz"], "is not below --ugb"),
    ([], "give at least one spec"),
])
def test_bad_specs_are_one_line_errors(args, message):
    result = CliRunner().invoke(main, ["size", "--model", "none", *args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("icgen: error: ") and message in lines[0]


@pytest.mark.parametrize("objective, regions_allowed", [
    ("min-power", {"saturation", "subthreshold"}),  # the least power sits in weak inversion, still saturated
    ("max-margin", {"saturation"}),  # among designs meeting the specs, strong inversion first
])
def test_the_readme_command_resimulates_to_meet_both_specs_with_every_device_saturated(tmp_path, objective,
                                                                                       regions_allowed):
    sized = CliRunner().invoke(main, ["size", "--gain", "38dB", "--pm", "52", "--json", "--objective", objective])
    assert sized.exit_code == 0, sized.output
    path = tmp_path / "sized.json"
    path.write_text(sized.output)
    again = CliRunner().invoke(main, ["simulate", str(path), "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["metrics"]["gain_db"] >= 38 and data["metrics"]["pm_deg"] >= 52
    assert data["health"]["healthy"] and not data["health"]["flags"]
    devices = data["health"]["devices"]
    assert set(devices) == {"M1", "M2", "M3", "M4", "M5", "M6", "M7"}
    assert {d["region"] for d in devices.values()} <= regions_allowed, devices
    assert all(d["saturation_margin_v"] >= 0.05 for d in devices.values())  # v2's 50 mV, every device


def test_the_readme_python_example_runs_and_meets_its_specs():
    import re
    from pathlib import Path

    from .test_parse import EXAMPLE_ANSWER

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    scope = {"answer_text": EXAMPLE_ANSWER}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["result"].met and scope["again"].metrics.gain_db >= 38
    assert scope["report"].valid and len(scope["train"]) == 4893  # dataset v2: 7374 - 2481 no longer working
