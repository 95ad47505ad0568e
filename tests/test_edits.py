"""The retrieval-augmented edit format: its round trip, and how its pairs are drawn (no held-out design enters
training as a start, a target or a completion)."""
from __future__ import annotations

import numpy as np
import pytest

from icgen.core.design import EXAMPLE_DESIGN, Metrics
from icgen.core.paths import DEFAULT_DATA_DIR
from icgen.core.score import relaxed_specs, table_rank
from icgen.data.dataset import Dataset, design_of, metrics_of
from icgen.llm.edits import dataset_pairs, draw_edits
from icgen.llm.pairs import FormatError, export_pairs, make_pair, pair_format, parse_completion

START = (EXAMPLE_DESIGN, Metrics(gain_db=58.2, bw3db_hz=1e4, ugb_hz=3e6, pm_deg=61.0, gm_db=None, power_w=2e-5))


@pytest.fixture(scope="module")
def data():
    return Dataset(DEFAULT_DATA_DIR)


def test_an_edit_pair_carries_targets_start_and_its_metrics_and_parses_back():
    target = Metrics(gain_db=64.09, bw3db_hz=3422.0, ugb_hz=4.518e6, pm_deg=62.67, gm_db=11.0, power_w=6.21e-6)
    better = EXAMPLE_DESIGN.__class__(**{**EXAMPLE_DESIGN.to_dict(), "W1": 20.3e-6, "VB1": 0.91})
    pair = make_pair(better, target, "edit", START)
    assert pair["prompt"] == ("want gain=64.1 bw=3.42k ugb=4.52Meg pm=62.7 gm=11.0 power=6.21u\n"
                              "from R0=3k C0=1p L1=622n W1=15u L2=117n W2=24u L3=410n W3=22u L4=491n W4=64u "
                              "L5=220n W5=24u VIN=605m VB1=932m\n"
                              "has gain=58.2 bw=10k ugb=3Meg pm=61.0 gm=none power=20u\n")
    parsed = parse_completion(pair["completion"], "edit")
    assert parsed.problems == [] and parsed.design == better
    with pytest.raises(FormatError, match="starting design"):
        pair_format("edit").prompt(target, None)
    with pytest.raises(FormatError, match="dataset_pairs"):
        export_pairs(Dataset(DEFAULT_DATA_DIR), "edit", "train")


def test_no_held_out_design_enters_training_and_validation_starts_come_from_training(data):
    train = data.rows("train")
    held = set(data.rows("validation")["index"]) | set(data.rows("test")["index"])
    train_ids = set(train["index"])
    pairs, stats = draw_edits(train.head(400), train, seed=3)
    assert stats.pairs == len(pairs) > 300
    for pair in pairs:
        assert pair["index"] in train_ids and pair["start_index"] in train_ids
        assert pair["start_index"] != pair["index"]  # never its own start
        assert not ({pair["index"], pair["start_index"]} & held)
    validation = dataset_pairs(data, "edit", "validation")
    assert validation and all(p["start_index"] in train_ids and p["index"] in held for p in validation)


def test_a_start_that_already_meets_is_its_own_completion_and_an_edit_reaches_the_target(data):
    train = data.rows("train")
    by_index = train.set_index("index")
    pairs, stats = draw_edits(train.head(300), train, seed=1)
    assert 0 < stats.start_meets < stats.pairs and 0 < stats.from_retrieval < stats.pairs
    for pair in pairs:
        completion = parse_completion(pair["completion"], "edit").design
        expected = pair["start_index"] if pair["start_meets"] else pair["index"]
        assert completion == design_of(by_index.loc[expected])
        target = relaxed_specs(metrics_of(by_index.loc[pair["index"]]))
        start_short = table_rank(train[train["index"] == pair["start_index"]], target)[0][0]
        assert (start_short == 0.0) == pair["start_meets"]


def test_retrieval_starts_are_what_the_loop_would_retrieve(data):
    from icgen.sizing.retrieval import rank_rows

    train = data.rows("train")
    pairs, _ = draw_edits(train.head(60), train, seed=0, retrieval_share=1.0, retrieved=1)
    by_index = train.set_index("index")
    for pair in pairs[:20]:
        target = relaxed_specs(metrics_of(by_index.loc[pair["index"]]))
        ranked = rank_rows(train[train["index"] != pair["index"]], target)
        short = table_rank(ranked.head(1), target)[0][0]
        mine = table_rank(train[train["index"] == pair["start_index"]], target)[0][0]
        assert mine == pytest.approx(short)  # as good as retrieval's first (ties may differ in order)


def test_draws_are_seeded():
    data = Dataset(DEFAULT_DATA_DIR)
    train = data.rows("train")
    a, _ = draw_edits(train.head(50), train, seed=5)
    b, _ = draw_edits(train.head(50), train, seed=5)
    c, _ = draw_edits(train.head(50), train, seed=6)
    assert a == b and a != c
    assert np.mean([p["start_meets"] for p in a]) <= 1
