"""The server's settings: one frozen dataclass, the only place its defaults are written (the CLI reads them)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import ConfigError
from ..core.parse import MAX_ANSWER_BYTES
from ..sizing.config import MAX_BUDGET, SizeConfig

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Host names a loopback server answers to (and so the only origins it takes a POST from)."""


@dataclass(frozen=True)
class ServeConfig:
    """Where the server listens, how many sizing jobs it takes, and the limits on every request."""

    host: str = "127.0.0.1"
    """Address to listen on: loopback by default, so only this machine reaches the page."""
    port: int = 8000
    """TCP port (0: any free one)."""
    jobs: int = 2
    """Sizing jobs that run at once, each on its own simulator pool."""
    queue: int = 8
    """Jobs that may wait beyond those running; one more gets 429."""
    sim_workers: int = 1
    """Simulator processes per running job."""
    results: str = "out/serve"
    """Folder of finished jobs (one sub-folder each), reloaded when the server starts again."""
    lease_s: float = 60.0
    """A job is cancelled when nobody renewed its lease (the page does, while open) for this long."""
    timeout_s: float = 900.0
    """A running job is cancelled after this long."""
    max_body_bytes: int = 4 * MAX_ANSWER_BYTES
    """Largest request body (a pasted answer is at most 64 KiB; JSON escaping can grow it); larger: 413."""
    default_budget: int = SizeConfig.budget
    """Simulations a job spends when the request does not say."""
    max_budget: int = 2000
    """The most simulations one web request may ask for."""
    poll_s: float = 0.5
    """How often the page asks for progress."""
    reports: str = "bench/results"
    """Folder of eval runs (one sub-folder each); the report page shows the newest report.md under it."""
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    """Host header names served (against DNS rebinding); the listening host is added when it is not a wildcard."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{{port}} {self.port} is not a TCP port; use 1 to 65535 (or 0 for any free one)")
        if self.jobs < 1 or self.queue < 0 or self.sim_workers < 1:
            raise ConfigError(f"{{jobs}} {self.jobs}, {{sim_workers}} {self.sim_workers} and {{queue}} {self.queue}: "
                              f"use at least 1 job and 1 worker, and a queue of 0 or more")
        if self.lease_s <= 0 or self.timeout_s <= 0 or self.poll_s <= 0:
            raise ConfigError("{lease_s}, {timeout_s} and {poll_s} must be positive seconds")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"{{max_body_bytes}} {self.max_body_bytes} is too small for a request; use 1024 or more")
        if not 1 <= self.default_budget <= self.max_budget <= MAX_BUDGET:
            raise ConfigError(f"{{default_budget}} {self.default_budget} and {{max_budget}} {self.max_budget}: use "
                              f"1 <= default <= max <= {MAX_BUDGET}")

    @property
    def capacity(self) -> int:
        """Jobs queued or running at most; the next one gets 429."""
        return self.jobs + self.queue

    def served_hosts(self) -> frozenset[str]:
        """Host names (without port) this server answers to."""
        extra = () if self.host in ("0.0.0.0", "::", "") else (self.host.strip("[]"),)
        return frozenset(h.lower() for h in (*self.allowed_hosts, *extra))
