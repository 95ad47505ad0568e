"""Refinement along a designer's directions: the moves do what their names say, the step solves the linear model,
and on held-out validation targets the loop with refinement meets more specs than without it."""
import math

import numpy as np
import pytest

from icgen.core.design import EXAMPLE_DESIGN, Metrics
from icgen.core.paths import DEFAULT_DATA_DIR as SHIPPED
from icgen.core.score import Specs
from icgen.data.dataset import Dataset
from icgen.eval.targets import EvalConfig, heldout_targets
from icgen.sim.simulate import SimulatorPool
from icgen.sizing.loop import SizeConfig, size
from icgen.sizing.refine import DIRECTIONS, broyden, jacobian, margin_vector, move, solve_step


def test_the_scale_move_scales_widths_and_c0_together_and_r0_inversely(ptm65):
    step = np.zeros(len(DIRECTIONS))
    step[[d.name for d in DIRECTIONS].index("scale")] = 1.0
    moved = move(EXAMPLE_DESIGN, step, ptm65)
    factor = math.exp(0.3)
    for key in ("W1", "W2", "W3", "W4", "W5", "C0"):
        assert getattr(moved, key) == pytest.approx(getattr(EXAMPLE_DESIGN, key) * factor, rel=5e-3)
    assert moved.R0 == pytest.approx(EXAMPLE_DESIGN.R0 / factor, rel=5e-3)
    for key in ("L1", "L2", "L3", "L4", "L5", "VIN", "VB1"):
        assert getattr(moved, key) == getattr(EXAMPLE_DESIGN, key)


def test_moves_stay_inside_the_technology_bounds(ptm65):
    step = np.full(len(DIRECTIONS), 50.0)
    moved = move(EXAMPLE_DESIGN, step, ptm65)
    assert not ptm65.out_of_bounds(moved)
    assert moved.W1 == ptm65.bounds["W1"][1] and moved.VB1 == ptm65.bounds["VB1"][1]


def test_margins_are_in_shortfall_units():
    specs = Specs(gain_db=40, ugb_hz=1e6, pm_deg=60, power_w=10e-6, gm_db=10)
    metrics = Metrics(gain_db=46, bw3db_hz=1e3, ugb_hz=1e7, pm_deg=50, gm_db=None, power_w=100e-6)
    m = margin_vector(metrics, specs)
    # order of Specs.given(): gain, ugb, pm, gm, power
    assert m == pytest.approx([1.0, 1.0, -1.0, 3.0, -1.0])


def test_the_step_closes_every_gap_of_a_linear_model_within_the_trust_region():
    rng = np.random.default_rng(0)
    jac = rng.normal(size=(4, 8))
    margins = np.array([-0.5, 0.2, -0.3, 0.1])
    usable = np.ones(8, dtype=bool)
    usable[3] = False
    step = solve_step(margins, jac, usable, trust=4.0, target=0.15)
    assert (margins + jac @ step >= 0.15 - 1e-3).all()
    assert np.abs(step).max() <= 4.0 + 1e-9 and step[3] == 0.0
    tight = solve_step(margins, jac, usable, trust=0.01, target=0.15)
    assert np.abs(tight).max() <= 0.01 + 1e-9


def test_jacobian_marks_failed_probes_unusable_and_broyden_matches_the_observed_change():
    base = np.array([0.0, 1.0])
    jac, usable = jacobian(base, [np.array([0.5, 1.5]), None, np.array([np.nan, 2.0])])
    assert usable.tolist() == [True, False, True]
    assert jac.tolist() == [[0.5, 0.0, 0.0], [0.5, 0.0, 1.0]]
    step = np.array([1.0, 0.0, 2.0])
    change = np.array([0.3, 0.1])
    updated = broyden(jac, step, change)
    assert updated @ step == pytest.approx(change)


@pytest.mark.ngspice
def test_refinement_meets_more_held_out_targets_than_the_loop_without_it(ptm65, shipped_data):
    table, splits, train = shipped_data
    targets = heldout_targets(Dataset(SHIPPED), EvalConfig(split="validation", n=40, seed=3))
    met = {True: 0, False: 0}
    with SimulatorPool(workers=2) as pool:
        for refine in (True, False):
            for i, target in enumerate(targets):
                config = SizeConfig(samples=0, seed=i).without(*(() if refine else ('refine',)))
                result = size(target.specs, ptm65, config, pool, table=train)
                assert result.simulations <= 20
                met[refine] += result.met
    assert met[True] >= met[False] + 3, met
