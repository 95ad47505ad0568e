"""Monte Carlo mismatch, in the mode a technology's descriptor names (`mismatch:`, looked up in `MISMATCH_MODES`).

    samples = mismatch_mode(tech).samples(design, tech, n=200, seed=0)   # reproducible; sample i does not depend on n
    low, high = wilson_interval(passed, n)                                # the yield's 95 % interval

`pelgrom` (the default, ptm65): icgen draws per-device threshold offsets, sigma(dVth) = A_VT / sqrt(W L) with A_VT from
the descriptor's `pelgrom_avt_v_m`, applied as BSIM4's instance `delvto` (for a PMOS a positive one lowers |Vth|).
`models` (sky130): the model files' own per-instance agauss() mismatch terms, switched on by the descriptor's
`mismatch_params` and drawn by ngspice from a per-sample seed (`.options seed=N`) that icgen derives.
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from .deck import NGSPICE_SEED_MAX, TEMPLATE
from .design import Design
from .errors import IcgenError
from .tech import Technology

PELGROM_KEY = "pelgrom_avt_v_m"
"""The descriptor key holding A_VT per device type, in V*m (3.5 mV*um is 3.5e-9)."""
WILSON_Z = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""
MAX_SAMPLES = 100_000
"""The most Monte Carlo samples one run may draw."""
MODE_KEY = "mismatch"
"""The descriptor key naming the technology's mismatch mode (a key of `MISMATCH_MODES`; absent: pelgrom)."""
SWITCH_KEY = "mismatch_params"
"""The descriptor key of the `models` mode: {param: value} that turn the models' mismatch on (sky130:
{MC_MM_SWITCH: 1}), each overriding one of the descriptor's `params`."""


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


def _check_count_and_seed(n: int, seed: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise MismatchError(f"{{mc}} {n!r} is not a number of samples; use 1 to {MAX_SAMPLES}, e.g. 200")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MismatchError(f"{{seed}} {seed!r} is not a seed; use 0 or more")


def draw_offsets(design: Design, tech: Technology, n: int, seed: int = 0) -> tuple[dict[str, float], ...]:
    """`n` samples of independent Gaussian threshold offsets, one {device: dVth in V} each; the same seed gives the
    same samples (numpy's default generator), and sample i does not depend on n."""
    import numpy as np

    _check_count_and_seed(n, seed)
    if tech.extra.get(MODE_KEY, PelgromMismatch.name) != PelgromMismatch.name:
        raise MismatchError(f"{tech.name} draws its mismatch in its models ({MODE_KEY}: {tech.extra[MODE_KEY]}), "
                            f"not as Pelgrom offsets; its samples come from mismatch_mode(tech).samples")
    sigmas = device_sigmas(design, tech)
    names = list(sigmas)
    normal = np.random.default_rng(seed).standard_normal((n, len(names)))
    scale = np.array([sigmas[name] for name in names])
    return tuple({name: float(v) for name, v in zip(names, row)} for row in normal * scale)


def sample_seed(seed: int, index: int) -> int:
    """ngspice's seed (1 ... 2^31 - 1) of sample `index` of a run seeded `seed`, hashed by numpy's SeedSequence:
    ngspice's generator gives nearly the same first draws for consecutive seeds, so they are never used as such."""
    import numpy as np

    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0]
    return int(state) % NGSPICE_SEED_MAX + 1


@dataclass(frozen=True)
class MismatchSample:
    """One Monte Carlo sample as the deck receives it: threshold offsets for instance `delvto` (pelgrom), or the
    ngspice seed of the models' own statistical terms (models)."""

    offsets_v: tuple[tuple[str, float], ...] = ()
    """((device, dVth in V), ...) written as BSIM4's instance `delvto`; empty in the models mode."""
    ngspice_seed: int | None = None
    """`.options seed=N` for the models' agauss() draws; None in the pelgrom mode."""


class MismatchMode(ABC):
    """How a technology's Monte Carlo samples are drawn and on which technology (model switches) they are simulated."""

    name: str

    @abstractmethod
    def samples(self, design: Design, tech: Technology, n: int, seed: int) -> tuple[MismatchSample, ...]:
        """`n` samples; the same seed gives the same samples and sample i does not depend on n."""

    def technology(self, tech: Technology) -> Technology:
        """The technology the samples are simulated on (the same one, unless the mode switches a model option)."""
        return tech


class PelgromMismatch(MismatchMode):
    """icgen's Gaussian offsets from the descriptor's A_VT, as BSIM4 instance `delvto` (needs MOSFET instances)."""

    name = "pelgrom"

    def samples(self, design: Design, tech: Technology, n: int, seed: int) -> tuple[MismatchSample, ...]:
        if tech.subcircuit:
            raise MismatchError(f"{tech.name}: its devices are subcircuits, which take no delvto; set "
                                f"{MODE_KEY}: models (with {SWITCH_KEY}) in its descriptor to use the models' own "
                                f"mismatch")
        return tuple(MismatchSample(offsets_v=tuple(o.items())) for o in draw_offsets(design, tech, n, seed))


class ModelMismatch(MismatchMode):
    """The model files' own per-instance mismatch (sky130's `MC_MM_SWITCH`), drawn by ngspice from a seed per
    sample (`sample_seed`); the descriptor's `mismatch_params` switch it on."""

    name = "models"

    def switches(self, tech: Technology) -> dict[str, float]:
        raw = tech.extra.get(SWITCH_KEY)
        if not isinstance(raw, Mapping) or not raw:
            raise MismatchError(f"{tech.name}: {MODE_KEY}: models needs {SWITCH_KEY}: {{PARAM: value}} in its "
                                f"descriptor (e.g. {{MC_MM_SWITCH: 1}}), the params that turn the models' mismatch on")
        unknown = [str(k)[:40] for k in raw if k not in tech.params]
        if unknown:
            raise MismatchError(f"{tech.name}: {SWITCH_KEY} names {unknown[0]!r}, not one of its params "
                                f"({', '.join(tech.params) or 'none'}); each must override a param")
        out = {}
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise MismatchError(f"{tech.name}: {SWITCH_KEY}.{key} {str(value)[:40]!r} is not a number; use "
                                    f"e.g. 1")
            out[key] = float(value)
        return out

    def samples(self, design: Design, tech: Technology, n: int, seed: int) -> tuple[MismatchSample, ...]:
        _check_count_and_seed(n, seed)
        self.switches(tech)
        return tuple(MismatchSample(ngspice_seed=sample_seed(seed, i)) for i in range(n))

    def technology(self, tech: Technology) -> Technology:
        return dataclasses.replace(tech, params={**tech.params, **self.switches(tech)})


MISMATCH_MODES: dict[str, MismatchMode] = {mode.name: mode for mode in (PelgromMismatch(), ModelMismatch())}
"""The mismatch modes by the name a descriptor's `mismatch:` gives."""


def mismatch_mode(tech: Technology) -> MismatchMode:
    """The technology's mismatch mode: its descriptor's `mismatch:` (pelgrom when absent)."""
    name = tech.extra.get(MODE_KEY, PelgromMismatch.name)
    if not isinstance(name, str) or name not in MISMATCH_MODES:
        raise MismatchError(f"{tech.name}: {MODE_KEY} {str(name)[:40]!r} is not a mismatch mode; use one of "
                            f"{', '.join(MISMATCH_MODES)}")
    return MISMATCH_MODES[name]


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default): sound at 0 and n successes too."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
