"""Retrieval at corners (icgen.sizing.corner_table): the training designs' worst-corner rows, cached in the dataset
folder. On the fake pool whose metrics depend on the corner (tests/test_size_corners.py) a design strong at nominal
but weak at 125 °C ranks below a steady one, the cache is read back without simulating and rebuilt for another
corner set, and the corner loop given the table starts from the design that holds at every corner."""
from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest

from icgen.core.design import DESIGN_KEYS, METRIC_KEYS
from icgen.core.score import Specs
from icgen.core.status import Status
from icgen.data.dataset import Dataset
from icgen.data.retrieval import rank_rows
from icgen.sizing.config import SizeConfig
from icgen.sizing.corner_table import corner_table
from icgen.sizing.corners import size_at_corners
from tests.test_size_corners import FRAGILE, STEADY, WEAK, CornerFakePool, corner_metrics

GAIN_40 = Specs(gain_db=40)


def _dataset(tmp_path) -> Dataset:
    rows = []
    for i, design in enumerate([FRAGILE, STEADY, WEAK, STEADY.replace(W5=9e-6)]):
        row = {"index": i, **design.to_dict(), **corner_metrics(design, None).to_dict(), "status": "ok",
               "healthy": i != 3, "working": i != 3, "source": "sobol"}
        rows.append(row)
    data = Dataset(tmp_path / "data")
    data.write_table(pd.DataFrame(rows))
    data.write_splits(pd.DataFrame({"index": range(4), "random": "train", "heldout": "train", "cluster": 0}))
    return data


def test_the_worst_corner_table_ranks_the_steady_design_first_where_nominal_ranks_the_fragile_one(tmp_path, ptm65):
    data = _dataset(tmp_path)
    pool = CornerFakePool()
    table = corner_table(data, "heldout", ptm65, ptm65.corner_set("all"), pool)
    assert len(pool.runs) == 3 * 9  # every working design at every corner; the non-working one not at all
    assert sorted(table["index"]) == [0, 1, 2]
    gain = dict(zip(table["index"], table["gain_db"]))
    assert gain[0] == pytest.approx(16.0, abs=0.1)  # FRAGILE at 125 °C
    assert gain[1] == pytest.approx(40 + 20 * math.log10(20 / 15) - 1.0)  # STEADY at 125 °C
    assert dict(zip(table["index"], table["pm_deg"]))[1] == pytest.approx(55.0)  # its worst PM: 1.08 V
    assert dict(zip(table["index"], table["power_w"]))[1] == pytest.approx(10e-6 * 1.32 / 1.2)  # worst power: 1.32 V
    assert set(DESIGN_KEYS) | set(METRIC_KEYS) | {"working", "healthy"} <= set(table.columns)
    assert rank_rows(data.training_rows(), GAIN_40).iloc[0]["index"] == 0  # nominal: FRAGILE (46 dB)
    assert rank_rows(table, GAIN_40).iloc[0]["index"] == 1  # at every corner: STEADY


def test_the_table_is_cached_and_rebuilt_for_another_corner_set(tmp_path, ptm65):
    data = _dataset(tmp_path)
    corner_table(data, "heldout", ptm65, ptm65.corner_set("all"), CornerFakePool())
    again = CornerFakePool()
    cached = corner_table(data, "heldout", ptm65, ptm65.corner_set("all"), again)
    assert again.runs == [] and len(cached) == 3
    other = CornerFakePool()
    corner_table(data, "heldout", ptm65, ptm65.corner_set("nominal,tt_1.08V_125C"), other)
    assert len(other.runs) == 3 * 2
    assert len(list((tmp_path / "data" / "corners").glob("heldout-*.parquet"))) == 2


def test_the_corner_loop_given_the_table_retrieves_the_design_that_holds_at_every_corner(tmp_path, ptm65):
    data = _dataset(tmp_path)
    table = corner_table(data, "heldout", ptm65, ptm65.corner_set("all"), CornerFakePool())
    config = SizeConfig(objective="max-margin", steps=("retrieval",), retrieve=1, samples=0, budget=18)
    with_table = size_at_corners(GAIN_40, ptm65, ptm65.corner_set("all"), config, CornerFakePool(),
                                 table=data.training_rows(), retrieval_table=table).result
    assert with_table.met and with_table.simulations == 9 and with_table.best.result.design == STEADY
    without = size_at_corners(GAIN_40, ptm65, ptm65.corner_set("all"), config, CornerFakePool(),
                              table=data.training_rows()).result
    assert not without.met and without.best.result.design == FRAGILE  # nominal retrieval's first pick fails 125 °C


