"""Bode plots drawn with matplotlib directly (PySpice's own Bode helper breaks on current matplotlib)."""
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


def _save(fig, path: str | Path) -> Path:
    """Lay the figure out, write it as a PNG (folders made) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
