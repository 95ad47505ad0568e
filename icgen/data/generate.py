"""Generate a dataset: space-filling samples of the design space, every one simulated and kept with its status.

    icgen data generate --tech ptm65 --n-working 8800 --seed 0 --out data/ptm65

Designs come from a scrambled Sobol sequence (log scale for R0, C0, L and W), rounded to three significant
figures (voltages to 1 mV) so they print as a designer would write them. Work is done in chunks; each finished
chunk is written atomically as a Parquet part, so a killed run (SIGKILL included) resumes where it stopped and
ends with the same table as an uninterrupted one. The splits are written once, with the first finished table.
Every invocation is counted in progress.json as it starts, and its wall time is written there every second.
"""
from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..core.design import DESIGN_KEYS, Design
from ..core.io import git_sha, write_json_atomic, write_parquet_atomic
from ..core.sampling import sample_designs
from ..core.status import Status
from ..core.tech import Technology, load_technology
from ..sim.backends import ngspice_version
from ..sim.engines import open_pool, pool_provenance
from ..sim.simulate import SimConfig, SimulatorPool
from .config import GenerateConfig
from .dataset import Dataset, part_files, result_row, with_augments


def _check_same_run(data: Dataset, config: GenerateConfig, tech: Technology) -> None:
    if data.progress_path.is_file():
        previous = json.loads(data.progress_path.read_text())["config"]
        mine = {**asdict(config), "tech": tech.name}
        for key in ("tech", "seed", "testbench", "chunk"):
            if previous.get(key) != mine.get(key):
                raise RuntimeError(f"{data.folder} holds a run with {key}={previous.get(key)!r}, not {mine.get(key)!r}; "
                                   f"use another --out or the same settings to resume")


