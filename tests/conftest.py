import shutil

import pytest

from icgen.tech import load_technology


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
