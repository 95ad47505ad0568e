"""icgen: an open-source analog IC design assistant for the two-stage Miller op-amp, verified by ngspice.

The public API (loaded on first use, so `import icgen` stays light):

    import icgen
    tech = icgen.load_technology("ptm65")
    result = icgen.size(icgen.Specs(gain_db=38, pm_deg=52), tech, resources=icgen.SizingResources.load(model_dir=None))
    print(result.met, result.best.result.metrics)
    again = icgen.simulate(result.best.result.design, tech)
    report = icgen.validate(open("answer.txt").read(), tech)
    data = icgen.Dataset(icgen.DEFAULT_DATA_DIR); data.rows("train")
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Design": "icgen.core.design", "Metrics": "icgen.core.design", "EXAMPLE_DESIGN": "icgen.core.design",
    "Specs": "icgen.core.score", "load_technology": "icgen.core.tech", "Technology": "icgen.core.tech",
    "IcgenError": "icgen.core.errors", "Status": "icgen.core.status",
    "DEFAULT_DATA_DIR": "icgen.core.paths", "DEFAULT_MODEL_DIR": "icgen.core.paths",
    "simulate": "icgen.sim.simulate", "SimulatorPool": "icgen.sim.simulate", "SimResult": "icgen.sim.simulate",
    "validate": ("icgen.sim.validate", "validate_text"),
    "Dataset": "icgen.data.dataset",
    "size": "icgen.sizing.loop", "SizeConfig": "icgen.sizing.loop", "SizeResult": "icgen.sizing.loop",
    "SizingResources": "icgen.sizing.resources",
    "evaluate": "icgen.eval.run", "EvalConfig": "icgen.eval.targets", "EvalRun": "icgen.eval.folder",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'icgen' has no attribute {name!r}")
    where = _EXPORTS[name]
    module, attribute = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
