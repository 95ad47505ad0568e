"""Dataset v2: the working designs simulated again with the sign-off benches and the stricter health rule; v1 and the
splits untouched; what stopped working counted."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.data.config import GenerateConfig
from icgen.data.dataset import Dataset
from icgen.data.generate import generate

pytestmark = pytest.mark.ngspice


def test_resimulate_writes_v2_beside_an_untouched_v1(tmp_path):
    v1 = Dataset(tmp_path / "v1")
    table = generate(GenerateConfig(n_working=12, chunk=64, seed=2), v1, workers=2)
    work = table[table["working"]]
    labels = (["train"] * 8 + ["validation"] * 2 + ["test"] * 2)
    splits = pd.DataFrame({"index": table["index"], "random": "", "heldout": "", "cluster": -1})
    splits.loc[work.index, "random"] = labels
    splits.loc[work.index, "heldout"] = labels
    v1.write_splits(splits)
    before = v1.table_path.read_bytes()
    result = CliRunner().invoke(main, ["data", "resimulate", "--data", str(v1.folder), "--out", str(tmp_path / "v2"),
                                       "--workers", "2"])
    assert result.exit_code == 0, result.output
    v2 = Dataset(tmp_path / "v2")
    assert v1.table_path.read_bytes() == before
    assert v2.splits_path.read_bytes() == v1.splits_path.read_bytes()
    assert list(v2.table["index"]) == list(v1.table["index"])
    redone = v2.table[v2.table["index"].isin(work["index"])]
    assert redone["cmrr_db"].notna().all() and redone["buffer_bw_hz"].notna().all()
    assert (redone["gain_db"].to_numpy() == work["gain_db"].to_numpy()).all()  # the same designs, the same sweep
    meta = json.loads(v2.meta_path.read_text())
    assert meta["counts"]["working_v1"] == 12
    assert meta["counts"]["working_v2"] + meta["counts"]["stopped_working"] == 12
    assert meta["health_rule"]["min_saturation_margin_v"] == 0.05
    stopped = sum(v["stopped_working"] for v in meta["stopped_by_split"]["heldout"].values())
    assert stopped == meta["counts"]["stopped_working"]
    assert int(v2.table["working"].sum()) == meta["counts"]["working_v2"]
    assert len(v2.rows("train")) == int(((splits["heldout"] == "train").to_numpy()
                                          & v2.table.set_index("index").loc[splits["index"], "working"].to_numpy()).sum())
    stats = CliRunner().invoke(main, ["data", "stats", "--data", str(v2.folder)])
    assert stats.exit_code == 0, stats.output
    assert (v2.stats_dir / "signoff.png").stat().st_size > 10_000
    assert "Sign-off figures of working designs" in (v2.stats_dir / "summary.md").read_text()
