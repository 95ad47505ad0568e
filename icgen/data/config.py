"""What a dataset is made of, as light values the CLI can import: the generate config and the split names."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import ConfigError, IcgenError


class DatasetError(IcgenError):
    """A dataset folder that lacks what a command needs."""


SPLIT_KINDS = ("heldout", "random")
"""heldout: test = whole clusters of the metric space; random: rows drawn at random."""
SPLIT_NAMES = ("train", "validation", "test")
SOURCES = ("sobol", "sweep", "model", "user")
"""Where a row's design came from."""


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
            raise ConfigError("{n_working} must be at least 1")
        if not (1 <= self.chunk <= 1_000_000):
            raise ConfigError("{chunk} must be between 1 and 1000000")
