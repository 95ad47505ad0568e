"""Bode plots drawn with matplotlib directly (PySpice's own Bode helper breaks on current matplotlib), and Monte Carlo
histograms."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..core.measure import bode  # noqa: E402
from ..core.units import format_si  # noqa: E402
from .simulate import SimResult  # noqa: E402


def plot_bode(result: SimResult, path: str | Path, title: str | None = None) -> Path:
    """Gain and phase against frequency with UGB, PM and GM marked; writes a PNG and returns its path."""
    if result.frequency_hz is None or result.response is None:
        raise ValueError(f"no AC sweep to plot (status {result.status}: {result.reason})")
    f = result.frequency_hz
    gain_db, phase_deg = bode(result.response)
    m = result.metrics
    fig, (ax_gain, ax_phase) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5))
    ax_gain.semilogx(f, gain_db, color="tab:blue")
    ax_gain.axhline(0, color="grey", lw=0.8)
    ax_gain.set_ylabel("gain (dB)")
    ax_phase.semilogx(f, phase_deg, color="tab:orange")
    ax_phase.axhline(-180, color="grey", lw=0.8)
    ax_phase.set_ylabel("phase (deg)")
    ax_phase.set_xlabel("frequency (Hz)")
    if m is not None and m.ugb_hz:
        for ax in (ax_gain, ax_phase):
            ax.axvline(m.ugb_hz, color="tab:green", ls="--", lw=1)
        ax_gain.annotate(f"UGB {format_si(m.ugb_hz, 'Hz')}", (m.ugb_hz, 0), textcoords="offset points",
                         xytext=(6, 10), color="tab:green")
        if m.pm_deg is not None:
            phase_at_ugb = m.pm_deg - 180
            ax_phase.annotate("", xy=(m.ugb_hz, phase_at_ugb), xytext=(m.ugb_hz, -180),
                              arrowprops=dict(arrowstyle="<->", color="tab:green"))
            ax_phase.annotate(f"PM {m.pm_deg:.1f}°", (m.ugb_hz, (phase_at_ugb - 180) / 2), textcoords="offset points",
                              xytext=(6, 0), color="tab:green")
    if m is not None and m.gm_db is not None:
        cross = np.nonzero(phase_deg < -180)[0]
        if cross.size:
            f180 = f[cross[0]]
            ax_gain.annotate("", xy=(f180, -m.gm_db), xytext=(f180, 0), arrowprops=dict(arrowstyle="<->", color="tab:red"))
            ax_gain.annotate(f"GM {m.gm_db:.1f} dB", (f180, -m.gm_db / 2), textcoords="offset points", xytext=(6, 0),
                             color="tab:red")
    if m is not None and m.bw3db_hz:
        ax_gain.axvline(m.bw3db_hz, color="tab:purple", ls=":", lw=1)
        ax_gain.annotate(f"BW3dB {format_si(m.bw3db_hz, 'Hz')}", (m.bw3db_hz, m.gain_db - 3), textcoords="offset points",
                         xytext=(6, -14), color="tab:purple")
    for ax in (ax_gain, ax_phase):
        ax.grid(True, which="both", alpha=0.3)
    heading = title or f"{result.tech}, {result.testbench} testbench"
    if m is not None and m.gain_db is not None:
        heading += f": {m.gain_db:.1f} dB"
    fig.suptitle(heading)
    return _save(fig, path)


def plot_bode_corners(results: list[SimResult], path: str | Path, title: str | None = None) -> Path:
    """Gain and phase of one design at several corners, overlaid (one colour per corner); writes a PNG."""
    drawn = [r for r in results if r.frequency_hz is not None and r.response is not None]
    if not drawn:
        raise ValueError("no corner produced an AC sweep to plot")
    fig, (ax_gain, ax_phase) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(drawn)))
    for result, colour in zip(drawn, colours):
        gain_db, phase_deg = bode(result.response)
        label = result.corner.name if result.corner is not None else result.tech
        ax_gain.semilogx(result.frequency_hz, gain_db, color=colour, lw=1.2, label=label)
        ax_phase.semilogx(result.frequency_hz, phase_deg, color=colour, lw=1.2)
    ax_gain.axhline(0, color="grey", lw=0.8)
    ax_phase.axhline(-180, color="grey", lw=0.8)
    ax_gain.set_ylabel("gain (dB)")
    ax_phase.set_ylabel("phase (deg)")
    ax_phase.set_xlabel("frequency (Hz)")
    ax_gain.legend(fontsize=7, ncol=3)
    for ax in (ax_gain, ax_phase):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title or f"{drawn[0].tech}, {drawn[0].testbench} testbench: {len(drawn)} corners")
    return _save(fig, path)


MC_PANELS = (("offset_v", "input offset VOUT - VIN (mV)", 1e3, ""), ("gain_db", "DC gain (dB)", 1.0, ""),
             ("ugb_hz", "UGB", 1.0, "Hz"), ("pm_deg", "phase margin (deg)", 1.0, ""),
             ("power_w", "power", 1.0, "W"), ("bw3db_hz", "3 dB bandwidth", 1.0, "Hz"))
"""Monte Carlo histogram panels: (figure, axis label, scale, SI unit of the ticks: such a panel turns logarithmic
when its samples span more than a decade); a spec of the same name is drawn on it."""


def plot_monte_carlo(report, path: str | Path, title: str | None = None) -> Path:
    """One histogram per figure of a Monte Carlo report (icgen.sim.montecarlo.MonteCarloReport), over the samples that
    measured it, with the spec's bound as a red line where one is given; writes a PNG."""
    fig, axes = plt.subplots(2, 3, figsize=(11, 6.5))
    specs = report.specs
    from matplotlib.ticker import EngFormatter, NullFormatter

    for ax, (key, label, scale, unit) in zip(axes.flat, MC_PANELS):
        values = np.array(report.offset_v if key == "offset_v" else report.metric(key), dtype=float)
        values = values[np.isfinite(values)] * scale
        if unit:
            values = values[values > 0]
            ax.xaxis.set_major_formatter(EngFormatter(unit=unit, places=2))
        log = bool(unit) and values.size > 0 and values.max() > 10 * values.min()
        if values.size == 0:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        else:
            bins = np.logspace(np.log10(values.min()), np.log10(values.max()) + 1e-9, 25) if log else 25
            ax.hist(values, bins=bins, color="tab:blue", alpha=0.8)
            if log:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(EngFormatter(unit=unit, places=0))
                ax.xaxis.set_minor_formatter(NullFormatter())
            else:
                ax.locator_params(axis="x", nbins=4)
            bound = getattr(specs, key, None) if specs is not None else None
            if bound is not None:
                ax.axvline(bound * scale, color="tab:red", lw=1.5, label="spec")
                ax.legend(fontsize=7)
        ax.set_xlabel(label)
        ax.set_ylabel("samples")
        ax.grid(True, alpha=0.3)
    low, high = report.wilson
    fig.suptitle(title or f"{report.tech} Monte Carlo ({report.mode}): {len(report.passed)} samples, yield "
                          f"{sum(report.passed)}/{len(report.passed)} (Wilson 95 % {100 * low:.1f}-{100 * high:.1f} %)")
    return _save(fig, path)


def mc_plot_path(path: str | Path) -> Path:
    """Where the Monte Carlo histograms go beside a Bode plot: bode.png -> bode-mc.png."""
    path = Path(path)
    return path.with_name(f"{path.stem}-mc{path.suffix or '.png'}")


def _save(fig, path: str | Path) -> Path:
    """Lay the figure out, write it as a PNG (folders made) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
