"""`icgen size --mc N --yield Y`: Monte Carlo runs only on candidates that pass every corner, every sample counts
against the budget, and a candidate meets the specs only when the lower Wilson 95 % bound of its samples' pass share
reaches Y. The rules are pinned on a fake pool whose samples fail by their M1 offset; one real run checks the path."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.errors import ConfigError
from icgen.core.mismatch import draw_offsets, wilson_interval
from icgen.core.score import Specs
from icgen.core.status import Status
from icgen.sim.montecarlo import MonteCarloConfig, YieldTarget
from icgen.sim.simulate import SimResult
from icgen.sizing.config import SizeConfig
from icgen.sizing.corners import CornerPool, size_at_corners

from .test_size_corners import FRAGILE, STEADY, WEAK, CornerFakePool, Scripted, _health, corner_metrics

SATISFY = SizeConfig(objective="max-margin", steps=("model",), budget=1000)


class MismatchFakePool(CornerFakePool):
    """CornerFakePool that also takes one config per design (Monte Carlo) and fails a sample whose M1 offset is above
    `fail_above` volts (None: every sample passes)."""

    def __init__(self, fail_above: float | None = None) -> None:
        super().__init__()
        self.fail_above, self.samples = fail_above, 0

    def map(self, designs, config):
        designs = list(designs)
        configs = config if isinstance(config, list) else [config] * len(designs)
        for index, design in enumerate(designs):
            own = configs[index]
            mismatch = dict(own.mismatch)
            self.samples += bool(mismatch)
            self.runs.append((own.corner.name if own.corner else None, design))
            failed = bool(mismatch) and self.fail_above is not None and mismatch["M1"] > self.fail_above
            yield index, SimResult(design=design, status=Status.NOT_AMPLIFIER if failed else Status.OK, reason=None,
                                   metrics=corner_metrics(design, own.corner), health=_health(), tech=own.tech.name,
                                   testbench=own.testbench, backend="fake", seconds=0.0, corner=own.corner)


def target(samples: int = 80, min_yield: float = 0.95) -> YieldTarget:
    return YieldTarget(samples=MonteCarloConfig(samples=samples, seed=0), min_yield=min_yield)


def test_monte_carlo_runs_only_on_a_candidate_passing_every_corner(ptm65):
    pool = MismatchFakePool()
    corners = CornerPool(pool, ptm65.corner_set("all"), ptm65, Specs(gain_db=40), yield_target=target())
    results = dict(corners.map([WEAK, FRAGILE, STEADY], _config(ptm65)))
    assert len(results) == 3
    assert pool.samples == 80 and corners.simulations == 3 + 2 * 8 + 80  # screening, 8 more for two, MC for one
    weak, fragile, steady = (results[i] for i in range(3))
    assert corners.cost(weak) == 1 and corners.cost(fragile) == 9 and corners.cost(steady) == 9 + 80
    assert corners.max_cost == 9 + 80
    assert list(corners.monte_carlo) == [tuple(STEADY.to_dict().values())] and corners.yield_shortfall(STEADY) == 0.0
    mc_runs = [c for c, d in pool.runs if d == STEADY][9:]
    assert set(mc_runs) == {"tt_1.2V_27C"}  # the samples run at the technology's nominal corner


def test_a_candidate_whose_yield_bound_is_below_the_target_does_not_meet_the_specs(ptm65):
    offsets = draw_offsets(STEADY, ptm65, 80, 0)
    passing = sum(o["M1"] <= 0.0 for o in offsets)  # about half the samples fail
    found = size_at_corners(Specs(gain_db=40), ptm65, ptm65.corner_set("nominal"), SATISFY,
                            MismatchFakePool(fail_above=0.0), proposer=Scripted([STEADY]), yield_target=target())
    result = found.result
    assert not result.met and result.simulations == 1 + 80
    assert sum(found.monte_carlo.passed) == passing and 20 < passing < 60
    low = wilson_interval(passing, 80)[0]
    assert result.best.shortfall == pytest.approx((0.95 - low) / 0.05)


def test_a_candidate_whose_every_sample_passes_meets_a_yield_its_sample_count_can_show(ptm65):
    found = size_at_corners(Specs(gain_db=40), ptm65, ptm65.corner_set("nominal"), SATISFY, MismatchFakePool(),
                            proposer=Scripted([STEADY]), yield_target=target(80))
    assert found.result.met and sum(found.monte_carlo.passed) == 80
    assert found.monte_carlo.wilson[0] == pytest.approx(0.9542, abs=1e-4)


def test_a_few_failing_samples_sink_a_high_yield_target_but_not_a_lower_one(ptm65):
    offsets = draw_offsets(STEADY, ptm65, 200, 0)
    threshold = sorted(o["M1"] for o in offsets)[-3]  # the two largest M1 offsets fail: 198 of 200 pass
    for min_yield, met in ((0.97, False), (0.95, True)):  # lower bound of 198/200: 0.964
        found = size_at_corners(Specs(gain_db=40), ptm65, ptm65.corner_set("nominal"), SATISFY,
                                MismatchFakePool(fail_above=threshold), proposer=Scripted([STEADY]),
                                yield_target=target(200, min_yield))
        assert sum(found.monte_carlo.passed) == 198 and found.result.met is met


def _config(tech):
    from icgen.sim.simulate import SimConfig

    return SimConfig(tech=tech)


@pytest.mark.parametrize(("samples", "min_yield", "says"), [
    (10, 0.95, "use --mc 73 or more"), (80, 1.0, "is not a yield"), (80, 0.0, "is not a yield")])
def test_an_unreachable_or_meaningless_yield_is_a_config_error(samples, min_yield, says):
    with pytest.raises(ConfigError, match=says):
        target(samples, min_yield)


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("icgen: error: "), result.output
    return lines[0]


@pytest.mark.parametrize(("args", "says"), [
    (["--yield", "0.95"], "--yield needs --mc N"), (["--mc", "10"], "--mc 10: even with every sample passing"),
    (["--mc", "100", "--yield", "1.2"], "--yield 1.2 is not a yield"),
    (["--mc", "100", "--ugb", "5MHz"], "--mc: Monte Carlo checks the open-loop specs")])
def test_bad_yield_options_exit_2_with_one_line(args, says):
    line = one_line_error(CliRunner().invoke(main, ["size", "--gain", "40", "--model", "none", *args]))
    assert says in line


@pytest.mark.ngspice
def test_a_real_yield_sizing_reports_its_samples_and_meets_only_with_the_bound():
    result = CliRunner().invoke(main, ["size", "--gain", "40dB", "--pm", "50", "--model", "none", "--mc", "80",
                                       "--yield", "0.95", "--objective", "max-margin", "--json"])
    assert result.exit_code == 0, result.output
    sized = json.loads(result.stdout)
    mc = sized["monte_carlo"]
    assert sized["met"] and mc["run"] and mc["samples"] == 80 and mc["lower_95"] >= 0.95
    assert mc["passed"] == 80 and sized["simulations"] >= 1 + 80
