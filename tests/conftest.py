import shutil

import pytest

from icgen.core.paths import DATASETS_DIR
from icgen.core.tech import load_technology

SHIPPED = DATASETS_DIR / "ptm65"  # the shipped dataset v1, its splits and its surrogate (the default is v2)


def pytest_collection_modifyitems(config, items):
    """Tests marked ngspice need the simulator; CI installs it, so a missing one is a failure there."""
    import os

    if shutil.which("ngspice") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="ngspice not installed (run scripts/setup.sh)")
    for item in items:
        if "ngspice" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ptm65():
    return load_technology("ptm65")


@pytest.fixture(scope="session")
def shipped_data():
    """The shipped ptm65 dataset: (every design, the splits, the heldout-train rows)."""
    from icgen.data.dataset import Dataset

    data = Dataset(SHIPPED)
    return data.table, data.splits, data.training_rows("heldout")


SUMMARY: list[str] = []
"""Figures tests measured (fuzz counts, time ratios): printed at the end of every run, `-q` included."""


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("icgen: figures measured by the tests")
        for line in SUMMARY:
            terminalreporter.write_line(line)
