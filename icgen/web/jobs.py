"""Sizing jobs on a bounded thread pool: a job is queued, runs, and ends done, cancelled or failed.

    manager = JobManager(runner, ResultStore("out/serve"), ServeConfig())
    job = manager.submit(request)          # raises Busy beyond ServeConfig.capacity (the API answers 429)
    manager.renew(job.id)                  # the page renews the lease while it is open

A job whose lease lapses or that runs past `timeout_s` is stopped through the loop's `cancel` hook; its progress
comes through the `progress` hook. Finished jobs are saved by the ResultStore and reloaded on start.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

from ..core.errors import IcgenError
from .config import ServeConfig
from .store import ResultStore

log = logging.getLogger("icgen.web")


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINISHED = (JobState.DONE, JobState.CANCELLED, JobState.FAILED)

Runner = Callable[[dict, Callable, Callable[[], bool]], dict]
"""runner(request, progress, cancel) -> the result record (JSON-ready); progress gets icgen.sizing.loop.Progress."""


class Busy(Exception):
    """Every slot of the queue is taken: the request should come again later (HTTP 429)."""


@dataclass
class Job:
    """One sizing job: what was asked, where it stands, and its result when finished."""

    id: str
    request: dict
    budget: int
    state: JobState = JobState.QUEUED
    simulations: int = 0
    best_shortfall: float | None = None
    step: str = ""
    met: bool = False
    result: dict | None = None
    error: str | None = None
    cancel_reason: str | None = None
    created_s: float = field(default_factory=time.time)
    lease_until: float = 0.0
    deadline: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def view(self, now: float) -> dict:
        """The API's JSON form of the job."""
        return {"id": self.id, "state": str(self.state), "simulations": self.simulations, "budget": self.budget,
                "best_shortfall": self.best_shortfall, "step": self.step, "met": self.met, "done": self.finished,
                "lease_left_s": None if self.finished else round(max(0.0, self.lease_until - now), 1),
                "cancel_reason": self.cancel_reason, "error": self.error, "request": self.request,
                "result": self.result}

    def record(self) -> dict:
        """What is saved to disk for a finished job."""
        return {"id": self.id, "state": str(self.state), "request": self.request, "budget": self.budget,
                "simulations": self.simulations, "best_shortfall": self.best_shortfall, "met": self.met,
                "error": self.error, "cancel_reason": self.cancel_reason, "created_s": self.created_s,
                "result": self.result}

    @classmethod
    def from_record(cls, record: dict) -> "Job":
        return cls(id=record["id"], request=record.get("request") or {}, budget=int(record.get("budget") or 0),
                   state=JobState(record.get("state", "done")), simulations=int(record.get("simulations") or 0),
                   best_shortfall=record.get("best_shortfall"), met=bool(record.get("met")),
                   result=record.get("result"), error=record.get("error"), cancel_reason=record.get("cancel_reason"),
                   created_s=float(record.get("created_s") or 0.0))


class JobManager:
    """Runs jobs `config.jobs` at a time with at most `config.queue` waiting; keeps every job of this run by id."""

    def __init__(self, runner: Runner, store: ResultStore, config: ServeConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.runner, self.store, self.config, self.clock = runner, store, config, clock
        self._executor = ThreadPoolExecutor(max_workers=config.jobs, thread_name_prefix="icgen-job")
        self._lock = threading.Lock()
        self._stopping = False
        self.jobs: dict[str, Job] = {}
        for record in store.load_all():
            try:
                job = Job.from_record(record)
            except (KeyError, TypeError, ValueError) as err:
                log.warning("skipping result %s: %s", record.get("id"), err)
                continue
            self.jobs[job.id] = job

    # ---- the API's calls
    def active(self) -> int:
        return sum(not j.finished for j in self.jobs.values())

    def submit(self, request: dict, budget: int) -> Job:
        """Queue a job, or raise Busy when `config.capacity` jobs are already queued or running."""
        with self._lock:
            active = self.active()
            if active >= self.config.capacity:
                raise Busy(f"the server is busy: {active} sizing jobs are queued or running, the most it takes "
                           f"({self.config.jobs} at once, {self.config.queue} waiting); try again when one finishes")
            job = Job(id=uuid.uuid4().hex, request=request, budget=budget,
                      lease_until=self.clock() + self.config.lease_s)
            self.jobs[job.id] = job
        self._executor.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def renew(self, job_id: str) -> Job | None:
        """Extend a live job's lease by `lease_s` from now (a finished job needs none)."""
        job = self.jobs.get(job_id)
        if job is not None and not job.finished:
            job.lease_until = self.clock() + self.config.lease_s
        return job

    def cancel(self, job_id: str, reason: str = "cancelled by the user") -> Job | None:
        job = self.jobs.get(job_id)
        if job is not None and not job.finished and job.cancel_reason is None:
            job.cancel_reason = reason
        return job

    def close(self, wait: bool = True) -> None:
        """Cancel every live job (through the loop's hook) and stop the threads."""
        self._stopping = True
        for job in list(self.jobs.values()):
            self.cancel(job.id, "the server stopped")
        self._executor.shutdown(wait=wait, cancel_futures=True)

    # ---- the worker side
    def should_cancel(self, job: Job) -> bool:
        """The loop's cancel hook: asked, stopping, lease lapsed, or past the timeout."""
        now = self.clock()
        if job.cancel_reason is None:
            if self._stopping:
                job.cancel_reason = "the server stopped"
            elif now > job.lease_until:
                job.cancel_reason = f"nobody renewed its lease for {self.config.lease_s:g} s (the page was closed)"
            elif job.deadline is not None and now > job.deadline:
                job.cancel_reason = f"it ran past the server's {self.config.timeout_s:g} s timeout"
        return job.cancel_reason is not None

    def _progress(self, job: Job, progress) -> None:
        job.simulations, job.best_shortfall = progress.simulations, progress.best_shortfall
        job.step, job.met = progress.step, progress.met

    def _run(self, job: Job) -> None:
        if self.should_cancel(job):
            self._finish(job, JobState.CANCELLED)
            return
        job.state, job.deadline = JobState.RUNNING, self.clock() + self.config.timeout_s
        try:
            result = self.runner(job.request, lambda p: self._progress(job, p), lambda: self.should_cancel(job))
        except IcgenError as err:
            job.error = str(err).splitlines()[0]
            self._finish(job, JobState.FAILED)
        except Exception as err:  # a bug: logged with its traceback, shown to the user as one line
            log.exception("sizing job %s failed", job.id)
            job.error = f"internal error ({type(err).__name__}); see the server log"
            self._finish(job, JobState.FAILED)
        else:
            job.result = result
            job.simulations = int(result.get("simulations", job.simulations))
            job.met = bool(result.get("met"))
            job.best_shortfall = result.get("best_shortfall", job.best_shortfall)
            self._finish(job, JobState.CANCELLED if result.get("cancelled") else JobState.DONE)

    def _finish(self, job: Job, state: JobState) -> None:
        job.state = state
        try:
            self.store.save(job.record())
        except OSError as err:
            log.error("could not save job %s: %s", job.id, err)