class _Session:
    """This invocation in progress.json: counted as it starts, its wall time written every `every_s` seconds
    (from a thread, so a SIGKILL at any moment loses at most that much)."""

    def __init__(self, path: Path, config: dict, every_s: float = 1.0) -> None:
        self.path = path
        self.state = json.loads(path.read_text()) if path.is_file() else {"wall_s": 0.0, "sessions": 0}
        self.state["config"] = config
        self.state["sessions"] += 1
        self._before = float(self.state["wall_s"])
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.flush()
        self._thread = threading.Thread(target=self._tick, args=(every_s,), name="icgen-progress", daemon=True)
        self._thread.start()

    @property
    def wall_s(self) -> float:
        """Wall time of every session so far, this one up to now."""
        return self._before + time.monotonic() - self._started

    @property
    def sessions(self) -> int:
        return int(self.state["sessions"])

    def flush(self) -> None:
        with self._lock:  # one writer at a time: the temporary file is named by process
            self.state["wall_s"] = self.wall_s
            write_json_atomic(self.state, self.path)

    def _tick(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.flush()
            except OSError:  # a full disk must not stop the run; the next tick tries again
                pass

    def __enter__(self) -> "_Session":
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


def generate(config: GenerateConfig, out: str | Path | Dataset, workers: int | None = None,
             progress: Callable[[int, int, int], None] | None = None, scheduler: str | None = None) -> pd.DataFrame:
    """Simulate Sobol designs in chunks until `n_working` are ok; resumable; returns the final table.

    `progress(simulated, working, total_wanted)` is called after every result. `scheduler` (or
    $ICGEN_SCHEDULER) simulates on a Dask cluster instead of this machine's pool.
    """
    data = out if isinstance(out, Dataset) else Dataset(out)
    out = data.folder
    tech = load_technology(config.tech)
    data.parts_dir.mkdir(parents=True, exist_ok=True)
    _check_same_run(data, config, tech)
    with _Session(data.progress_path, {**asdict(config), "tech": tech.name}) as session:
        parts = part_files(data.parts_dir)
        done = parts[-1][1] if parts else 0
        working = sum(int(pd.read_parquet(p, columns=["working"])["working"].sum()) for _, _, p in parts)
        sim_config = SimConfig(tech=tech, testbench=config.testbench)
        engine = None
        if working < config.n_working:
            with open_pool(workers=workers, scheduler=scheduler) as pool:
                engine = pool_provenance(pool)
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

                    simulate_chunk(pool, designs, done, sim_config, "sobol", data.parts_dir, counted)
                    done += len(designs)
                    session.flush()
        base = base_table(data, config.n_working)
        data.write_table(with_augments(base, data))  # augmented rows, if any, stay in the table
        data.write_meta(_meta(config, tech, base, out, workers, session, engine))
    return data.reload().table


def _meta(config: GenerateConfig, tech: Technology, table: pd.DataFrame, out: Path, workers: int | None,
          session: _Session, engine: dict | None) -> dict:
    counts = table["status"].value_counts().to_dict()
    meta = {
        "what": "icgen simulated dataset of two-stage Miller op-amp designs",
        "command": f"icgen data generate --tech {config.tech} --n-working {config.n_working} --seed {config.seed} "
                   f"--testbench {config.testbench} --chunk {config.chunk} --out {out}",
        "icgen_version": __version__, "git_sha": git_sha(), "ngspice_version": ngspice_version(),
        "technology": tech.provenance(), "testbench": config.testbench, "seed": config.seed,
        "sampler": "scipy.stats.qmc.Sobol(scramble=True, seed=seed); log scale for R0 C0 L W; "
                   "rounded to 3 significant figures, voltages to 1 mV",
        "bounds": {k: list(tech.bounds[k]) for k in DESIGN_KEYS},
        "n_working": config.n_working,
        "counts": {"simulated": int(len(table)), "ok": int(counts.get(Status.OK, 0)),
                   "not_amplifier": int(counts.get(Status.NOT_AMPLIFIER, 0)), "failed": int(counts.get(Status.FAILED, 0)),
                   "working": int(table["working"].sum())},
        "yield_ok": float(counts.get(Status.OK, 0) / len(table)),
        "yield_working": float(table["working"].sum() / len(table)),
        "wall_s": round(session.wall_s, 1), "sessions": session.sessions, "workers": workers or os.cpu_count(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "working_means": "status ok (DC gain above 0 dB, a unity-gain crossing, positive phase margin, "
                         "non-inverting) and healthy (output not within 10% of VDD of a rail, no device in triode "
                         "or off); every other row is kept with its status, reason and flags",
    }
    if engine is not None:  # what simulated in this session (none when there was nothing left to simulate)
        meta["engine"] = engine
    return meta


def build_dataset(config: GenerateConfig, out: str | Path, workers: int | None = None,
                  progress: Callable[[int, int, int], None] | None = None, scheduler: str | None = None) -> Dataset:
    """`generate`, then the splits, written once beside the first finished table and never rewritten here."""
    data = Dataset(out)
    table = generate(config, data, workers=workers, progress=progress, scheduler=scheduler)
    from .splits import make_splits  # scikit-learn: imported after generate has counted the session

    if not data.has_splits:
        data.write_splits(make_splits(table, seed=config.seed))
    return data


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
    write_parquet_atomic(frame, parts_dir / f"part-{start:08d}-{start + len(designs):08d}.parquet")
    return frame


def base_table(data: Dataset, n_working: int) -> pd.DataFrame:
    """The sampled rows up to and including the n-th working design (independent of chunk boundaries)."""
    out = data.folder
    table = pd.concat([pd.read_parquet(p) for _, _, p in part_files(data.parts_dir)], ignore_index=True)
    working_rows = np.nonzero(table["working"].to_numpy())[0]
    if len(working_rows) < n_working:
        raise RuntimeError(f"{out} holds {len(working_rows)} working designs, fewer than {n_working}; "
                           f"run icgen data generate again to finish it")
    return table.iloc[: working_rows[n_working - 1] + 1].reset_index(drop=True)


