"""Augmentation: sweeps around given designs and into sparse regions, appended once, with provenance."""
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import EXAMPLE_DESIGN
from icgen.core.sampling import Radius, local_sweep
from icgen.data.augment import coverage
from icgen.data.dataset import load_dataset
from icgen.data.generate import GenerateConfig, generate


def test_local_sweep_stays_within_the_radius(ptm65):
    designs = local_sweep(EXAMPLE_DESIGN, ptm65, 64, seed=0, radius=Radius(relative=0.25, volts=0.05))
    assert len(set(designs)) > 60
    for d in designs:
        assert EXAMPLE_DESIGN.W1 / 1.26 <= d.W1 <= EXAMPLE_DESIGN.W1 * 1.26
        assert abs(d.VB1 - EXAMPLE_DESIGN.VB1) <= 0.0505
        assert not ptm65.out_of_bounds(d)


@pytest.mark.ngspice
def test_augment_around_a_user_design_appends_once_with_provenance(tmp_path):
    data = tmp_path / "data"
    generate(GenerateConfig(n_working=30, chunk=64), data, workers=2)
    runner = CliRunner()
    assert runner.invoke(main, ["data", "split", "--data", str(data)]).exit_code == 0
    before = load_dataset(data)
    centre = tmp_path / "mine.json"
    centre.write_text(json.dumps(EXAMPLE_DESIGN.to_dict()))
    args = ["data", "augment", "--data", str(data), "--around", str(centre), "--n", "16", "--source", "user"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    after = load_dataset(data)
    added = after[~after["index"].isin(before["index"])]
    assert added["source"].value_counts().to_dict() == {"sweep": 16, "user": 1}
    assert (added.loc[added["source"] == "user", "W1"] == EXAMPLE_DESIGN.W1).all()
    assert "covered" in first.output
    splits = pd.read_parquet(data / "splits.parquet")
    new_split = splits[splits["index"].isin(added["index"])]
    assert set(new_split.loc[new_split["index"].isin(added.loc[added["working"], "index"]), "heldout"]) <= {"train"}
    again = runner.invoke(main, args)  # the same run again: nothing simulated, nothing added
    assert again.exit_code == 0 and len(load_dataset(data)) == len(after)


@pytest.mark.ngspice
def test_fill_gaps_grows_coverage_of_sparse_cells(tmp_path):
    data = tmp_path / "data"
    generate(GenerateConfig(n_working=40, chunk=128), data, workers=2)
    before = coverage(load_dataset(data))
    result = CliRunner().invoke(main, ["data", "augment", "--data", str(data), "--fill-gaps", "--max-centers", "10",
                                       "--n", "8"])
    assert result.exit_code == 0, result.output
    after = coverage(load_dataset(data))
    assert after["working"] > before["working"] and after["covered_cells"] >= before["covered_cells"]


def test_augment_needs_exactly_one_mode(tmp_path):
    result = CliRunner().invoke(main, ["data", "augment", "--data", "data/ptm65"])
    assert result.exit_code == 2 and "exactly one of --around FILE or --fill-gaps" in result.output
