"""One sizing job as the server runs it: the specs as typed, the loop of icgen.sizing.loop, and a JSON record.

    runner = SizingRunner({"ptm65": tech}, {"none": SizingResources.load(model_dir=None)})
    record = runner({"specs": {"gain": "38dB", "pm": "52"}, "budget": 20, "tech": "ptm65", "model": "none",
                     "objective": "min-power", "margin": "0.5dB,1deg,2%", "corners": None},
                    progress=print, cancel=lambda: False)

With `corners` (a corner set or list, as `icgen size --corners` takes it) the loop is scored by the worst corner
(icgen.sizing.corners.size_at_corners); the record then carries the corner report.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from .. import __version__
from ..core.deck import render_answer
from ..core.io import git_sha
from ..core.measure import bode
from ..core.objective import parse_margin
from ..core.score import SPEC_KINDS, format_margin, format_spec, specs_from_options
from ..core.tech import Technology
from ..sizing.config import SizeConfig
from ..sizing.loop import SizeResult, size, spec_table
from ..sizing.resources import SizingResources

MAX_MODEL_TEXTS = 8
"""Raw model answers kept in a record (shown escaped on the page)."""


def _finite(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def corner_record(found) -> dict | None:
    """The best design's per-corner report (icgen.sim.corners.CornerReport.to_dict), each entry naming its corner."""
    if found is None or found.report is None:
        return None
    record = found.report.to_dict()
    for row, entry in zip(found.report.rows, record["corners"]):
        entry["corner"] = row.corner.to_dict()
    return record


def result_record(result: SizeResult, tech: Technology, request: dict, seconds: float, corners=None) -> dict:
    """What a finished job shows and keeps: answer, spec table, operating point, sweep, source, cost, provenance."""
    best = result.best
    rows = []
    for row in spec_table(result):
        kind = SPEC_KINDS[row["spec"]]
        rows.append({"spec": row["spec"], "label": kind.label, "target": row["target"],
                     "achieved": _finite(row["achieved"]), "margin": row["margin"], "pass": bool(row["pass"]),
                     "target_text": kind.bound_sign + format_spec(kind.key, row["target"]),
                     "achieved_text": format_spec(kind.key, row["achieved"]),
                     "margin_text": format_margin(kind.key, row["margin"])})
    sim = best.result if best is not None else None
    sweep = None
    if sim is not None and sim.frequency_hz is not None and sim.response is not None:
        gain_db, phase_deg = bode(sim.response)
        sweep = {"frequency_hz": sim.frequency_hz.tolist(), "gain_db": gain_db.tolist(),
                 "phase_deg": phase_deg.tolist()}
    return {
        "met": result.met, "cancelled": result.cancelled, "simulations": result.simulations,
        "budget": request.get("budget"), "seconds": round(seconds, 3),
        "best_shortfall": best.shortfall if best is not None else None,
        "source": best.source if best is not None else None,
        "answer": render_answer(sim.design) if sim is not None else None,
        "design": sim.design.to_dict() if sim is not None else None,
        "metrics": sim.metrics.to_dict() if sim is not None and sim.metrics else None,
        "status": str(sim.status) if sim is not None else None, "reason": sim.reason if sim is not None else None,
        "health": sim.health.to_dict() if sim is not None and sim.health else None,
        "spec_table": rows, "sweep": sweep,
        "model_texts": result.model_texts[:MAX_MODEL_TEXTS], "invalid_model_answers": result.invalid_model_answers,
        "tech": tech.name, "model": request.get("model"), "specs": request.get("specs"),
        "objective": request.get("objective") or SizeConfig.objective,
        "margin": request.get("margin") or SizeConfig.margin.text(), "corners": request.get("corners"),
        "corner_report": corner_record(corners),
        "corners_skipped": list(corners.skipped) if corners is not None else [],
        "provenance": {"icgen_version": __version__, "git_sha": git_sha(), "tech": tech.name,
                       "model": request.get("model"), "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                    time.gmtime())},
    }


def once(load: Callable | None) -> Callable | None:
    """A loader that loads at most once, whichever job thread asks first (a model costs seconds to load)."""
    if load is None:
        return None
    lock, cache = threading.Lock(), []

    def loaded():
        with lock:
            if not cache:
                cache.append(load())
            return cache[0]

    return loaded


class SizingRunner:
    """Runs a job's request on the server's technologies and resources, each job thread on its own simulator pool."""

    def __init__(self, techs: dict[str, Technology], resources: dict[str, SizingResources],
                 sim_workers: int = 1, pool_factory: Callable[[], object] | None = None) -> None:
        self.techs = techs
        self.resources = {name: replace(r, load_model=once(r.load_model), load_surrogate=once(r.load_surrogate))
                          for name, r in resources.items()}
        self.sim_workers = sim_workers
        self.pool_factory = pool_factory
        self._local = threading.local()
        self._pools: list = []
        self._lock = threading.Lock()

    def _pool(self):
        pool = getattr(self._local, "pool", None)
        if pool is None:
            if self.pool_factory is not None:
                pool = self.pool_factory()
            else:
                from ..sim.simulate import SimulatorPool

                pool = SimulatorPool(workers=self.sim_workers).__enter__()
            self._local.pool = pool
            with self._lock:
                self._pools.append(pool)
        return pool

    def __call__(self, request: dict, progress: Callable, cancel: Callable[[], bool]) -> dict:
        started = time.perf_counter()
        specs = specs_from_options(request["specs"])
        tech = self.techs[request["tech"]]
        config = SizeConfig(budget=request["budget"], objective=request.get("objective") or SizeConfig.objective,
                            margin=parse_margin(request.get("margin") or SizeConfig.margin.text()))
        resources = self.resources[request["model"]]
        found = None
        if request.get("corners"):
            from ..sizing.corners import size_at_corners

            found = size_at_corners(specs, tech, tech.corner_set(request["corners"]), config, self._pool(),
                                    resources=resources, progress=progress, cancel=cancel)
            result = found.result
        else:
            result = size(specs, tech, config, self._pool(), resources=resources, progress=progress, cancel=cancel)
        return result_record(result, tech, request, time.perf_counter() - started, corners=found)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools:
                close = getattr(pool, "close", None)
                if close is not None:
                    close()
            self._pools = []
