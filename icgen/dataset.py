"""The simulated dataset: space-filling samples of the design space, every one simulated and kept with its status.

    icgen data generate --tech ptm65 --n-working 8800 --seed 0 --out data/ptm65

Designs come from a scrambled Sobol sequence (log scale for R0, C0, L and W), rounded to three significant
figures (voltages to 1 mV) so they print as a designer would write them. Work is done in chunks; each finished
chunk is written atomically as a Parquet part, so a killed run (SIGKILL included) resumes where it stopped and
ends with the same table as an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import qmc

from . import __version__
from .deck import TEMPLATE
from .design import DESIGN_KEYS, METRIC_KEYS, VARIABLE_BY_KEY, Design
from .simulate import SimConfig, SimResult, SimulatorPool
from .tech import Technology, load_technology

TABLE = "designs.parquet"
META = "meta.json"
PARTS = "parts"
SOURCES = ("sobol", "sweep", "model", "user")


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate: a technology's design space sampled until enough working designs are found."""

    tech: str = "ptm65"
    """Technology name or descriptor path."""
    n_working: int = 8800
    """Stop once this many designs are working (status ok and a healthy operating point)."""
    seed: int = 0
    """Seed of the scrambled Sobol sequence."""
    testbench: str = "feedback"
    """Testbench every design is measured on."""
    chunk: int = 1024
    """Designs per resumable chunk (one Parquet part each)."""
    max_simulations: int = 1_000_000
    """Give up after this many simulations (a space with almost no working designs)."""

    def __post_init__(self) -> None:
        if self.n_working < 1:
            raise ValueError("--n-working must be at least 1")
        if not (1 <= self.chunk <= 1_000_000):
            raise ValueError("--chunk must be between 1 and 1000000")


def quantize(key: str, value: float) -> float:
    """Round a variable as a designer writes it: 3 significant figures, voltages to 1 mV."""
    if not VARIABLE_BY_KEY[key].log_scale:
        return round(value, 3)
    return float(f"{value:.3g}")


def sample_designs(tech: Technology, seed: int, start: int, count: int) -> list[Design]:
    """Designs start..start+count-1 of the seeded scrambled Sobol sequence over the technology's bounds."""
    sobol = qmc.Sobol(d=len(DESIGN_KEYS), scramble=True, seed=seed)
    if start:
        sobol.fast_forward(start)
    with warnings.catch_warnings():  # balance properties need powers of two; the stream order is what we use
        warnings.simplefilter("ignore")
        unit = sobol.random(count)
    designs = []
    for row in unit:
        values = {}
        for j, key in enumerate(DESIGN_KEYS):
            low, high = tech.bounds[key]
            if VARIABLE_BY_KEY[key].log_scale:
                raw = math.exp(math.log(low) + row[j] * (math.log(high) - math.log(low)))
            else:
                raw = low + row[j] * (high - low)
            values[key] = min(max(quantize(key, raw), low), high)
        designs.append(Design(**values))
    return designs


