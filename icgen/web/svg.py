"""The Bode plot as an SVG drawn from the simulated points: gain and phase against log frequency, no matplotlib.

Only numbers and fixed labels go into the markup, so the SVG is safe to serve and to show in an <img>.
"""
from __future__ import annotations

import math

WIDTH, HEIGHT = 720, 480
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, GAP, MARGIN_BOTTOM = 64, 20, 20, 36, 44


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low or 1.0
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _decade_label(exponent: int) -> str:
    prefix = {0: "", 3: "k", 6: "M", 9: "G", 12: "T"}.get(exponent - exponent % 3)
    return f"{10 ** (exponent % 3)}{prefix}" if prefix is not None else f"1e{exponent}"


def bode_svg(frequency_hz: list[float], gain_db: list[float], phase_deg: list[float],
             title: str = "Bode plot") -> str:
    """Two panels (gain in dB, phase in degrees) sharing a log-frequency axis; points that are not finite are left
    out. Raises ValueError for an empty or mismatched sweep."""
    points = [(f, g, p) for f, g, p in zip(frequency_hz, gain_db, phase_deg, strict=True)
              if f > 0 and math.isfinite(f) and math.isfinite(g) and math.isfinite(p)]
    if len(points) < 2:
        raise ValueError("a Bode plot needs at least two finite points")
    x_low, x_high = math.log10(points[0][0]), math.log10(points[-1][0])
    if x_high <= x_low:
        raise ValueError("the sweep's frequencies must rise")
    panel_h = (HEIGHT - MARGIN_TOP - GAP - MARGIN_BOTTOM) / 2
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT

    def x_of(f: float) -> float:
        return MARGIN_LEFT + (math.log10(f) - x_low) / (x_high - x_low) * plot_w

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{WIDTH / 2:.0f}" y="13" text-anchor="middle" font-size="12">{_escape(title)}</text>']
    for panel, (index, label, colour, marker) in enumerate(((1, "gain (dB)", "#1f77b4", 0.0),
                                                            (2, "phase (deg)", "#ff7f0e", -180.0))):
        top = MARGIN_TOP + panel * (panel_h + GAP)
        values = [pt[index] for pt in points]
        low, high = min(values + [marker]), max(values + [marker])
        pad = (high - low) * 0.05 or 1.0
        low, high = low - pad, high + pad

        def y_of(v: float, top=top, low=low, high=high) -> float:
            return top + (high - v) / (high - low) * panel_h

        out.append(f'<rect x="{MARGIN_LEFT}" y="{top:.1f}" width="{plot_w}" height="{panel_h:.1f}" fill="none" '
                   f'stroke="#999"/>')
        for tick in _ticks(low, high):
            y = y_of(tick)
            out.append(f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                       f'stroke="#eee"/><text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
        for exponent in range(math.ceil(x_low), math.floor(x_high) + 1):
            x = x_of(10.0 ** exponent)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{top + panel_h:.1f}" stroke="#eee"/>')
            if panel == 1:
                out.append(f'<text x="{x:.1f}" y="{top + panel_h + 16:.1f}" text-anchor="middle">'
                           f'{_decade_label(exponent)}</text>')
        y = y_of(marker)
        out.append(f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888" '
                   f'stroke-dasharray="4 3"/>')
        path = " ".join(f"{'M' if i == 0 else 'L'}{x_of(pt[0]):.1f},{y_of(pt[index]):.1f}"
                        for i, pt in enumerate(points))
        out.append(f'<path class="trace" d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        out.append(f'<text transform="translate(14,{top + panel_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
                   f'{label}</text>')
    out.append(f'<text x="{MARGIN_LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">frequency (Hz)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def bar_svg(labels: list[str], values: list[float], title: str = "", unit: str = "") -> str:
    """Horizontal bars, one per label, scaled to the largest value; labels and title are escaped."""
    from html import escape

    if len(labels) != len(values) or not labels:
        raise ValueError("bar_svg needs one value per label, and at least one")
    row_h, label_w, bar_w, value_w = 26, 170, 420, 110
    top = 30 if title else 8
    height = top + row_h * len(labels) + 8
    width = label_w + bar_w + value_w
    largest = max((v for v in values if math.isfinite(v)), default=0.0) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    if title:
        parts.append(f'<text x="8" y="20" font-weight="bold">{escape(title)}</text>')
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + i * row_h
        length = bar_w * max(0.0, value) / largest if math.isfinite(value) else 0.0
        parts.append(f'<text x="8" y="{y + 17}">{escape(str(label))}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{length:.1f}" height="{row_h - 8}" fill="#4a7ab5"/>')
        shown = f"{value:g}" if math.isfinite(value) else "—"
        parts.append(f'<text x="{label_w + length + 6:.1f}" y="{y + 17}">{escape(shown + unit)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
