"""The simulator surrogate: it predicts held-out designs, its steps move predicted margins toward the target inside
the trust region, its cache is reused only for the same rows, and it makes the sizing loop meet more targets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from icgen.core.design import DESIGN_KEYS, VARIABLE_BY_KEY, Design  # noqa: E402
from icgen.core.score import Specs  # noqa: E402
from icgen.data.dataset import Dataset  # noqa: E402
from icgen.data.dataset import metrics_of as row_metrics  # noqa: E402
from icgen.eval.targets import EvalConfig, heldout_targets  # noqa: E402
from icgen.sim.simulate import SimulatorPool  # noqa: E402
from icgen.sizing import surrogate as sg  # noqa: E402
from icgen.sizing.loop import SizeConfig, size  # noqa: E402

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "ptm65" / "surrogate" / "heldout"
SMALL = sg.SurrogateConfig(hidden=64, layers=2, epochs=30)


def _rows(shipped_data, split: str, n: int | None = None):
    table, splits, train = shipped_data
    if split == "train":
        rows = train[train["working"]]
    else:
        rows = table[table["index"].isin(set(splits.loc[splits["heldout"] == split, "index"])) & table["working"]]
    return rows if n is None else rows.sample(n=n, random_state=0)


@pytest.fixture(scope="module")
def small(shipped_data):
    return sg.fit_surrogate(_rows(shipped_data, "train", 2000), SMALL)


def test_a_small_fit_predicts_held_out_designs_far_better_than_the_mean(shipped_data, small):
    train, check = _rows(shipped_data, "train", 2000), _rows(shipped_data, "validation", 300)
    errors = sg.surrogate_errors(small, check)
    actual = sg.metric_targets(check)
    mean = np.nanmean(sg.metric_targets(train), axis=0)
    for i, key in enumerate(sg.OUTPUTS):
        ok = ~np.isnan(actual[:, i])
        baseline = float(np.median(np.abs(actual[ok, i] - mean[i]))) * sg.SHORTFALL_SCALE.get(key, 1.0)
        assert errors[key] < 0.6 * baseline, (key, errors[key], baseline)


def test_a_step_raises_the_predicted_margins_and_stays_inside_the_radius(shipped_data, small, ptm65):
    row = _rows(shipped_data, "validation", 1).iloc[0]
    centre = Design(**{k: float(row[k]) for k in DESIGN_KEYS})
    metrics = row_metrics(row)
    specs = Specs(gain_db=metrics.gain_db + 3, ugb_hz=metrics.ugb_hz * 1.3, power_w=metrics.power_w * 1.2)
    before = sg.predicted_margins(small, [centre], specs)[0]
    radius = 0.4
    moved = sg.surrogate_step(small, centre, np.zeros(3), specs, ptm65, radius, target=0.15)
    after = sg.predicted_margins(small, [moved], specs)[0]
    assert np.minimum(after, 0.15).sum() > np.minimum(before, 0.15).sum() + 0.1
    for key in DESIGN_KEYS:
        a, b = getattr(centre, key), getattr(moved, key)
        shift = abs(np.log(b / a)) if VARIABLE_BY_KEY[key].log_scale else abs(b - a)
        reach = radius if VARIABLE_BY_KEY[key].log_scale else radius / 10
        assert shift <= reach + 0.01, key  # quantisation to 3 significant figures may add a little
        low, high = ptm65.bounds[key]
        assert low <= b <= high


def test_the_cache_is_reused_for_the_same_rows_and_refitted_for_others(shipped_data, small, tmp_path, monkeypatch):
    rows = _rows(shipped_data, "train", 300)
    fitted = sg.surrogate_for(rows, tmp_path, SMALL)
    x = sg.design_features(rows.head(20))
    monkeypatch.setattr(sg, "fit_surrogate", lambda *a, **k: pytest.fail("refitted although cached"))
    again = sg.surrogate_for(rows, tmp_path, SMALL)
    assert np.allclose(again.predict(x), fitted.predict(x), atol=1e-5)
    calls = []
    monkeypatch.setattr(sg, "fit_surrogate", lambda r, c: calls.append(len(r)) or small)
    sg.surrogate_for(rows.head(200), tmp_path, SMALL)
    assert calls == [200]
    assert json.loads((tmp_path / "meta.json").read_text())["rows"] == 200


def test_the_shipped_surrogate_matches_the_shipped_data_and_its_recorded_errors(shipped_data):
    surrogate, meta = sg.load_surrogate(SHIPPED)
    assert meta["fingerprint"] == sg.rows_fingerprint(_rows(shipped_data, "train"))
    assert meta["config"] == sg.SurrogateConfig().__dict__
    errors = sg.surrogate_errors(surrogate, _rows(shipped_data, "validation"))
    assert errors == pytest.approx(meta["median_abs_error_on_check_rows"], rel=1e-4)
    assert errors["gain_db"] < 1.5 and errors["ugb_hz"] < 0.06 and errors["power_w"] < 0.05


@pytest.mark.ngspice
def test_surrogate_steps_meet_more_held_out_targets_than_the_loop_without_them(ptm65, shipped_data):
    table, splits, train = shipped_data
    surrogate, _ = sg.load_surrogate(SHIPPED)
    targets = heldout_targets(Dataset(SHIPPED.parent.parent), EvalConfig(split="validation", n=60, seed=5))
    met = {True: 0, False: 0}
    with SimulatorPool(workers=2) as pool:
        for use in (True, False):
            for i, target in enumerate(targets):
                config = SizeConfig(samples=0, seed=i).without(*(() if use else ('surrogate',)))
                result = size(target.specs, ptm65, config, pool, table=train,
                              load_surrogate=lambda: surrogate)
                assert result.simulations <= 20
                met[use] += result.met
    assert met[True] >= met[False] + 2, met
