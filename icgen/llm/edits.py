"""Edit pairs for the retrieval-augmented format: "from A, with A's simulated metrics, reach these targets" -> a design.

How a pair is drawn (`draw_edits`), for each target design B of a split:
- the targets are B's simulated metrics (the prompt's `want` line); the bounds B meets are those relaxed as the eval
  relaxes them (`icgen.core.score.relaxed_specs`);
- the start A is drawn from the *training* rows only, never B itself: with probability `retrieval_share` it is the
  training design retrieval would return for B's bounds (`table_rank`, the loop's own first step; one of the
  `retrieved` best, uniformly), otherwise one of B's `neighbours` nearest training designs in metric space (6 dB,
  10 degrees or a decade per unit), uniformly;
- the completion is A itself when A's recorded metrics already meet B's bounds (keep a design that works), and B
  otherwise (the edit that reaches them).

So no validation or test design enters training as A, as B or as a sweep centre: training pairs draw both A and B
from the training split; validation pairs draw B from validation and A from training, as the loop does at run time.
`EditStats` says how pairs were drawn: how often A came from retrieval, how often it already met B's bounds, and how
far A was from B.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..core.design import DESIGN_KEYS, VARIABLE_BY_KEY
from ..core.score import SPEC_KEYS, SpecError, metric_units, relaxed_specs, table_rank
from ..data.dataset import design_of, metrics_of
from .pairs import export_pairs, make_pair, pair_format

RETRIEVAL_SHARE = 0.5
RETRIEVED = 4
NEIGHBOURS = 8


@dataclass(frozen=True)
class EditStats:
    """How a set of edit pairs was drawn."""

    pairs: int
    from_retrieval: int
    """Starts that retrieval would have returned for B's bounds."""
    start_meets: int
    """Starts whose recorded metrics already meet B's bounds (their completion is the start itself)."""
    median_design_distance: float
    """Median distance from A to B over the design variables: natural-log units for sizes, 0.1 V units for volts."""
    median_metric_distance: float
    """Median distance from A to B in metric units (6 dB, 10 degrees, a decade)."""

    def to_dict(self) -> dict:
        return asdict(self)


def _design_space(rows: pd.DataFrame) -> np.ndarray:
    return np.column_stack([np.log(rows[k].to_numpy(float)) if VARIABLE_BY_KEY[k].log_scale
                            else rows[k].to_numpy(float) / 0.1 for k in DESIGN_KEYS])


def _metric_space(rows: pd.DataFrame) -> np.ndarray:
    """Metric units with a missing GM (phase never at -180 degrees) or BW placed far away but finite."""
    space = metric_units(rows, SPEC_KEYS)
    return np.where(np.isnan(space), 10.0, space)


def draw_edits(targets: pd.DataFrame, train: pd.DataFrame, fmt: str = "edit", per_target: int = 1, seed: int = 0,
               retrieval_share: float = RETRIEVAL_SHARE, retrieved: int = RETRIEVED,
               neighbours: int = NEIGHBOURS) -> tuple[list[dict], EditStats]:
    """Edit pairs for the working rows of `targets`, starts drawn from the working rows of `train` (see the module
    docstring); each pair keeps `index` (B), `start_index` (A) and `start_meets`."""
    from sklearn.neighbors import NearestNeighbors

    train = train[train["working"]].reset_index(drop=True)
    targets = targets[targets["working"]].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    metric_train, metric_targets = _metric_space(train), _metric_space(targets)
    design_train, design_targets = _design_space(train), _design_space(targets)
    k = min(neighbours + 1, len(train))
    near = NearestNeighbors(n_neighbors=k).fit(metric_train).kneighbors(metric_targets, return_distance=False)
    train_index = train["index"].to_numpy()
    pairs, retrieval_count, meets_count, d_design, d_metric = [], 0, 0, [], []
    for i, row in targets.iterrows():
        try:
            bounds = relaxed_specs(metrics_of(row))
        except SpecError:  # a metric outside what a user could ask for: not a target
            continue
        own = train_index == row["index"]
        short = None
        for _ in range(per_target):
            if rng.random() < retrieval_share:
                if short is None:
                    short, worst, power = table_rank(train, bounds)
                    short = np.where(own, np.inf, short)
                    order = np.lexsort((power, worst, short))
                a = int(order[rng.integers(min(retrieved, len(order)))])
                retrieval_count += 1
            else:
                choices = [j for j in near[i] if not own[j]][:neighbours]
                a = int(choices[rng.integers(len(choices))])
            start = train.iloc[a]
            meets = bool(table_rank(train.iloc[[a]], bounds)[0][0] == 0.0)
            meets_count += meets
            completion_row = start if meets else row
            pair = make_pair(design_of(completion_row), metrics_of(row), fmt, (design_of(start), metrics_of(start)))
            pair.update({"index": int(row["index"]), "start_index": int(start["index"]), "start_meets": meets})
            pairs.append(pair)
            d_design.append(float(np.linalg.norm(design_train[a] - design_targets[i])))
            d_metric.append(float(np.linalg.norm(metric_train[a] - metric_targets[i])))
    stats = EditStats(len(pairs), retrieval_count, meets_count, float(np.median(d_design)) if d_design else 0.0,
                      float(np.median(d_metric)) if d_metric else 0.0)
    return pairs, stats


def dataset_pairs(data, fmt: str, split: str, kind: str = "heldout", seed: int = 0,
                  per_target: int = 1, fix_targets: int | None = None, fix_winners: int = 1,
                  fix_moves: str = "base") -> list[dict]:
    """A split's pairs in any format: the fix format simulates moves around retrieved starts (`icgen.llm.fixes`,
    cached in the dataset folder; `fix_targets` limits the targets drawn for, `fix_moves` names the move rules),
    edit formats draw starts from the training split (`draw_edits`), the others write one pair per working row
    (`icgen.llm.pairs.export_pairs`)."""
    if pair_format(fmt).simulated_pairs:
        from .fixes import fix_pairs, move_set

        return fix_pairs(data, split, kind, seed, move_set(fix_moves, targets=fix_targets), winners=fix_winners)[0]
    if pair_format(fmt).needs_start:
        return draw_edits(data.rows(split, kind), data.rows("train", kind), fmt, per_target, seed)[0]
    return export_pairs(data, fmt, split, kind)
