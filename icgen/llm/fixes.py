"""Fix pairs for the `fix` format, drawn by simulation: "from start A, which misses these bounds, make these moves".

How a pair is drawn (`fix_pairs`, `FixDrawer`), for each target design B of a split (a seeded shuffle, the first `targets`):
- the bounds are B's metrics relaxed as the eval relaxes them (`relaxed_specs`); with probability `drop_share`
  one to three of them are dropped, so the model also sees the partial specs users type (`--gain 38dB --pm 52`);
- the start A is what retrieval returns for those bounds from the *training* rows without B (`rank_rows`, the
  loop's first step): the first row with probability `first_share`, else one of the next `retrieved - 1`;
- A meets the bounds: the completion is `keep` (a share `keep_share` of these pairs is kept);
- A misses: every single move of the move set (each size scaled by each of `factors`, each bias shifted by each of
  `volts`, inside the technology's bounds) is simulated, as the eval simulates (the UGB bench included); the moves
  that meet the bounds win, the fewest moves first, then the largest worst margin. When no single move meets, the
  pairs of the `doubles_from` best single moves (on different variables) are simulated too. When nothing meets,
  the move that cuts the shortfall most is the completion if it cuts it to `improve_ratio` or less (a step the
  model-loop can build on); otherwise the target gives no pair;
- with `depth` > 1, such an improving move starts a path: the moved design, with its simulated metrics, is the next
  pair's start (as the model-loop shows the model its best candidate so far), and so on until a move meets the
  bounds, none improves, or `depth` pairs are drawn. This distils the greedy oracle of `bench/fix_ceiling.py` (one
  answer a round) into pairs, the intermediate starts included.

Move sets are named in `MOVE_SETS` (`icgen data fixes --moves NAME`, the training config's `fix_moves`).

No validation or test design enters training: training pairs take B and A from the training split, validation pairs
B from validation and A from training. Pairs are cached in the dataset folder (`DATA/pairs/`, one JSON line per
target, resumable: an interrupted draw continues where it stopped) with their provenance and `FixStats`.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.design import DESIGN_KEYS, VARIABLE_BY_KEY, Design
from ..core.io import append_drawn, read_jsonl_records, write_json_atomic
from ..core.parse import format_fix
from ..core.score import SPEC_KEYS, SpecError, Specs, rank_key, relaxed_specs, result_shortfall, shortfall
from ..core.tech import Technology
from ..data.dataset import Dataset, dataset_technology, design_of, metrics_of
from .pairs import fix_prompt

PAIRS_DIR = "pairs"
"""DATA/pairs: cached simulated pairs (one JSON line per target) and their provenance."""


@dataclass(frozen=True)
class FixConfig:
    """How fix pairs are drawn (see the module docstring); the only source of these defaults."""

    factors: tuple[float, ...] = (0.5, 0.7, 1.4, 2.0)
    """Scales a single move applies to a size (R0, C0, L1..W5)."""
    volts: tuple[float, ...] = (-0.05, -0.02, 0.02, 0.05)
    """Shifts a single move applies to a bias (VIN, VB1), in volts."""
    coupled: bool = False
    """Also scale each device's W and L together by each factor (one move: the same W/L, more or less area)."""
    depth: int = 1
    """Most pairs a miss gives along its path (1: the first move only; see the module docstring)."""
    doubles_from: int = 8
    """When no single move meets the bounds: the pairs of this many best single moves are simulated."""
    improve_ratio: float = 0.7
    """Without a move that meets: the best one is a pair if it cuts the shortfall to this share or less."""
    first_share: float = 0.6
    """Share of starts that are retrieval's first row (the rest: one of the next `retrieved - 1`)."""
    retrieved: int = 6
    """How deep into retrieval's ranking starts are drawn."""
    keep_share: float = 0.3
    """Share of the starts that already meet their bounds kept as `keep` pairs."""
    drop_share: float = 0.3
    """Share of targets with one to three of their bounds dropped."""
    targets: int | None = None
    """Draw for the first N targets of a seeded shuffle of the split (None: all)."""
    chunk: int = 32
    """Targets simulated together (one pool map per phase)."""

    def __post_init__(self) -> None:
        from ..core.errors import ConfigError

        checks = [(all(f > 0 and f != 1 for f in self.factors), "fix factors must be positive and not 1"),
                  (all(v != 0 for v in self.volts), "fix volts must not be 0"),
                  (self.doubles_from >= 0 and self.retrieved >= 1 and self.chunk >= 1 and self.depth >= 1,
                   "doubles_from >= 0, retrieved >= 1, chunk >= 1 and depth >= 1"),
                  (0 < self.improve_ratio <= 1, "improve_ratio must be in (0, 1]"),
                  (all(0 <= x <= 1 for x in (self.first_share, self.keep_share, self.drop_share)),
                   "first_share, keep_share and drop_share must be in [0, 1]"),
                  (self.targets is None or self.targets >= 1, "targets must be >= 1 or null")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


MOVE_SETS: dict[str, FixConfig] = {
    "base": FixConfig(),
    "fine": FixConfig(factors=(0.5, 0.7, 0.85, 1.2, 1.4, 2.0), volts=(-0.05, -0.02, -0.01, 0.01, 0.02, 0.05),
                      coupled=True, doubles_from=0, improve_ratio=0.9, depth=4),
}
"""Named move rules: `base`, the first fix model's single moves (and pairs of them); `fine`, finer factors and
volts, coupled W/L moves and paths of up to 4 pairs: the move set whose greedy oracle reached 92.5 % of the held-out
targets at budget 20 (bench/results/fix-ceiling-b20-a1-f6v6c.json)."""


def move_set(name: str, **overrides) -> FixConfig:
    """The named move rules, with `overrides` (e.g. targets=N) applied."""
    from dataclasses import replace

    from ..core.errors import ConfigError

    if name not in MOVE_SETS:
        raise ConfigError(f"unknown fix move set {name!r}; choose from {', '.join(MOVE_SETS)}")
    return replace(MOVE_SETS[name], **overrides)


@dataclass
class FixStats:
    """How a set of fix pairs was drawn."""

    targets: int = 0
    start_meets: int = 0
    """Starts whose recorded metrics already meet their bounds (`keep`, a `keep_share` of them kept)."""
    keep_pairs: int = 0
    single: int = 0
    """Misses fixed by one move."""
    double: int = 0
    """Misses fixed by two moves."""
    improves: int = 0
    """Misses no move fixed, with a move that cuts the shortfall (the completion)."""
    unfixed: int = 0
    """Misses with neither: no pair."""
    path_pairs: int = 0
    """Pairs after a path's first (depth > 1): starts that are earlier moves' designs."""
    path_met: int = 0
    """Misses whose path ended in a move that meets the bounds."""
    dropped_bounds: int = 0
    """Targets with some bounds dropped."""
    simulations: int = 0
    seconds: float = 0.0
    moves_meeting: list[int] = field(default_factory=list)
    """Per fixed miss, how many of its simulated moves met the bounds (how hard the fix was to find)."""

    def to_dict(self) -> dict:
        out = asdict(self)
        moves = out.pop("moves_meeting")
        out["median_moves_meeting"] = float(np.median(moves)) if moves else None
        return out

    def add(self, record: dict) -> None:
        kind = record["kind"]
        self.targets += 1
        self.start_meets += kind in ("keep", "keep-dropped")
        self.keep_pairs += kind == "keep"
        self.single += kind == "single"
        self.double += kind == "double"
        self.improves += kind == "improves"
        self.unfixed += kind == "unfixed"
        self.dropped_bounds += bool(record["dropped"])
        self.simulations += record["simulations"]
        self.path_pairs += len(record.get("path", []))
        self.path_met += record.get("path_end") == "met"
        if record.get("meeting"):
            self.moves_meeting.append(record["meeting"])


def single_moves(design: Design, tech: Technology, config: FixConfig) -> list[Design]:
    """Every single move of the move set that stays inside the technology's bounds (with `config.coupled`, then each
    device's W and L scaled together, M1/M2 first)."""
    values = design.to_dict()
    out = []
    for key in DESIGN_KEYS:
        low, high = tech.bounds[key]
        steps = config.factors if VARIABLE_BY_KEY[key].log_scale else config.volts
        for step in steps:
            value = values[key] * step if VARIABLE_BY_KEY[key].log_scale else values[key] + step
            if low <= value <= high:
                out.append(design.replace(**{key: value}))
    if config.coupled:
        for n in range(1, 6):
            for factor in config.factors:
                scaled = {key: values[key] * factor for key in (f"W{n}", f"L{n}")}
                if all(tech.bounds[k][0] <= v <= tech.bounds[k][1] for k, v in scaled.items()):
                    out.append(design.replace(**scaled))
    return out


def _changed(start: Design, design: Design) -> tuple[str, ...]:
    """The variables a move changes (one, or a device's W and L for a coupled move)."""
    a, b = start.to_dict(), design.to_dict()
    return tuple(k for k in DESIGN_KEYS if a[k] != b[k])


def combine(start: Design, first: Design, second: Design) -> Design | None:
    """Both moves applied to `start`; None when they change a variable in common."""
    keys = _changed(start, second)
    if set(keys) & set(_changed(start, first)):
        return None
    return first.replace(**{k: getattr(second, k) for k in keys})


def _bounds(row: pd.Series, rng: np.random.Generator, drop_share: float) -> tuple[Specs, list[str]]:
    specs = relaxed_specs(metrics_of(row))
    given = list(specs.given())
    dropped: list[str] = []
    if rng.random() < drop_share and len(given) > 1:
        k = int(rng.integers(1, min(3, len(given) - 1) + 1))
        dropped = [given[i] for i in sorted(rng.choice(len(given), size=k, replace=False))]
        specs = Specs(**{key: value for key, value in specs.given().items() if key not in dropped})
    return specs, dropped


class FixDrawer:
    """Draws fix pairs target by target on a simulator pool (see the module docstring)."""

    def __init__(self, train: pd.DataFrame, tech: Technology, pool, config: FixConfig = FixConfig(),
                 seed: int = 0) -> None:
        from ..core.score import UGB_BENCHES
        from ..sim.simulate import SimConfig

        self.train = train[train["working"]].reset_index(drop=True)
        self.tech, self.pool, self.config, self.seed = tech, pool, config, seed
        self.sim_config = SimConfig(tech=tech, benches=UGB_BENCHES)  # as the eval simulates every answer

    def simulate(self, designs: list[Design]):
        results = [None] * len(designs)
        for i, result in self.pool.map(designs, self.sim_config):
            results[i] = result
        return results

    def start_for(self, row: pd.Series, specs: Specs, rng: np.random.Generator) -> pd.Series:
        from ..data.retrieval import rank_rows

        ranked = rank_rows(self.train[self.train["index"] != row["index"]], specs)
        depth = 0 if rng.random() < self.config.first_share or len(ranked) < 2 else \
            int(rng.integers(1, min(self.config.retrieved, len(ranked))))
        return ranked.iloc[depth]

    def draw_chunk(self, rows: pd.DataFrame) -> list[dict]:
        """One record per target row: its pair (or none) and how it was drawn."""
        config = self.config
        records, misses = [], []
        for _, row in rows.iterrows():
            rng = np.random.default_rng([self.seed, int(row["index"])])  # the same pair however the run is chunked
            try:
                specs, dropped = _bounds(row, rng, config.drop_share)
            except SpecError:  # a metric outside what a user could ask for: not a target
                continue
            start = self.start_for(row, specs, rng)
            start_design, start_metrics = design_of(start), metrics_of(start)
            record = {"index": int(row["index"]), "start_index": int(start["index"]), "dropped": dropped,
                      "specs": specs.given(), "simulations": 0, "pair": None}
            if shortfall(start_metrics, specs) == 0.0:
                record["kind"] = "keep" if rng.random() < config.keep_share else "keep-dropped"
                if record["kind"] == "keep":
                    record["pair"] = self._pair(specs, start_design, start_metrics, start_design)
                records.append(record)
                continue
            record["start_shortfall"] = shortfall(start_metrics, specs)
            moves = single_moves(start_design, self.tech, config)
            misses.append((record, specs, start_design, start_metrics, moves))
            records.append(record)
        # singles for every miss of the chunk in one map, then the doubles of the misses no single move fixed
        flat = [d for *_, moves in misses for d in moves]
        results = iter(self.simulate(flat))
        doubles = []
        for record, specs, start_design, _, moves in misses:
            tried = [(d, next(results)) for d in moves]
            record["simulations"] += len(tried)
            record["tried"] = tried
            if not any(result_shortfall(r, specs) == 0.0 for _, r in tried) and config.doubles_from >= 2:
                best = sorted(tried, key=lambda t: result_shortfall(t[1], specs))
                chosen, keys = [], set()
                for design, _ in best:
                    key = _changed(start_design, design)
                    if key not in keys:
                        chosen.append(design)
                        keys.add(key)
                    if len(chosen) == config.doubles_from:
                        break
                combos = [c for a, b in combinations(chosen, 2) if (c := combine(start_design, a, b)) is not None]
                doubles.append((record, combos))
        flat = [d for _, combos in doubles for d in combos]
        results = iter(self.simulate(flat))
        for record, combos in doubles:
            double = [(d, next(results)) for d in combos]
            record["simulations"] += len(double)
            record["tried_double"] = double
        paths = []
        for record, specs, start_design, start_metrics, _ in misses:
            moved = self._choose(record, specs, start_design, start_metrics)
            if config.depth > 1:
                record["path"], record["path_end"] = [], "met" if record["kind"] in ("single", "double") else "stuck"
                if moved is not None:
                    paths.append((record, specs, *moved))
        self._follow(paths)
        return records

    def _follow(self, paths: list[tuple]) -> None:
        """Continue each improving first move (record, specs, moved design, its result) for up to `depth - 1` more
        pairs, each from the last move's design with its simulated metrics; all paths of a chunk step together."""
        for _ in range(self.config.depth - 1):
            if not paths:
                return
            moves = [single_moves(design, self.tech, self.config) for _, _, design, _ in paths]
            results = iter(self.simulate([d for ms in moves for d in ms]))
            going = []
            for (record, specs, design, result), candidates in zip(paths, moves):
                tried = [(d, next(results)) for d in candidates]
                record["simulations"] += len(tried)
                meeting = _meeting(tried, specs)
                if meeting:
                    record["path"].append({**self._pair(specs, design, result.metrics, meeting[0][0]), "kind": "met"})
                    record["path_end"] = "met"
                    continue
                improving = self._improving(tried, specs, result_shortfall(result, specs))
                if improving is not None:
                    record["path"].append({**self._pair(specs, design, result.metrics, improving[0]),
                                           "kind": "improves"})
                    record["path_end"] = "depth"
                    going.append((record, specs, *improving))
                else:
                    record["path_end"] = "stuck"
            paths = going

    def _choose(self, record: dict, specs: Specs, start_design: Design, start_metrics) -> tuple | None:
        """Record the first pair of a miss; returns (design, result) of an improving move that did not meet."""
        single, double = record.pop("tried"), record.pop("tried_double", [])
        # every simulated move's shortfall, and the moves that meet (fewest moves, then largest worst margin, first):
        # enough to rebuild the pairs with several winning moves per miss (`fix_pairs(winners=)`) without simulating
        record["moves"] = {format_fix(start_design, d): round(result_shortfall(r, specs), 6) for d, r in single + double}
        for kind, tried in (("single", single), ("double", double)):
            meeting = _meeting(tried, specs)
            if meeting:
                record.update(kind=kind, meeting=len(meeting),
                              winners=[format_fix(start_design, d) for d, _ in meeting],
                              pair=self._pair(specs, start_design, start_metrics, meeting[0][0]))
                return None
        improving = self._improving(single + double, specs, record["start_shortfall"])
        if improving is None:
            record["kind"] = "unfixed"
            return None
        record.update(kind="improves", shortfall=result_shortfall(improving[1], specs),
                      pair=self._pair(specs, start_design, start_metrics, improving[0]))
        return improving

    def _improving(self, tried: list[tuple], specs: Specs, now: float) -> tuple | None:
        """The (design, result) that cuts the shortfall most, when it cuts `now` to `improve_ratio` or less."""
        if not tried:  # every move leaves the technology's bounds
            return None
        design, result = min(tried, key=lambda t: result_shortfall(t[1], specs))
        return (design, result) if result_shortfall(result, specs) <= self.config.improve_ratio * now else None

    @staticmethod
    def _pair(specs: Specs, start: Design, metrics, design: Design) -> dict:
        return {"prompt": fix_prompt(specs, (start, metrics)), "completion": format_fix(start, design)}


def _meeting(tried: list[tuple], specs: Specs) -> list[tuple]:
    """The (design, result) pairs that meet the bounds, best first (largest worst margin, then power)."""
    return sorted(((d, r) for d, r in tried if result_shortfall(r, specs) == 0.0),
                  key=lambda t: rank_key(t[1], specs, t[1].status, True))


def cache_path(folder: Path, split: str, kind: str, seed: int, config: FixConfig = FixConfig()) -> Path:
    """One file per move set, split, split kind and seed: records in the order of the seeded shuffle of the split's
    targets, so a larger `targets` extends an earlier draw and a smaller one reads its first records. The `base`
    set (and rules no set names) keeps the name drawn before move sets had names."""
    rules = _rules(config)
    name = next((n for n, c in MOVE_SETS.items() if _rules(c) == rules), "base")
    return folder / (f"fix-{split}-{kind}-seed{seed}.jsonl" if name == "base" else
                     f"fix-{name}-{split}-{kind}-seed{seed}.jsonl")


def fix_pairs(data: Dataset, split: str, kind: str = "heldout", seed: int = 0, config: FixConfig = FixConfig(),
              tech: Technology | None = None, pool=None, folder: Path | None = None,
              progress: Callable[[int, int], None] | None = None, winners: int = 1) -> tuple[list[dict], FixStats]:
    """The split's fix pairs, drawn once and cached in `folder` (default DATA/pairs/; resumed when a draw was
    interrupted).

    Targets are the split's working rows (a seeded shuffle, the first `config.targets`); starts come from the
    training split. A pool is opened when one is needed and none is given. The move rules (`config` but `targets`
    and `chunk`) are part of the cache: a draw under other rules is refused rather than mixed in. `winners`: a miss
    that several moves fix gives a pair for each of its best `winners` (records drawn before moves were recorded
    give their one pair), so the model learns which moves work rather than one arbitrary winner."""
    path = cache_path(Path(folder) if folder else data.folder / PAIRS_DIR, split, kind, seed, config)
    rules = _rules(config)
    if path.with_suffix(".json").is_file():
        earlier = json.loads(path.with_suffix(".json").read_text()).get("rules")
        if earlier is not None and earlier != rules:
            from ..core.errors import ConfigError

            raise ConfigError(f"{path} was drawn under other move rules ({earlier}); move it away to draw again")
    meta_path = path.with_suffix(".json")
    rows = data.rows(split, kind)
    rows = rows.iloc[np.random.default_rng(seed).permutation(len(rows))]
    if config.targets is not None:
        rows = rows.iloc[:config.targets]
    wanted = set(rows["index"])
    done = [r for r in _read_records(path) if r["index"] in wanted]
    todo = rows[~rows["index"].isin({r["index"] for r in done})]
    if len(todo):
        tech = tech or dataset_technology(data)
        drawer_pool = pool
        started = time.time()
        opened = None
        if drawer_pool is None:
            from ..sim.engines import open_pool

            opened = open_pool()
            drawer_pool = opened.__enter__()
        try:
            drawer = FixDrawer(data.training_rows(kind), tech, drawer_pool, config, seed)
            done += append_drawn(path, todo, drawer.draw_chunk, config.chunk, progress)
        finally:
            if opened is not None:
                opened.__exit__(None, None, None)
        _write_meta(meta_path, data, split, kind, seed, config, _read_records(path), time.time() - started)
    stats = FixStats()
    for record in done:
        stats.add(record)
    if meta_path.is_file():
        stats.seconds = json.loads(meta_path.read_text()).get("seconds", 0.0)  # the whole cache's drawing time
    order = {int(i): n for n, i in enumerate(rows["index"])}
    pairs = []
    for record in sorted(done, key=lambda r: order.get(r["index"], len(order))):
        if record["pair"] is None:
            continue
        completions = record.get("winners", [record["pair"]["completion"]])[:winners] if winners > 1 else \
            [record["pair"]["completion"]]
        for completion in completions:
            pairs.append({"prompt": record["pair"]["prompt"], "completion": completion, "index": record["index"],
                          "start_index": record["start_index"], "kind": record["kind"]})
        for step in record.get("path", []):  # later pairs of the path: starts that are earlier moves' designs
            pairs.append({"prompt": step["prompt"], "completion": step["completion"], "index": record["index"],
                          "start_index": record["start_index"], "kind": "path-" + step["kind"]})
    return pairs, stats


def _rules(config: FixConfig) -> dict:
    rules = asdict(config)
    for key in ("targets", "chunk"):
        rules.pop(key)
    for key, default in (("coupled", False), ("depth", 1)):
        if rules[key] == default:
            rules.pop(key)  # as drawn before these rules existed: those caches stay valid
    return {k: list(v) if isinstance(v, tuple) else v for k, v in rules.items()}


_read_records = read_jsonl_records
"""Kept under this module's name (icgen.core.io.read_jsonl_records)."""


def _write_meta(path: Path, data: Dataset, split: str, kind: str, seed: int, config: FixConfig,
                records: list[dict], seconds: float) -> None:
    from ..core.io import git_sha

    stats = FixStats()
    for record in records:
        stats.add(record)
    earlier = json.loads(path.read_text()).get("seconds", 0.0) if path.is_file() else 0.0
    write_json_atomic({"what": "icgen fix pairs: simulated single and double moves from retrieved starts "
                               "(icgen.llm.fixes)", "data": data.folder.name, "split": split, "split_kind": kind,
                       "seed": seed, "rules": _rules(config), "targets_drawn": len(records), "git_sha": git_sha(),
                       "seconds": earlier + seconds, "stats": stats.to_dict(), "spec_keys": list(SPEC_KEYS)}, path)
