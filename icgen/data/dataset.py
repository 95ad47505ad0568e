"""A dataset folder and its one owner, `Dataset`: the table, the splits, the metadata, parts, augments, caches.

    data = Dataset("data/ptm65")
    train = data.rows("train", kind="heldout")          # working rows of one split
    designs = designs_of(train)

No other module spells a file name inside a dataset folder; they ask a `Dataset` for the path or the frame.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..core.deck import TEMPLATE
from ..core.design import DESIGN_KEYS, METRIC_KEYS, Design, Metrics
from ..core.io import write_json_atomic, write_parquet_atomic
from ..core.status import Status
from .config import SOURCES, SPLIT_KINDS, SPLIT_NAMES, DatasetError  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from ..sim.simulate import SimResult



class Dataset:
    """The folder of one simulated dataset: designs.parquet, splits.parquet, meta.json, parts/, augment/, caches."""

    TABLE = "designs.parquet"
    SPLITS = "splits.parquet"
    META = "meta.json"
    PARTS = "parts"
    PROGRESS = "progress.json"
    AUGMENT = "augment"
    RUNS = "runs.json"
    SURROGATE = "surrogate"
    CORNERS = "corners"
    STATS = "stats"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"Dataset({str(self.folder)!r})"

    # ---- paths (the only place these names are spelled)
    @property
    def table_path(self) -> Path:
        return self.folder / self.TABLE

    @property
    def splits_path(self) -> Path:
        return self.folder / self.SPLITS

    @property
    def meta_path(self) -> Path:
        return self.folder / self.META

    @property
    def parts_dir(self) -> Path:
        return self.folder / self.PARTS

    @property
    def progress_path(self) -> Path:
        return self.folder / self.PROGRESS

    @property
    def augment_dir(self) -> Path:
        return self.folder / self.AUGMENT

    @property
    def stats_dir(self) -> Path:
        return self.folder / self.STATS

    def augment_run_dir(self, run_id: str) -> Path:
        return self.augment_dir / run_id

    def augment_runs(self) -> list[dict]:
        """The augmentation runs in the order they were started (augment/runs.json)."""
        path = self.augment_dir / self.RUNS
        return json.loads(path.read_text()) if path.is_file() else []

    def write_augment_runs(self, runs: list[dict]) -> Path:
        self.augment_dir.mkdir(parents=True, exist_ok=True)
        return write_json_atomic(runs, self.augment_dir / self.RUNS)

    def surrogate_dir(self, kind: str = "heldout") -> Path:
        """Where the simulator surrogate fitted on this split kind's training rows is cached."""
        return self.folder / self.SURROGATE / kind

    def corner_table_path(self, kind: str, key: str) -> Path:
        """Where the training rows' worst-corner table of one corner set is cached (icgen.sizing.corner_table)."""
        return self.folder / self.CORNERS / f"{kind}-{key}.parquet"

    # ---- what is there
    @property
    def has_table(self) -> bool:
        return self.table_path.is_file()

    @property
    def has_splits(self) -> bool:
        return self.splits_path.is_file()

    def require(self, splits: bool = True) -> "Dataset":
        """This dataset, or a DatasetError that says which command makes what is missing."""
        if not self.folder.is_dir():
            raise DatasetError(f"{self.folder}: no such folder; give a dataset folder (icgen data generate makes one)")
        if not self.has_table:
            raise DatasetError(f"{self.folder}: no {self.TABLE}; run icgen data generate --out {self.folder} first")
        if splits and not self.has_splits:
            raise DatasetError(f"{self.folder}: no {self.SPLITS}; run icgen data split --data {self.folder} first")
        return self

    # ---- frames (read once, then cached; `reload()` after writing)
    @cached_property
    def table(self) -> pd.DataFrame:
        """Every simulated design with its metrics, status and health."""
        return self._read(self.require(splits=False).table_path, self.TABLE_COLUMNS)

    @cached_property
    def splits(self) -> pd.DataFrame:
        """Columns index, random, heldout (train | validation | test | ""), cluster."""
        return self._read(self.require().splits_path, ("index", *SPLIT_KINDS))

    TABLE_COLUMNS = ("index", *DESIGN_KEYS, *METRIC_KEYS, "status", "healthy", "working")
    """Columns every table has (and more)."""

    def _read(self, path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
        """A Parquet file of this folder, or a DatasetError for one that is unreadable or lacks columns."""
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises its own types (ArrowInvalid, ...) for a damaged file
            raise DatasetError(f"{path}: not a readable Parquet table ({type(err).__name__}); regenerate it with "
                               f"icgen data generate") from err
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DatasetError(f"{path}: lacks the column(s) {', '.join(missing)}; regenerate it with icgen data "
                               f"generate")
        return frame

    @property
    def meta(self) -> dict:
        """meta.json, or a DatasetError for a missing or damaged one."""
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError) as err:
            raise DatasetError(f"{self.meta_path}: missing or not JSON; regenerate the dataset with icgen data "
                               f"generate") from err
        if not isinstance(meta, dict):
            raise DatasetError(f"{self.meta_path}: not a JSON object; regenerate the dataset")
        return meta

    @property
    def technology(self) -> dict:
        """The technology the designs were simulated on, as meta.json records it (a v2 dataset: its v1's); {} when
        it records none."""
        meta = self.meta
        recorded = meta.get("technology") or (meta.get("v1_meta") or {}).get("technology") or {}
        return recorded if isinstance(recorded, dict) else {}

    @property
    def technology_name(self) -> str | None:
        """The name of that technology (ptm65), or None when meta.json records none."""
        name = self.technology.get("name")
        return str(name) if name else None

    def reload(self) -> "Dataset":
        for name in ("table", "splits"):
            self.__dict__.pop(name, None)
        return self

    def split_index(self, split: str, kind: str = "heldout") -> set[int]:
        """Row indices of one split of one split kind."""
        if kind not in self.splits.columns or kind not in SPLIT_KINDS:
            raise DatasetError(f"{{split_kind}} {kind!r}: {self.splits_path} has {', '.join(SPLIT_KINDS)}")
        return set(self.splits.loc[self.splits[kind] == split, "index"])

    def rows(self, split: str, kind: str = "heldout", working: bool = True) -> pd.DataFrame:
        """The rows of split `split` of split kind `kind` (only working ones unless working=False)."""
        rows = self.table[self.table["index"].isin(self.split_index(split, kind))]
        return rows[rows["working"]] if working else rows

    def training_rows(self, kind: str = "heldout") -> pd.DataFrame:
        """Every row of the training split, working or not (what retrieval and the surrogate see)."""
        return self.rows("train", kind, working=False)

    # ---- writing
    def write_table(self, table: pd.DataFrame) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.__dict__.pop("table", None)
        return write_parquet_atomic(table, self.table_path)

    def write_splits(self, splits: pd.DataFrame) -> Path:
        self.__dict__.pop("splits", None)
        return write_parquet_atomic(splits, self.splits_path)

    def write_meta(self, meta: dict) -> Path:
        return write_json_atomic(meta, self.meta_path)


