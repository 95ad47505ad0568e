"""Look at a dataset: counts, yield, distributions, correlations, figures and a markdown summary.

    icgen data stats --data data/ptm65 --out data/ptm65/stats
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..core.design import DESIGN_KEYS, METRIC_KEYS, METRIC_UNITS, VARIABLE_BY_KEY  # noqa: E402
from ..core.score import LOG_METRICS
from ..core.status import Status


def _save(fig, path: Path) -> Path:
    """Lay out, write as PNG and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def counts(table: pd.DataFrame) -> dict[str, int]:
    """Rows per status, and working (ok and healthy) rows."""
    out = {"simulated": len(table), "working": int(table["working"].sum())}
    out.update({str(k): int(v) for k, v in table["status"].value_counts().items()})
    out["ok_but_unhealthy"] = int(((table["status"] == Status.OK) & ~table["working"]).sum())
    return out


def flag_counts(table: pd.DataFrame) -> pd.Series:
    """How often each health flag occurs among amplifiers (status ok), e.g. 'M6 in triode'."""
    flags = table.loc[table["status"] == Status.OK, "flags"].fillna("")
    kinds = flags.str.split("; ").explode()
    kinds = kinds[kinds != ""].str.replace(r" \(.*\)$", "", regex=True)
    return kinds.value_counts()


def transformed(table: pd.DataFrame) -> pd.DataFrame:
    """Working rows with log10 of decade-spanning variables and metrics (the scale a designer reads them on)."""
    work = table[table["working"]].copy()
    for key in DESIGN_KEYS:
        if VARIABLE_BY_KEY[key].log_scale:
            work[key] = np.log10(work[key])
    for key in LOG_METRICS:
        work[key] = np.log10(work[key])
    return work


def correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation of each design variable (rows) with each metric (columns), working rows."""
    work = table[table["working"]]
    return work[list(DESIGN_KEYS) + list(METRIC_KEYS)].corr(method="spearman").loc[list(DESIGN_KEYS), list(METRIC_KEYS)]


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per-metric distribution over working rows: min, 5 %, median, 95 %, max."""
    work = table[table["working"]]
    rows = {}
    for key in METRIC_KEYS:
        values = work[key].dropna()
        rows[key] = {"unit": METRIC_UNITS[key], "present": len(values), "min": values.min(),
                     "p5": values.quantile(0.05), "median": values.median(), "p95": values.quantile(0.95),
                     "max": values.max()}
    return pd.DataFrame(rows).T


def plot_histograms(table: pd.DataFrame, columns: tuple[str, ...], path: Path, title: str) -> Path:
    work = transformed(table)
    n = len(columns)
    cols = 4
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(14, 2.8 * ((n + cols - 1) // cols)))
    for ax, key in zip(axes.flat, columns):
        ax.hist(work[key].dropna(), bins=40, color="tab:blue", alpha=0.8)
        log = key in LOG_METRICS or (key in VARIABLE_BY_KEY and VARIABLE_BY_KEY[key].log_scale)
        ax.set_title(f"log10 {key}" if log else key, fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title)
    return _save(fig, path)


def plot_scatter(table: pd.DataFrame, path: Path) -> Path:
    """Metric against metric for working rows: the trade-offs a designer navigates."""
    work = table[table["working"]]
    pairs = [("ugb_hz", "gain_db"), ("ugb_hz", "pm_deg"), ("power_w", "ugb_hz"), ("gain_db", "pm_deg"),
             ("bw3db_hz", "gain_db"), ("pm_deg", "gm_db")]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for ax, (x, y) in zip(axes.flat, pairs):
        ax.scatter(work[x], work[y], s=2, alpha=0.3, color="tab:blue")
        if x in LOG_METRICS:
            ax.set_xscale("log")
        if y in LOG_METRICS:
            ax.set_yscale("log")
        ax.set_xlabel(f"{x}")
        ax.set_ylabel(f"{y}")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{len(work)} working designs: metric against metric")
    return _save(fig, path)


def plot_correlations(table: pd.DataFrame, path: Path) -> Path:
    corr = correlations(table)
    fig, ax = plt.subplots(figsize=(7, 7))
    image = ax.imshow(corr.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr.columns)), corr.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(corr.index)), corr.index)
    for i in range(corr.shape[0]):
        for j in range(corr.shape[1]):
            ax.text(j, i, f"{corr.iat[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.7, label="Spearman correlation")
    ax.set_title("design variable vs metric (working designs)")
    return _save(fig, path)


def plot_status(table: pd.DataFrame, path: Path) -> Path:
    c = counts(table)
    labels = ["working", "ok_but_unhealthy", "not_amplifier", "failed"]
    values = [c.get(k, 0) for k in labels]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4))
    ax1.bar(labels, values, color=["tab:green", "tab:orange", "tab:red", "black"])
    for i, v in enumerate(values):
        ax1.text(i, v, f"{v}\n{v / max(len(table), 1):.1%}", ha="center", va="bottom", fontsize=8)
    ax1.set_title(f"{len(table)} simulated designs")
    ax1.set_ylim(0, max(values) * 1.2)
    flags = flag_counts(table).head(10)
    ax2.barh(flags.index[::-1], flags.to_numpy()[::-1], color="tab:orange")
    ax2.set_title("health flags among amplifiers")
    return _save(fig, path)