def random_designs(tech: Technology, n: int, seed: int = 0) -> list[Design]:
    """n independent log-uniform (uniform for voltages) random designs, unrounded: for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    designs = []
    for _ in range(n):
        values = {}
        for key in DESIGN_KEYS:
            low, high = tech.bounds[key]
            log = VARIABLE_BY_KEY[key].log_scale
            values[key] = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if log else float(rng.uniform(low, high))
        designs.append(Design(**values))
    return designs


def result_row(index: int, result: SimResult, source: str) -> dict:
    """One table row: design, metrics (NaN when absent), status, reason, health summary and per-device regions."""
    row: dict = {"index": index}
    row.update(result.design.to_dict())
    metrics = result.metrics.to_dict() if result.metrics else {}
    for key in METRIC_KEYS:
        value = metrics.get(key)
        row[key] = float("nan") if value is None else float(value)
    row["status"] = result.status
    row["reason"] = result.reason or ""
    health = result.health
    row["healthy"] = bool(health.healthy) if health else False
    row["flags"] = "; ".join(health.flags) if health else ""
    row["vout_v"] = health.vout_v if health else float("nan")
    margins = [d.saturation_margin_v for d in health.devices] if health else []
    row["min_saturation_margin_v"] = min(margins) if margins else float("nan")
    for d in TEMPLATE:
        dev = next((x for x in health.devices if x.name == d.name), None) if health else None
        row[f"{d.name}_region"] = dev.region if dev else ""
    row["working"] = bool(result.status == "ok" and row["healthy"])
    row["source"] = source
    return row


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def ngspice_version() -> str:
    try:
        out = subprocess.run(["ngspice", "--version"], capture_output=True, text=True, timeout=10).stdout
        return next((w for w in out.split() if w.startswith("ngspice-")), "unknown")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _part_files(out: Path, parts_dir: Path | None = None) -> list[tuple[int, int, Path]]:
    """Finished parts as (start, end, path), checked to be contiguous from 0."""
    parts = []
    for path in sorted((parts_dir or out / PARTS).glob("part-*.parquet")):
        start, end = (int(x) for x in path.stem.split("-")[1:3])
        parts.append((start, end, path))
    expected = 0
    for start, end, path in parts:
        if start != expected:
            raise RuntimeError(f"{out / PARTS} has a gap before {path.name}; delete {out} and generate again")
        expected = end
    return parts


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_json_atomic(data: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _check_same_run(out: Path, config: GenerateConfig, tech: Technology) -> None:
    progress = out / "progress.json"
    if progress.is_file():
        previous = json.loads(progress.read_text())["config"]
        mine = {**asdict(config), "tech": tech.name}
        for key in ("tech", "seed", "testbench", "chunk"):
            if previous.get(key) != mine.get(key):
                raise RuntimeError(f"{out} holds a run with {key}={previous.get(key)!r}, not {mine.get(key)!r}; "
                                   f"use another --out or the same settings to resume")


def generate(config: GenerateConfig, out: str | Path, workers: int | None = None,
             progress: Callable[[int, int, int], None] | None = None) -> pd.DataFrame:
    """Simulate Sobol designs in chunks until `n_working` are ok; resumable; returns the final table.

    `progress(simulated, working, total_wanted)` is called after every result.
    """
    out = Path(out)
    tech = load_technology(config.tech)
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    _check_same_run(out, config, tech)
    progress_file = out / "progress.json"
    state = json.loads(progress_file.read_text()) if progress_file.is_file() else {"wall_s": 0.0, "sessions": 0}
    state["config"] = {**asdict(config), "tech": tech.name}
    state["sessions"] += 1
    _write_json_atomic(state, progress_file)
    parts = _part_files(out)
    done = parts[-1][1] if parts else 0
    working = sum(int(pd.read_parquet(p, columns=["working"])["working"].sum()) for _, _, p in parts)
    sim_config = SimConfig(tech=tech, testbench=config.testbench)
    started = time.time()
    try:
        if working < config.n_working:
            with SimulatorPool(workers=workers) as pool:
                while working < config.n_working:
                    if done >= config.max_simulations:
                        raise RuntimeError(f"only {working} working designs after {done} simulations; "
                                           f"widen the bounds or lower --n-working")
                    designs = sample_designs(tech, config.seed, done, config.chunk)

                    def counted(row: dict) -> None:
                        nonlocal working
                        working += row["working"]
                        if progress:
                            progress(row["index"] + 1, working, config.n_working)

                    simulate_chunk(pool, designs, done, sim_config, "sobol", out / PARTS, counted)
                    done += len(designs)
                    state["wall_s"] += time.time() - started
                    started = time.time()
                    _write_json_atomic(state, progress_file)
    finally:
        state["wall_s"] += time.time() - started
        _write_json_atomic(state, progress_file)
    base = base_table(out, config.n_working)
    from .augment import with_augments  # augmented rows, if any, stay in the table

    table = with_augments(base, out)
    _write_atomic(table, out / TABLE)
    table = base
    counts = table["status"].value_counts().to_dict()
    meta = {
        "what": "icgen simulated dataset of two-stage Miller op-amp designs",
        "command": f"icgen data generate --tech {config.tech} --n-working {config.n_working} --seed {config.seed} "
                   f"--testbench {config.testbench} --chunk {config.chunk} --out {out}",
        "icgen_version": __version__, "git_sha": _git_sha(), "ngspice_version": ngspice_version(),
        "technology": tech.to_dict(), "testbench": config.testbench, "seed": config.seed,
        "sampler": "scipy.stats.qmc.Sobol(scramble=True, seed=seed); log scale for R0 C0 L W; "
                   "rounded to 3 significant figures, voltages to 1 mV",
        "bounds": {k: list(tech.bounds[k]) for k in DESIGN_KEYS},
        "n_working": config.n_working,
        "counts": {"simulated": int(len(table)), "ok": int(counts.get("ok", 0)),
                   "not_amplifier": int(counts.get("not_amplifier", 0)), "failed": int(counts.get("failed", 0)),
                   "working": int(table["working"].sum())},
        "yield_ok": float(counts.get("ok", 0) / len(table)),
        "yield_working": float(table["working"].sum() / len(table)),
        "wall_s": round(state["wall_s"], 1), "sessions": state["sessions"], "workers": workers or os.cpu_count(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "working_means": "status ok (DC gain above 0 dB, a unity-gain crossing, positive phase margin, "
                         "non-inverting) and healthy (output not within 10% of VDD of a rail, no device in triode "
                         "or off); every other row is kept with its status, reason and flags",
    }
    _write_json_atomic(meta, out / META)
    return load_dataset(out)


def simulate_chunk(pool: SimulatorPool, designs: list[Design], start: int, sim_config: SimConfig,
                   source: str | list[str], parts_dir: Path, on_row: Callable[[dict], None] | None = None,
                   index_offset: int = 0) -> pd.DataFrame:
    """Simulate designs start.. as one part and write it atomically (the unit of resumption).

    Row i gets index index_offset + start + i and source `source` (or source[i] for a list).
    """
    rows = []
    for offset, result in pool.map(designs, sim_config):
        rows.append(result_row(index_offset + start + offset, result,
                               source if isinstance(source, str) else source[offset]))
        if on_row:
            on_row(rows[-1])
    frame = pd.DataFrame(rows).sort_values("index", kind="stable").reset_index(drop=True)
    parts_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(frame, parts_dir / f"part-{start:08d}-{start + len(designs):08d}.parquet")
    return frame


def base_table(out: Path, n_working: int) -> pd.DataFrame:
    """The sampled rows up to and including the n-th working design (independent of chunk boundaries)."""
    table = pd.concat([pd.read_parquet(p) for _, _, p in _part_files(out)], ignore_index=True)
    working_rows = np.nonzero(table["working"].to_numpy())[0]
    if len(working_rows) < n_working:
        raise RuntimeError(f"{out} holds {len(working_rows)} working designs, fewer than {n_working}; "
                           f"run icgen data generate again to finish it")
    return table.iloc[: working_rows[n_working - 1] + 1].reset_index(drop=True)


def load_dataset(path: str | Path) -> pd.DataFrame:
    """The table of a dataset folder (or a Parquet file)."""
    path = Path(path)
    return pd.read_parquet(path / TABLE if path.is_dir() else path)


def designs_of(table: pd.DataFrame) -> list[Design]:
    return [Design(**{k: float(row[k]) for k in DESIGN_KEYS}) for _, row in table.iterrows()]