def part_files(parts_dir: Path) -> list[tuple[int, int, Path]]:
    """Finished parts as (start, end, path), checked to be contiguous from 0."""
    parts = []
    for path in sorted(parts_dir.glob("part-*.parquet")):
        start, end = (int(x) for x in path.stem.split("-")[1:3])
        parts.append((start, end, path))
    expected = 0
    for start, end, path in parts:
        if start != expected:
            raise RuntimeError(f"{parts_dir} has a gap before {path.name}; delete {parts_dir.parent} and generate again")
        expected = end
    return parts


def with_augments(base: pd.DataFrame, data: Dataset) -> pd.DataFrame:
    """The base table plus every finished augmentation part, in run order, without duplicate designs."""
    frames = [base]
    for run in data.augment_runs():
        frames += [pd.read_parquet(p) for _, _, p in part_files(data.augment_run_dir(run["id"]) / Dataset.PARTS)]
    table = pd.concat(frames, ignore_index=True)
    return table.drop_duplicates(subset=list(DESIGN_KEYS), keep="first").reset_index(drop=True)


def load_dataset(path: str | Path) -> pd.DataFrame:
    """The table of a dataset folder (or a Parquet file)."""
    path = Path(path)
    return Dataset(path).table if path.is_dir() else pd.read_parquet(path)


def design_of(row) -> Design:
    """The design of one table row."""
    return Design(**{k: float(row[k]) for k in DESIGN_KEYS})


def designs_of(table: pd.DataFrame) -> list[Design]:
    """The designs of a table's rows, in order."""
    return [design_of(row) for _, row in table.iterrows()]


def metrics_of(row) -> Metrics:
    """The metrics of one table row (NaN means absent)."""
    return Metrics(**{k: (None if (row[k] is None or pd.isna(row[k])) else float(row[k])) for k in METRIC_KEYS})


def result_row(index: int, result: SimResult, source: str) -> dict:
    """One table row: design, metrics (NaN when absent), status, reason, health summary and per-device regions."""
    row: dict = {"index": index}
    row.update(result.design.to_dict())
    metrics = result.metrics.to_dict() if result.metrics else {}
    for key in METRIC_KEYS:
        value = metrics.get(key)
        row[key] = float("nan") if value is None else float(value)
    row["status"] = str(result.status)
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
    row["working"] = bool(result.status == Status.OK and row["healthy"])
    row["source"] = source
    if getattr(result, "signoff", None) is not None:  # dataset v2: every sign-off figure as a column
        for key, value in result.signoff.to_dict().items():
            if key == "problems":
                row["signoff_problems"] = "; ".join(value)
            elif key == "zero_half_plane":
                row[key] = value or ""
            else:
                row[key] = float("nan") if value is None else float(value)
    return row


def dataset_technology(data: Dataset):
    """The technology a dataset was simulated on: its own descriptor when that file is still there (a user's
    technology, named only there), else the built-in technology of the recorded name (ptm65 when none is recorded)."""
    from ..core.tech import load_technology, resolve_portable_path

    technology = data.technology
    descriptor = resolve_portable_path(technology["descriptor"]) if technology.get("descriptor") else None
    return load_technology(descriptor if descriptor and descriptor.is_file() else technology.get("name", "ptm65"))
