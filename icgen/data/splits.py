"""Train / validation / test splits of the working designs, written once beside the dataset.

Two splits: `random` (85/5/10 of working rows: 7480 / 440 / 880 train / validation / test in the shipped
dataset) and `heldout`, whose test set is whole clusters of the metric space (k-means on gain, log UGB, PM,
log power, log BW), so evaluation on it measures generalisation to specs the model never saw nearby. Rows
that are not working get no split.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.vq import kmeans2
from sklearn.preprocessing import StandardScaler

from .dataset import SPLIT_KINDS, SPLIT_NAMES, Dataset, DatasetError


def metric_features(table: pd.DataFrame) -> np.ndarray:
    """Standardised metric-space coordinates: gain dB, log10 UGB, PM, log10 power, log10 BW3dB."""
    cols = np.column_stack([table["gain_db"], np.log10(table["ugb_hz"]), table["pm_deg"],
                            np.log10(table["power_w"]), np.log10(table["bw3db_hz"])])
    standard = StandardScaler().fit_transform(cols)  # NaNs are left out of the fit and kept
    return np.nan_to_num(standard, nan=0.0)  # a missing BW3dB (gain under 3 dB) sits at the centre


def make_splits(table: pd.DataFrame, seed: int = 0, test_fraction: float = 0.10, validation_fraction: float = 0.05,
                clusters: int = 30) -> pd.DataFrame:
    """Columns index, random, heldout (train | validation | test | "" for rows that are not working)."""
    rng = np.random.default_rng(seed)
    working = table.index[table["working"].to_numpy()]
    n = len(working)
    out = pd.DataFrame({"index": table["index"].to_numpy(), "random": "", "heldout": "", "cluster": -1})
    order = rng.permutation(n)
    n_test, n_val = int(round(test_fraction * n)), int(round(validation_fraction * n))
    random_split = np.array(["train"] * n, dtype=object)
    random_split[order[:n_test]] = "test"
    random_split[order[n_test:n_test + n_val]] = "validation"
    out.loc[working, "random"] = random_split
    features = metric_features(table.loc[working])
    _, labels = kmeans2(features, clusters, seed=int(seed), minit="++")
    heldout = np.array(["train"] * n, dtype=object)
    in_test = 0
    for cluster in rng.permutation(clusters):
        if in_test >= n_test:
            break
        members = labels == cluster
        if members.sum() == 0 or in_test + members.sum() > 1.5 * n_test:
            continue  # skip clusters that would overshoot the test size by far
        heldout[members] = "test"
        in_test += int(members.sum())
    rest = np.nonzero(heldout == "train")[0]
    heldout[rng.choice(rest, size=n_val, replace=False)] = "validation"
    out.loc[working, "heldout"] = heldout
    out.loc[working, "cluster"] = labels
    return out


def write_splits(data: Dataset, seed: int = 0, force: bool = False) -> dict[str, dict[str, int]]:
    """Write the splits beside the table (once: `force` to overwrite); returns rows per split of each kind."""
    if data.has_splits and not force:
        raise DatasetError(f"{data.splits_path} exists; splits are written once (use --force to overwrite)")
    splits = make_splits(data.table, seed=seed)
    data.write_splits(splits)
    counts = {kind: splits[kind].value_counts() for kind in SPLIT_KINDS}
    return {kind: {name: int(counts[kind].get(name, 0)) for name in SPLIT_NAMES} for kind in ("random", "heldout")}
