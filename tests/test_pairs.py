"""Training pairs: every exported completion of the shipped dataset parses back to exactly its design."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import EXAMPLE_DESIGN, Metrics
from icgen.data.dataset import Dataset
from icgen.llm.pairs import (
    FORMATS,
    SEPARATOR,
    completion_text,
    export_pairs,
    make_pair,
    pair_format,
    parse_completion,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "ptm65"


@pytest.fixture(scope="module")
def shipped():
    data = Dataset(DATA)
    return data.table, data.splits


def test_shipped_dataset_has_8800_working_designs_and_keeps_the_rest(shipped):
    table, splits = shipped
    assert table["working"].sum() >= 8800
    assert set(table["status"]) >= {"ok", "not_amplifier"}
    working = table[table["working"]]
    assert (working["status"] == "ok").all() and working["healthy"].all()
    assert (working["gain_db"] > 0).all() and (working["pm_deg"] > 0).all() and working["ugb_hz"].notna().all()
    meta = Dataset(DATA).meta
    assert meta["counts"]["working"] == int(table["working"].sum()) and meta["seed"] == 0


def test_splits_cover_working_rows_once_and_hold_out_clusters(shipped):
    table, splits = shipped
    working = set(table.loc[table["working"], "index"])
    for kind in ("random", "heldout"):
        assert set(splits.loc[splits[kind] != "", "index"]) == working
        counts = splits[kind].value_counts()
        assert counts["test"] >= 0.08 * len(working) and counts["validation"] > 0
    held = splits[splits["heldout"] != ""]
    test_clusters = set(held.loc[held["heldout"] == "test", "cluster"])
    train_clusters = set(held.loc[held["heldout"] == "train", "cluster"])
    assert test_clusters and not (test_clusters & train_clusters)  # whole clusters are held out


@pytest.mark.parametrize("fmt", [f for f in FORMATS if not pair_format(f).needs_start])  # edit: tests/test_edits.py
def test_every_exported_completion_parses_back_to_its_design(shipped, fmt):
    table, splits = shipped
    by_index = table.set_index("index")
    total = 0
    for split in ("train", "validation", "test"):
        for pair in export_pairs(Dataset(DATA), fmt, split):
            parsed = parse_completion(completion_text(pair), fmt)
            row = by_index.loc[pair["index"]]
            assert parsed.problems == [], (pair["index"], parsed.problems)
            assert parsed.design.to_dict() == {k: float(row[k]) for k in parsed.design.to_dict()}
            total += 1
    assert total == int(table["working"].sum())


def test_prompts_end_with_a_separator_and_carry_the_metrics():
    metrics = Metrics(gain_db=64.09, bw3db_hz=3422.0, ugb_hz=4.518e6, pm_deg=2.67, gm_db=None, power_w=6.21e-6)
    seed = make_pair(EXAMPLE_DESIGN, metrics, "seed")
    assert seed["prompt"].endswith(SEPARATOR)
    assert "Performance Metrics: Power=6.21e-06W, Gain=64.09dB, 3dB Bandwidth (BW_3dB)=3422Hz, Unity Gain " \
           "Bandwidth (UGB)=4.518e+06Hz, Phase Margin (PM)=2.67degree, Gain Margin (GM)=none" in seed["prompt"]
    assert seed["completion"].endswith("And with biasing voltages of VINP=VINN=VIN= 605.0mV, VB1=932.0mV.")
    compact = make_pair(EXAMPLE_DESIGN, metrics, "compact")
    assert compact == {"prompt": "gain=64.1 bw=3.42k ugb=4.52Meg pm=2.7 gm=none power=6.21u\n",
                       "completion": "R0=3k C0=1p L1=622n W1=15u L2=117n W2=24u L3=410n W3=22u L4=491n W4=64u "
                                     "L5=220n W5=24u VIN=605m VB1=932m"}


def test_export_command_writes_jsonl(tmp_path):
    out = tmp_path / "train.jsonl"
    result = CliRunner().invoke(main, ["data", "export", "--format", "compact", "--split", "validation",
                                       "--data", str(DATA), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) > 100 and set(rows[0]) == {"prompt", "completion", "index"}


def test_the_split_code_reproduces_the_shipped_splits_exactly(shipped):
    """The splits are data: whatever the split code becomes, run on the shipped table it gives the shipped file."""
    import pandas as pd

    from icgen.data.splits import make_splits

    table, splits = shipped
    sampled = table[table["index"] < 1_000_000_000]  # augmented rows join later, as train
    regenerated = make_splits(sampled, seed=0)
    pd.testing.assert_frame_equal(regenerated.reset_index(drop=True), splits.reset_index(drop=True),
                                  check_dtype=False)