SIGNOFF_COLUMNS = (("buffer_bw_hz", True), ("buffer_peaking_db", False), ("settling_1pct_s", True),
                   ("overshoot_pct", False), ("slew_rise_v_per_s", True), ("cmrr_db", False), ("psrr_plus_db", False),
                   ("psrr_minus_db", False), ("offset_v", False), ("noise_1mhz_v_rthz", True), ("area_m2", True),
                   ("buffer_over_ugb", True))
"""Sign-off columns of a dataset v2 shown as distributions (name, log scale)."""


def with_buffer_ratio(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(buffer_over_ugb=table["buffer_bw_hz"] / table["ugb_hz"]) if "buffer_bw_hz" in table else table


def signoff_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per sign-off figure over working rows: present, 5 %, median, 95 %."""
    work = with_buffer_ratio(table[table["working"]])
    rows = {}
    for key, _ in SIGNOFF_COLUMNS:
        values = work[key].dropna()
        rows[key] = {"present": len(values), "p5": values.quantile(0.05), "median": values.median(),
                     "p95": values.quantile(0.95)}
    return pd.DataFrame(rows).T


def plot_signoff(table: pd.DataFrame, path: Path) -> Path:
    """Distributions of the sign-off figures of working designs (dataset v2)."""
    work = with_buffer_ratio(table[table["working"]])
    fig, axes = plt.subplots(3, 4, figsize=(14, 8.4))
    for ax, (key, log) in zip(axes.flat, SIGNOFF_COLUMNS):
        values = work[key].dropna()
        values = np.log10(values[values > 0]) if log else values
        ax.hist(values, bins=40, color="tab:green", alpha=0.8)
        ax.set_title(f"log10 {key}" if log else key, fontsize=10)
    fig.suptitle(f"sign-off figures ({len(work)} working designs)")
    return _save(fig, path)


def write_report(table: pd.DataFrame, out: str | Path, name: str = "dataset") -> Path:
    """Figures and summary.md in `out`; returns the summary's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "status.png": plot_status(table, out / "status.png"),
        "variables.png": plot_histograms(table, DESIGN_KEYS, out / "variables.png", "design variables (working designs)"),
        "metrics.png": plot_histograms(table, METRIC_KEYS, out / "metrics.png", "metrics (working designs)"),
        "scatter.png": plot_scatter(table, out / "scatter.png"),
        "correlations.png": plot_correlations(table, out / "correlations.png"),
    }
    if "buffer_bw_hz" in table:
        figures["signoff.png"] = plot_signoff(table, out / "signoff.png")
    c = counts(table)
    lines = [f"# {name}: summary", "", "| what | rows | share |", "|---|---|---|"]
    for key in ("simulated", "working", "ok_but_unhealthy", "not_amplifier", "failed"):
        lines.append(f"| {key} | {c.get(key, 0)} | {c.get(key, 0) / max(c['simulated'], 1):.1%} |")
    lines += ["", "Working = status ok (gain above 0 dB, a unity-gain crossing, positive PM) and a healthy operating "
              "point (output not railed, every device saturated).", "", "## Health flags among amplifiers", "",
              "| flag | amplifiers |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in flag_counts(table).head(12).items()]
    lines += ["", "## Metrics of working designs", "", summary_table(table).to_markdown(floatfmt=".4g"), "",
              "## Strongest variable-metric correlations (Spearman, working designs)", ""]
    corr = correlations(table).stack().sort_values(key=np.abs, ascending=False).head(10)
    lines += [f"- {var} vs {metric}: {value:+.2f}" for (var, metric), value in corr.items()]
    if "buffer_bw_hz" in table:
        lines += ["", "## Sign-off figures of working designs", "", signoff_summary(table).to_markdown(floatfmt=".4g")]
    lines += ["", "## Figures", ""] + [f"![{k}]({k})" for k in figures]
    if "source" in table:
        lines += ["", "## Sources", "", table["source"].value_counts().to_markdown()]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
