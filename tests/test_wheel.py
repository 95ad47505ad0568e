"""The wheel carries everything `icgen size` needs (modules, technology files, the shipped dataset and its surrogate,
the embedded model), and an installed copy finds them inside itself, from any folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a clean copy: setuptools' build/ folder in a checkout can hold stale files
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                  "runs", "out", "parts"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(out)], capture_output=True, text=True, cwd=out)
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("icgen-*.whl")
    return path


def test_the_wheel_holds_every_module_and_the_shipped_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "icgen").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    shipped = ["icgen/spice/ptm65.yaml", "icgen/spice/ptm65.lib", "icgen/datasets/ptm65/designs.parquet",
               "icgen/datasets/ptm65/splits.parquet", "icgen/datasets/ptm65/meta.json",
               "icgen/datasets/ptm65/surrogate/heldout/surrogate.pt", "icgen/datasets/ptm65-v2/designs.parquet",
               "icgen/datasets/ptm65-v2/surrogate/heldout/surrogate.pt", "icgen/configs/smollm2-135m-cpu.yaml",
               "icgen/models/smollm2-135m-cpu/config.yaml",
               "icgen/models/smollm2-135m-cpu/adapter/adapter_model.safetensors",
               "icgen/models/smollm2-135m-cpu/adapter/adapter_config.json"]
    assert not [s for s in shipped if s not in names], [s for s in shipped if s not in names]
    for folder in ("ptm65-v2", "sky130"):  # the worst-corner tables: without them the first --corners run rebuilds one
        tables = sorted(p.name for p in (ROOT / "data" / folder / "corners").glob("*"))
        assert tables and all(f"icgen/datasets/{folder}/corners/{t}" in names for t in tables), folder
    data = zipfile.ZipFile(wheel).read("icgen/datasets/ptm65/splits.parquet")
    assert data == (ROOT / "data" / "ptm65" / "splits.parquet").read_bytes()  # the splits are data, copied as is


def test_an_installed_wheel_finds_its_shipped_files_inside_itself(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    probe = ("import icgen.core.paths as p; from icgen.data.dataset import Dataset; from icgen.core.tech import "
             "load_technology; d = Dataset(p.DEFAULT_DATA_DIR); print(p.DEFAULT_DATA_DIR); print(p.DEFAULT_MODEL_DIR); "
             "print(load_technology('ptm65').model_file); print(len(d.training_rows()))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    data_dir, model_dir, model_file, rows = run.stdout.split()
    for path in (data_dir, model_dir, model_file):
        assert Path(path).is_relative_to(target), path
    assert int(rows) > 7000
