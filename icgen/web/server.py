"""Assemble and run the server: technologies and models by name, the sizing runner, the app, uvicorn.

    serve(ServeConfig(port=8000), tech_names=("ptm65",), model_dir=DEFAULT_MODEL_DIR, data_dir=DEFAULT_DATA_DIR)
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..core.tech import load_technology
from ..sizing.resources import SizingResources
from .config import ServeConfig
from .runner import SizingRunner

NO_MODEL = "none"


def model_name(model_dir: str | Path | None) -> str:
    """The name a request picks a model by: its folder's name ('none' for no model)."""
    return NO_MODEL if model_dir is None else Path(model_dir).name


def build_app(config: ServeConfig, tech_names: Sequence[str], model_dir: str | Path | None,
              data_dir: str | Path | None, log: Callable[[str], None] | None = None, pool_factory=None):
    """The app on these technologies (names or descriptor paths, trusted: the operator gave them) and this model
    (None: no model); a request then names one of them. Raises the core's errors for a bad name or folder."""
    from .app import create_app

    techs = {}
    for name in tech_names:
        tech = load_technology(name)
        techs[tech.name] = tech
    base = SizingResources.load(data_dir, None, log=log)
    resources = {NO_MODEL: base}
    if model_dir is not None:
        with_model = SizingResources.load(None, model_dir, log=log)
        resources = {model_name(model_dir): replace(base, load_model=with_model.load_model, fmt=with_model.fmt),
                     **resources}
    runner = SizingRunner(techs, resources, sim_workers=config.sim_workers, pool_factory=pool_factory)
    model_dirs = {name: None for name in resources}
    if model_dir is not None:
        model_dirs[model_name(model_dir)] = Path(model_dir)
    return create_app(config, runner, techs, tuple(resources), on_close=runner.close,
                      data_dir=None if data_dir is None else Path(data_dir), model_dirs=model_dirs)


def serve(app, config: ServeConfig) -> None:
    """Run the app with uvicorn until Ctrl-C."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", proxy_headers=False,
                server_header=False, timeout_graceful_shutdown=5)