def test_the_technologys_own_nominal_corner_reads_the_dataset_rows_without_simulating(tmp_path, ptm65):
    data = _dataset(tmp_path)
    data.write_meta({"technology": ptm65.provenance()})
    pool = CornerFakePool()
    table = corner_table(data, "heldout", ptm65, ptm65.corner_set("nominal"), pool)
    assert pool.runs == []
    assert sorted(table["index"]) == [0, 1, 2]  # the working training rows, as the dataset measured them
    assert not data.corner_table_path("heldout", "x").parent.exists()
    moved = corner_table(data, "heldout", ptm65, ptm65.corner_set("tt_1.2V_125C"), pool)
    assert len(pool.runs) == 3 and len(moved) == 3  # another single corner is simulated
    low = ptm65.at_conditions(vdd_v=1.1)
    at_low = corner_table(data, "heldout", low, low.corner_set("nominal"), pool)
    assert len(pool.runs) == 6 and len(at_low) == 3  # a user's supply: the dataset was not simulated there


class HotFailPool(CornerFakePool):
    """As CornerFakePool, but a design with R0 above 5 kOhm is no amplifier at 125 °C."""

    def map(self, designs, config):
        for index, result in super().map(designs, config):
            if result.corner is not None and result.corner.temp_c >= 125 and result.design.R0 > 5e3:
                result = dataclasses.replace(result, status=Status.NOT_AMPLIFIER, reason="no gain")
            yield index, result


def test_after_the_first_batch_a_design_failing_the_most_failed_corner_is_not_simulated_at_the_rest(
        tmp_path, ptm65, monkeypatch):
    import icgen.sizing.corner_table as module

    designs = [FRAGILE, STEADY, FRAGILE.replace(W1=31e-6), STEADY.replace(W1=21e-6), FRAGILE.replace(W1=32e-6)]
    rows = [{"index": i, **d.to_dict(), **corner_metrics(d, None).to_dict(), "status": "ok", "healthy": True,
             "working": True, "source": "sobol"} for i, d in enumerate(designs)]
    tables = {}
    for screen in (1, 9):
        data = Dataset(tmp_path / f"data{screen}")
        data.write_table(pd.DataFrame(rows))
        data.write_splits(pd.DataFrame({"index": range(5), "random": "train", "heldout": "train", "cluster": 0}))
        monkeypatch.setattr(module, "BATCH", 2)
        monkeypatch.setattr(module, "SCREEN", screen)
        pool = HotFailPool()
        tables[screen] = (corner_table(data, "heldout", ptm65, ptm65.corner_set("all"), pool), pool)
    screened, pool = tables[1]
    runs = {i: sum(1 for _, d in pool.runs if d == design) for i, design in enumerate(designs)}
    assert runs[0] == runs[1] == 9  # the first batch runs everywhere
    assert runs[2] == runs[4] == 1  # then a hot corner (where FRAGILE failed) first, and nothing more
    assert runs[3] == 9
    full = tables[9][0]
    assert list(screened[screened["working"]]["index"]) == list(full[full["working"]]["index"]) == [1, 3]
    pd.testing.assert_frame_equal(screened[screened["working"]].reset_index(drop=True),
                                  full[full["working"]].reset_index(drop=True))
    meta = json.loads(data.corner_table_path("heldout", "x").parent.joinpath(
        next(p.name for p in data.corner_table_path("heldout", "x").parent.glob("*.json"))).read_text())
    assert meta["simulations"] == 9 * 5  # SCREEN = 9: every design at every corner


def test_a_screened_survivor_comes_back_with_its_corners_in_the_sets_order(ptm65):
    from icgen.sim.corners import ScreenedCorners

    corners = ptm65.corner_set("all")
    screened = ScreenedCorners(ptm65, corners, HotFailPool(), screen=1)
    screened.run([FRAGILE, STEADY])  # orders the corners: a hot one first
    assert screened.order[0].temp_c == 125
    fragile, steady = screened.run([FRAGILE.replace(W1=31e-6), STEADY.replace(W1=21e-6)])
    assert len(fragile) == 1 and fragile[0][0].temp_c == 125
    assert [c.name for c, _ in steady] == [c.name for c in corners]  # as unscreened: worst_result reads the first
    assert screened.simulations == 2 * 9 + 1 + 9
