"""Monte Carlo mismatch: per-device threshold offsets with Pelgrom's spread, sigma(dVth) = A_VT / sqrt(W L).

    samples = draw_offsets(design, tech, n=200, seed=0)   # one {device: dVth} per sample, reproducible
    low, high = wilson_interval(passed, n)                 # the yield's 95 % interval

A_VT comes from the technology's descriptor (`pelgrom_avt_v_m: {nmos: ..., pmos: ...}`, V*m); an offset is applied
as BSIM4's instance parameter `delvto` (added to the model's vth0; for a PMOS a positive one lowers |Vth|).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from .deck import TEMPLATE
from .design import Design
from .errors import IcgenError
from .tech import Technology

PELGROM_KEY = "pelgrom_avt_v_m"
"""The descriptor key holding A_VT per device type, in V*m (3.5 mV*um is 3.5e-9)."""
WILSON_Z = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""
MAX_SAMPLES = 100_000
"""The most Monte Carlo samples one run may draw."""


class MismatchError(IcgenError):
    """A technology without mismatch coefficients, or a Monte Carlo request that cannot run."""


def pelgrom_avt(tech: Technology) -> dict[str, float]:
    """A_VT (V*m) for the template's device types `nch` and `pch`, from the descriptor's `pelgrom_avt_v_m`."""
    raw = tech.extra.get(PELGROM_KEY)
    if not isinstance(raw, Mapping) or set(raw) != {"nmos", "pmos"}:
        raise MismatchError(f"{tech.name} has no {PELGROM_KEY}: {{nmos: A_VT, pmos: A_VT}} (V*m, e.g. 3.5e-9 for "
                            f"3.5 mV*um) in its descriptor; Monte Carlo mismatch needs it")
    out = {}
    for kind, model in (("nmos", "nch"), ("pmos", "pch")):
        value = raw[kind]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e-6:
            raise MismatchError(f"{tech.name}: {PELGROM_KEY}.{kind} {value!r} is not an A_VT in V*m; use e.g. 3.5e-9")
        out[model] = float(value)
    return out


def sigma_vth(avt_v_m: float, width_m: float, length_m: float) -> float:
    """Pelgrom's law: the standard deviation of one device's threshold offset, A_VT / sqrt(W L)."""
    return avt_v_m / math.sqrt(width_m * length_m)


def device_sigmas(design: Design, tech: Technology) -> dict[str, float]:
    """sigma(dVth) of each device of the template (M1 ... M7) at the design's sizes."""
    avt, values = pelgrom_avt(tech), design.to_dict()
    return {d.name: sigma_vth(avt[d.model], values[d.width_key], values[d.length_key]) for d in TEMPLATE}


def draw_offsets(design: Design, tech: Technology, n: int, seed: int = 0) -> tuple[dict[str, float], ...]:
    """`n` samples of independent Gaussian threshold offsets, one {device: dVth in V} each; the same seed gives the
    same samples (numpy's default generator), and sample i does not depend on n."""
    import numpy as np

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise MismatchError(f"{{mc}} {n!r} is not a number of samples; use 1 to {MAX_SAMPLES}, e.g. 200")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MismatchError(f"{{seed}} {seed!r} is not a seed; use 0 or more")
    sigmas = device_sigmas(design, tech)
    names = list(sigmas)
    normal = np.random.default_rng(seed).standard_normal((n, len(names)))
    scale = np.array([sigmas[name] for name in names])
    return tuple({name: float(v) for name, v in zip(names, row)} for row in normal * scale)


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default): sound at 0 and n successes too."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
