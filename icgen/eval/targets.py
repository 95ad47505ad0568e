"""Eval targets and the eval's config: held-out designs' metrics as relaxed bounds, hand-written specs, and a user's
own specs from a JSONL file (`read_targets`).

Held-out targets are feasible by construction: the design they came from meets them (a test re-simulates it).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..core.corner import Bias
from ..core.design import Metrics
from ..core.errors import ConfigError, IcgenError
from ..core.score import SpecError, Specs, relaxed_specs
from ..data.dataset import Dataset, metrics_of
from .config import EvalConfig
from .outcome import Target

HAND_TARGETS: tuple[tuple[str, Specs], ...] = (
    ("gain38-pm52", Specs(gain_db=38, pm_deg=52)),
    ("gain60-pm60-ugb1M", Specs(gain_db=60, pm_deg=60, ugb_hz=1e6)),
    ("gain50-pm60-gm10-p20u", Specs(gain_db=50, pm_deg=60, gm_db=10, power_w=20e-6)),
    ("gain70-pm45", Specs(gain_db=70, pm_deg=45)),
    ("gain40-pm50-ugb20M", Specs(gain_db=40, pm_deg=50, ugb_hz=20e6)),
    ("gain45-pm45-bw100k", Specs(gain_db=45, pm_deg=45, bw3db_hz=100e3)),
    ("gain30-pm60-p2u", Specs(gain_db=30, pm_deg=60, power_w=2e-6)),
    ("gain80-pm60-ugb5M", Specs(gain_db=80, pm_deg=60, ugb_hz=5e6)),
)


def heldout_rows(data: Dataset, config: EvalConfig):
    """`config.n` working designs of the chosen split, drawn with the seed, in dataset order (a DataFrame)."""
    rows = data.rows(config.split, config.split_kind)
    if rows.empty:
        raise ConfigError(f"{{split}} {config.split!r} is empty in the {config.split_kind} splits; use test or "
                          f"validation")
    return rows.sample(n=min(config.n, len(rows)), random_state=config.seed).sort_values("index")


def _relaxed_target(name: str, metrics: Metrics, config: EvalConfig) -> Target | None:
    """A held-out target from a design's metrics, relaxed by the config's tolerance; None for a metric outside what
    a user could ask for."""
    try:
        specs = relaxed_specs(metrics, config.tolerance)
        if config.drop:
            specs = Specs.from_dict({k: v for k, v in specs.to_dict().items() if k not in config.drop})
    except SpecError:
        return None
    return Target(name, "heldout", specs, metrics)


def heldout_targets(data: Dataset, config: EvalConfig) -> list[Target]:
    """`config.n` working designs of the chosen split, drawn with the seed, as relaxed-bound targets."""
    found = (_relaxed_target(f"{config.split}-{int(row['index'])}", metrics_of(row), config)
             for _, row in heldout_rows(data, config).iterrows())
    return [t for t in found if t is not None]


def worst_corner_targets(data: Dataset, config: EvalConfig, tech, corners, pool,
                         bias: str = Bias.TRACK_VDD) -> tuple[list[Target], list[str]]:
    """`config.n` held-out targets that hold at every corner by construction. The split's designs are taken in the
    seeded order `heldout_targets` draws from (its first n are the nominal targets' designs), each is simulated at
    every corner of `corners` (a batch at a time on `pool`, screened as icgen.sim.corners.ScreenedCorners: after the
    first batch a design failing one of the most-failed corners is not simulated at the rest), and a design that is a
    healthy working amplifier at every corner gives a target: its worst-corner metrics (`worst_result`: the lowest
    gain, UGB, PM, GM and BW, the highest power) relaxed as nominal ones are. Designs are drawn until n targets are
    found or the split runs out; returns the targets in dataset order and the names of the designs that gave none.

    Nominal targets come from one corner's metrics: on ptm65 `all` not one of 100 source designs meets its own
    nominal target at every corner, so a corner benchmark on them measures infeasible targets as much as the loop."""
    from ..core.score import healthy_result
    from ..core.status import Status
    from ..data.dataset import design_of
    from ..sim.corners import ScreenedCorners, worst_result

    rows = data.rows(config.split, config.split_kind)
    if rows.empty:
        raise ConfigError(f"{{split}} {config.split!r} is empty in the {config.split_kind} splits; use test or "
                          f"validation")
    order = list(rows.sample(n=len(rows), random_state=config.seed).iterrows())  # heldout_rows' draw, all of it
    targets: list[tuple[int, Target]] = []
    dropped: list[str] = []
    batch = max(config.n, 32)
    screened = ScreenedCorners(tech, corners, pool, bias)  # a design failing a screened corner is dropped early
    for first in range(0, len(order), batch):
        if len(targets) >= config.n:
            break
        chunk = order[first:first + batch]
        worst_results = [worst_result(pairs) for pairs in screened.run([design_of(row) for _, row in chunk])]
        for i, (_, row) in enumerate(chunk):
            if len(targets) >= config.n:
                break
            name = f"{config.split}-{int(row['index'])}"
            worst = worst_results[i]
            target = _relaxed_target(name, worst.metrics, config) if worst.status == Status.OK and \
                worst.metrics is not None and healthy_result(worst) else None
            if target is None:
                dropped.append(name)
            else:
                targets.append((int(row["index"]), target))
    return [t for _, t in sorted(targets, key=lambda pair: pair[0])], dropped


class TargetsError(IcgenError):
    """A targets file that cannot be read: the line and what is wrong with it."""


TARGETS_EXAMPLE = '{"name": "mine", "gain_db": 50, "pm_deg": 60, "ugb_hz": 5e6, "power_w": 2e-5}'


def read_targets(path: str | Path) -> list[Target]:
    """Targets of kind "file" from a JSONL file: one JSON object per line with Specs keys in SI units (see
    icgen.core.score.SPEC_KINDS for which are lower and which upper bounds) and an optional "name" (default
    `line-N`); blank lines are skipped."""
    path = Path(path)
    where = f"{{targets}} {path}"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "not a readable text file"
        raise TargetsError(f"{where}: {reason}; give a JSONL file, one spec object a line, e.g. {TARGETS_EXAMPLE}") \
            from None
    targets: list[Target] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        at = f"{where} line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise TargetsError(f"{at}: not JSON ({err.msg} at column {err.colno}); write e.g. {TARGETS_EXAMPLE}") \
                from None
        if not isinstance(data, dict):
            raise TargetsError(f"{at}: a {type(data).__name__}, not a JSON object; write e.g. {TARGETS_EXAMPLE}")
        name = data.pop("name", f"line-{number}")
        if not isinstance(name, str) or not name.strip():
            raise TargetsError(f"{at}: \"name\" must be a non-empty string")
        try:
            specs = Specs.from_dict(data)
        except SpecError as err:  # name the file's keys (gain_db), not the CLI's options (--gain)
            raise TargetsError(f"{at}: {err.render(lambda key: key)}") from None
        if any(t.name == name for t in targets):
            raise TargetsError(f"{at}: the name {name!r} is used twice; give each target its own name")
        targets.append(Target(name, "file", specs))
    if not targets:
        raise TargetsError(f"{where} holds no targets; write one spec object a line, e.g. {TARGETS_EXAMPLE}")
    return targets


def all_targets(data: Dataset, config: EvalConfig, heldout: list[Target] | None = None) -> list[Target]:
    """The held-out targets (`heldout`, else `heldout_targets`), then (unless config.hand is off) the hand-written
    ones, then those of config.targets."""
    hand = [Target(name, "hand", specs) for name, specs in HAND_TARGETS] if config.hand else []
    targets = (heldout_targets(data, config) if heldout is None else list(heldout)) + hand
    if config.targets is not None:
        taken = {t.name for t in targets}
        mine = read_targets(config.targets)
        clash = next((t.name for t in mine if t.name in taken), None)
        if clash is not None:
            raise TargetsError(f"{{targets}} {config.targets}: the name {clash!r} is also a held-out or hand-written "
                               f"target's; rename it")
        targets += mine
    return targets
