"""The sizing loop's rules, pinned with a fake simulator pool (no ngspice): the budget, never simulating a design
twice, the tie-break among equal shortfalls, the order of steps, cancellation, progress, and what the model step
is shown."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from icgen.core.design import DESIGN_KEYS, EXAMPLE_DESIGN, Design, Metrics
from icgen.core.measure import DeviceOp, Health
from icgen.core.score import Specs
from icgen.core.status import Status
from icgen.core.tech import load_technology
from icgen.sim.simulate import SimResult
from icgen.sizing.loop import STEPS, Proposal, SizingLoop, size
from icgen.sizing.loop import SizeConfig as _SizeConfig


def _health(weak: bool = False) -> Health:
    devices = tuple(DeviceOp(name=f"M{i}", region="subthreshold" if weak and i == 1 else "saturation", vgs_v=0.5,
                             vds_v=0.4, vth_v=0.4, vdsat_v=0.1, saturation_margin_v=0.3, id_a=1e-6, gm_s=1e-5,
                             gds_s=1e-7) for i in range(1, 8))
    return Health(vout_v=0.6, vdd_v=1.2, devices=devices, flags=())


def fake_metrics(design: Design) -> Metrics:
    """A made-up amplifier: gain rises with W1 (40 dB at 15 um), power with W4, PM with C0."""
    return Metrics(gain_db=40 + 20 * math.log10(design.W1 / 15e-6), bw3db_hz=1e3, ugb_hz=1e6,
                   pm_deg=60 + 10 * math.log10(design.C0 / 1e-12), gm_db=10.0,
                   power_w=10e-6 * design.W4 / 64e-6)


def SizeConfig(**kwargs) -> _SizeConfig:  # noqa: N802 - these are the satisfy rules: objective max-margin
    """The loop's config with the max-margin objective: stop at the first design meeting the specs (the rules this
    file pins; tests/test_objective.py pins the optimising objectives)."""
    return _SizeConfig(**{"objective": "max-margin", **kwargs})


class FakePool:
    """Answers like SimulatorPool.map, from fake_metrics; records every batch it was given."""

    def __init__(self, weak: set[tuple] | None = None) -> None:
        self.batches: list[list[Design]] = []
        self.weak = weak or set()

    def map(self, designs, config):
        designs = list(designs)
        self.batches.append(designs)
        for index, design in reversed(list(enumerate(designs))):  # completion order differs from input order
            yield index, SimResult(design=design, status=Status.OK, reason=None, metrics=fake_metrics(design),
                                   health=_health(tuple(design.to_dict().values()) in self.weak),
                                   tech=config.tech.name, testbench=config.testbench, backend="fake", seconds=0.0)

    @property
    def simulated(self) -> list[Design]:
        return [d for batch in self.batches for d in batch]


class ScriptedProposer:
    """A model step that answers a fixed list of designs and remembers what it was shown."""

    def __init__(self, designs: list[Design]) -> None:
        self.designs = designs
        self.seen_best = []

    def propose(self, specs, best, reference, samples, config):
        self.seen_best.append(best)
        return Proposal(texts=["fake"] * len(self.designs), designs=self.designs, invalid=0)


@pytest.fixture(scope="module")
def tech():
    return load_technology("ptm65")


def _table(designs: list[Design]) -> pd.DataFrame:
    rows = []
    for i, d in enumerate(designs):
        rows.append({"index": i, **d.to_dict(), **fake_metrics(d).to_dict(), "working": True})
    return pd.DataFrame(rows)


def test_the_budget_is_never_exceeded_and_the_pool_is_never_asked_for_more_than_is_left(tech):
    pool = FakePool()
    specs = Specs(gain_db=90)  # unreachable: every step runs until the budget is spent
    result = size(specs, tech, SizeConfig(budget=7, retrieve=2), pool, table=_table([EXAMPLE_DESIGN]))
    assert result.simulations == 7 == len(pool.simulated) and not result.met
    spent = 0
    for batch in pool.batches:
        assert len(batch) <= 7 - spent
        spent += len(batch)


def test_a_design_proposed_twice_is_simulated_once(tech):
    pool = FakePool()
    twin = EXAMPLE_DESIGN.replace(W1=20e-6)
    proposer = ScriptedProposer([EXAMPLE_DESIGN, twin, twin])  # the first is retrieval's design again
    config = SizeConfig(budget=10, steps=("retrieval", "model"))
    result = size(Specs(gain_db=90), tech, config, pool, table=_table([EXAMPLE_DESIGN]), proposer=proposer)
    keys = [tuple(d.to_dict().values()) for d in pool.simulated]
    assert len(keys) == len(set(keys)) == 2 and result.simulations == 2
    assert [c.source for c in result.candidates] == ["retrieval", "model"]


def test_designs_outside_the_bounds_are_not_simulated(tech):
    pool = FakePool()
    outside = EXAMPLE_DESIGN.replace(W1=tech.bounds["W1"][1] * 2)
    size(Specs(gain_db=90), tech, SizeConfig(budget=5, steps=("model",)), pool,
         proposer=ScriptedProposer([outside, EXAMPLE_DESIGN]))
    assert pool.simulated == [EXAMPLE_DESIGN]


def test_equal_shortfalls_prefer_strong_inversion_then_the_larger_worst_margin_then_lower_power(tech):
    specs = Specs(gain_db=30)  # every fake design below meets it: shortfall 0 for all
    low_margin_cheapest = EXAMPLE_DESIGN.replace(W1=4.8e-6, W4=8e-6)  # gain 30.1 dB, 1.25 uW
    weak_high_margin = EXAMPLE_DESIGN.replace(W1=100e-6)  # gain 56.5 dB, but a device in weak inversion
    high_margin = EXAMPLE_DESIGN.replace(W1=90e-6)  # gain 55.6 dB, 10 uW
    cheaper_twin = high_margin.replace(W4=32e-6)  # the same gain, 5 uW
    weak = {tuple(weak_high_margin.to_dict().values())}
    for order in ([low_margin_cheapest, weak_high_margin, high_margin, cheaper_twin],
                  [cheaper_twin, high_margin, weak_high_margin, low_margin_cheapest]):
        result = size(specs, tech, SizeConfig(budget=10, steps=("model",)), FakePool(weak),
                      proposer=ScriptedProposer(order))
        assert result.met and result.best.result.design == cheaper_twin
    result = size(specs, tech, SizeConfig(budget=10, steps=("model",)), FakePool(weak),
                  proposer=ScriptedProposer([weak_high_margin, low_margin_cheapest]))
    assert result.best.result.design == low_margin_cheapest  # strong inversion beats a larger margin
    result = size(specs, tech, SizeConfig(budget=10, steps=("model",)), FakePool(),
                  proposer=ScriptedProposer([low_margin_cheapest, high_margin]))
    assert result.best.result.design == high_margin  # a larger worst margin beats lower power


def test_the_loop_stops_at_the_first_met_spec_and_runs_its_steps_in_the_configured_order(tech):
    calls = []
    original = dict(STEPS)
    try:
        for name in STEPS:
            STEPS[name] = (lambda n: lambda loop: calls.append(n) or original[n](loop))(name)
        pool = FakePool()
        config = SizeConfig(budget=20, steps=("model", "retrieval", "local"))
        proposer = ScriptedProposer([EXAMPLE_DESIGN.replace(W1=30e-6)])  # gain 46 dB: not yet 50
        result = size(Specs(gain_db=50), tech, config, pool, table=_table([EXAMPLE_DESIGN.replace(W1=60e-6)]),
                      proposer=proposer)
    finally:
        STEPS.update(original)
    assert calls == ["model", "retrieval"]  # retrieval met the spec (52 dB): local search never ran
    assert result.met and result.best.source == "retrieval" and result.simulations == 2


def test_cancel_stops_the_loop_and_progress_reports_each_batch(tech):
    pool = FakePool()
    seen = []
    result = size(Specs(gain_db=90), tech, SizeConfig(budget=20), pool, table=_table([EXAMPLE_DESIGN]),
                  progress=seen.append, cancel=lambda: len(pool.simulated) >= 3)
    assert result.cancelled and 3 <= result.simulations < 20
    assert [p.simulations for p in seen] == sorted(p.simulations for p in seen)
    assert seen[-1].simulations == result.simulations and seen[0].step == "retrieval" and seen[0].budget == 20


def test_the_model_step_is_shown_the_best_candidate_so_far(tech):
    pool = FakePool()
    proposer = ScriptedProposer([EXAMPLE_DESIGN.replace(W1=20e-6)])
    loop = SizingLoop(Specs(gain_db=90), tech, SizeConfig(budget=5, steps=("retrieval", "model")), pool,
                      table=_table([EXAMPLE_DESIGN]), proposer=proposer)
    result = loop.run()
    assert proposer.seen_best[0].result.design == EXAMPLE_DESIGN and proposer.seen_best[0].source == "retrieval"
    assert result.simulations == 2


class RoundsProposer:
    """A model step that answers round by round from a script (one list of designs a round)."""

    def __init__(self, rounds: list[list[Design]]) -> None:
        self.rounds, self.asked = rounds, 0

    def propose(self, specs, best, reference, samples, config):
        designs = self.rounds[min(self.asked, len(self.rounds) - 1)]
        self.asked += 1
        return Proposal(texts=["fake"] * len(designs), designs=designs, invalid=0)


def test_the_model_step_stops_after_patience_rounds_in_a_row_with_nothing_new(tech):
    # round 1 new, round 2 a repeat, round 3 new, then repeats only
    new1, new2 = EXAMPLE_DESIGN.replace(W1=20e-6), EXAMPLE_DESIGN.replace(W1=25e-6)
    script = [[new1], [new1], [new2], [new2]]
    for patience, asked, simulated in ((1, 2, 1), (2, 5, 2), (3, 6, 2)):
        proposer = RoundsProposer(script)
        config = SizeConfig(budget=20, steps=("model",), model_rounds=10, model_patience=patience)
        result = size(Specs(gain_db=90), tech, config, FakePool(), proposer=proposer)
        assert (proposer.asked, result.simulations) == (asked, simulated), patience
    with pytest.raises(ValueError, match="--model-patience 0 must be"):
        SizeConfig(model_patience=0)


def test_unknown_or_repeated_steps_are_refused():
    with pytest.raises(ValueError, match="steps"):
        SizeConfig(steps=("retrieval", "magic"))
    with pytest.raises(ValueError, match="twice"):
        SizeConfig(steps=("local", "local"))
    assert SizeConfig().without("model").steps == tuple(s for s in SizeConfig().steps if s != "model")


def test_every_design_key_round_trips_through_the_fake_table():
    table = _table([EXAMPLE_DESIGN])
    assert list(table.columns[1:15]) == list(DESIGN_KEYS)
