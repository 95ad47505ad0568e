"""A small neural surrogate of the simulator, fitted on the training designs, used to propose refinement steps.

The surrogate maps a design (log sizes, volts) to its metrics in shortfall units (gain and GM in 6 dB, PM in 10
degrees, UGB, BW and power in decades). In the sizing loop it is never trusted on its own: each step optimises
the surrogate *corrected by the offset it shows at the current centre* (what the simulator said minus what the
surrogate predicted there), inside a trust region, and the step is simulated. One simulation per step instead of
a Jacobian's worth of probes.

    surrogate = fit_surrogate(training_rows, SurrogateConfig())
    design = surrogate_step(surrogate, centre_design, centre_margins, specs, tech, radius=0.3)
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.design import DESIGN_KEYS, VARIABLE_BY_KEY, Design
from ..core.io import write_json_atomic
from ..core.paths import cache_dir
from ..core.sampling import quantize
from ..core.score import LOG_METRICS, SHORTFALL_SCALE, SPEC_KEYS, Specs, metric_units
from ..core.tech import Technology
from ..data.dataset import Dataset

OUTPUTS = SPEC_KEYS
WEIGHTS = "surrogate.pt"
META = "meta.json"
"""The files of a surrogate folder (the dataset names the folder: Dataset.surrogate_dir)."""


@dataclass(frozen=True)
class SurrogateConfig:
    """The network and its fit: an MLP of `layers` SiLU layers, Adam, mean-squared error in normalised units."""

    hidden: int = 256
    """Width of each hidden layer."""
    layers: int = 3
    """Hidden layers."""
    epochs: int = 200
    """Passes over the training designs."""
    batch: int = 256
    """Designs per optimiser step."""
    learning_rate: float = 1e-3
    """Adam's learning rate."""
    seed: int = 0
    """Seed of initialisation and batch order."""


def design_features(designs: pd.DataFrame | list[Design]) -> np.ndarray:
    """Designs as the surrogate's inputs: natural log of sizes, volts as they are."""
    frame = pd.DataFrame([d.to_dict() for d in designs]) if isinstance(designs, list) else designs
    cols = [np.log(frame[k].to_numpy(float)) if VARIABLE_BY_KEY[k].log_scale else frame[k].to_numpy(float)
            for k in DESIGN_KEYS]
    return np.column_stack(cols)


def metric_targets(rows: pd.DataFrame) -> np.ndarray:
    """Metrics in shortfall units (NaN where a metric is missing, e.g. no GM)."""
    return metric_units(rows, OUTPUTS)


class Surrogate:
    """A fitted MLP with its input and output normalisation."""

    def __init__(self, net, x_mean, x_std, y_mean, y_std):
        self.net, self.x_mean, self.x_std, self.y_mean, self.y_std = net, x_mean, x_std, y_mean, y_std

    def predict_torch(self, x):
        import torch

        xn = (x - torch.as_tensor(self.x_mean, dtype=x.dtype)) / torch.as_tensor(self.x_std, dtype=x.dtype)
        return self.net(xn) * torch.as_tensor(self.y_std, dtype=x.dtype) + torch.as_tensor(self.y_mean, dtype=x.dtype)

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.predict_torch(torch.as_tensor(x, dtype=torch.float32)).numpy()


def _network(inputs: int, outputs: int, config: SurrogateConfig):
    import torch

    layers, width = [], inputs
    for _ in range(config.layers):
        layers += [torch.nn.Linear(width, config.hidden), torch.nn.SiLU()]
        width = config.hidden
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, outputs))


def fit_surrogate(rows: pd.DataFrame, config: SurrogateConfig = SurrogateConfig()) -> Surrogate:
    """Fit on healthy working rows (metrics with NaN are masked out of the loss)."""
    import torch

    torch.manual_seed(config.seed)
    x = design_features(rows)
    y = metric_targets(rows)
    x_mean, x_std = x.mean(0), x.std(0) + 1e-9
    y_mean, y_std = np.nanmean(y, 0), np.nanstd(y, 0) + 1e-9
    xt = torch.tensor((x - x_mean) / x_std, dtype=torch.float32)
    yn = (y - y_mean) / y_std
    mask = torch.tensor(~np.isnan(yn), dtype=torch.float32)
    yt = torch.tensor(np.nan_to_num(yn), dtype=torch.float32)
    net = _network(x.shape[1], y.shape[1], config)
    optimiser = torch.optim.Adam(net.parameters(), config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(config.epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), config.batch):
            b = order[start:start + config.batch]
            loss = (((net(xt[b]) - yt[b]) ** 2) * mask[b]).sum() / mask[b].sum().clamp(min=1)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    net.eval()
    return Surrogate(net, x_mean, x_std, y_mean, y_std)


def _spec_vector(specs: Specs) -> tuple[list[int], np.ndarray, np.ndarray]:
    """For the given specs: output columns, the target in surrogate units, and the sign (+1 lower bound)."""
    columns, targets, signs = [], [], []
    for key, value in specs.given().items():
        columns.append(OUTPUTS.index(key))
        targets.append(math.log10(value) if key in LOG_METRICS else value / SHORTFALL_SCALE[key])
        signs.append(-1.0 if key == "power_w" else 1.0)
    return columns, np.array(targets), np.array(signs)


def predicted_margins(surrogate: Surrogate, designs: list[Design], specs: Specs) -> np.ndarray:
    """Margins the surrogate predicts, in the units of `icgen.refine.margin_vector`, one row per design."""
    columns, targets, signs = _spec_vector(specs)
    return (surrogate.predict(design_features(designs))[:, columns] - targets) * signs


def _trust_region_search(surrogate: Surrogate, centre: Design, tech: Technology, radius: float, loss_of,
                         iterations: int) -> Design:
    """Adam on the design within `radius` (log units for sizes, radius/10 volts) of `centre`, inside the bounds,
    minimising `loss_of(predicted outputs, delta / reach)`; the result rounded as a designer writes it."""
    import torch

    x0 = torch.tensor(design_features([centre])[0], dtype=torch.float32)
    log_mask = torch.tensor([VARIABLE_BY_KEY[k].log_scale for k in DESIGN_KEYS])
    reach = torch.where(log_mask, torch.tensor(radius), torch.tensor(radius / 10))
    lows = torch.tensor([math.log(tech.bounds[k][0]) if VARIABLE_BY_KEY[k].log_scale else tech.bounds[k][0]
                         for k in DESIGN_KEYS], dtype=torch.float32)
    highs = torch.tensor([math.log(tech.bounds[k][1]) if VARIABLE_BY_KEY[k].log_scale else tech.bounds[k][1]
                          for k in DESIGN_KEYS], dtype=torch.float32)
    lo, hi = torch.maximum(x0 - reach, lows), torch.minimum(x0 + reach, highs)
    delta = torch.zeros_like(x0, requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=0.02)
    for _ in range(iterations):
        x = torch.clamp(x0 + delta, lo, hi)
        loss = loss_of(surrogate.predict_torch(x[None])[0], delta / reach)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    x = torch.clamp(x0 + delta.detach(), lo, hi).numpy()
    values = {}
    for i, key in enumerate(DESIGN_KEYS):
        raw = math.exp(float(x[i])) if VARIABLE_BY_KEY[key].log_scale else float(x[i])
        low, high = tech.bounds[key]
        values[key] = min(max(quantize(key, raw), low), high)
    return Design(**values)


def _margin_gap(specs: Specs, offset: np.ndarray, target: float):
    """A function of predicted outputs: how far each offset-corrected predicted margin stays below `target`."""
    import torch

    columns, targets, signs = _spec_vector(specs)
    off = torch.tensor(np.nan_to_num(offset), dtype=torch.float32)
    tgt, sgn = torch.tensor(targets, dtype=torch.float32), torch.tensor(signs, dtype=torch.float32)
    return lambda outputs: torch.clamp(target - ((outputs[columns] - tgt) * sgn + off), min=0.0)


def surrogate_step(surrogate: Surrogate, centre: Design, offset: np.ndarray, specs: Specs, tech: Technology,
                   radius: float, target: float = 0.15, iterations: int = 150) -> Design:
    """The design within `radius` (log units for sizes, radius/10 volts) of `centre` that the offset-corrected
    surrogate says lifts every given margin to `target`, with the least movement."""
    gap = _margin_gap(specs, offset, target)
    return _trust_region_search(surrogate, centre, tech, radius,
                                lambda out, moved: (gap(out) ** 2).sum() + 1e-3 * (moved ** 2).sum(), iterations)


OBJECTIVE_OUTPUTS = {"min-power": ((OUTPUTS.index("power_w"), 1.0),),
                     "max-ugb": ((OUTPUTS.index("ugb_hz"), -1.0),),
                     "max-fom": ((OUTPUTS.index("ugb_hz"), -1.0), (OUTPUTS.index("power_w"), 1.0))}
"""The surrogate outputs (decades) each objective is a signed sum of."""


def objective_step(surrogate: Surrogate, centre: Design, offset: np.ndarray, specs: Specs, tech: Technology,
                   radius: float, objective_name: str, target: float = 0.15, iterations: int = 150,
                   penalty: float = 30.0) -> Design:
    """The design within `radius` of `centre` that the offset-corrected surrogate says lowers the objective most
    while every given margin stays at `target` or more (a quadratic penalty on each shortfall)."""
    gap = _margin_gap(specs, offset, target)
    terms = OBJECTIVE_OUTPUTS[objective_name]

    def loss(out, moved):
        value = sum(sign * out[i] for i, sign in terms)
        return value + penalty * (gap(out) ** 2).sum() + 1e-3 * (moved ** 2).sum()

    return _trust_region_search(surrogate, centre, tech, radius, loss, iterations)


def rows_fingerprint(rows: pd.DataFrame) -> str:
    """A hash of the design and metric values the surrogate is fitted on: a cached fit is reused only for them."""
    frame = rows[list(DESIGN_KEYS) + list(OUTPUTS)].astype(float).round(12)
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:16]


def surrogate_errors(surrogate: Surrogate, rows: pd.DataFrame) -> dict[str, float]:
    """Median absolute error per metric on `rows`: dB for gain and GM, degrees for PM, decades otherwise."""
    predicted = surrogate.predict(design_features(rows))
    actual = metric_targets(rows)
    errors = {}
    for i, key in enumerate(OUTPUTS):
        ok = ~np.isnan(actual[:, i])
        scale = SHORTFALL_SCALE.get(key, 1.0)
        errors[key] = float(np.median(np.abs(predicted[ok, i] - actual[ok, i])) * scale) if ok.any() else math.nan
    return errors


def save_surrogate(surrogate: Surrogate, config: SurrogateConfig, folder: str | Path, provenance: dict) -> Path:
    """Weights (torch state dict with the normalisation) and meta.json with the config and provenance."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"net.{k}": v for k, v in surrogate.net.state_dict().items()}
    for name in ("x_mean", "x_std", "y_mean", "y_std"):
        state[name] = torch.tensor(getattr(surrogate, name), dtype=torch.float64)
    tmp = folder / (WEIGHTS + ".tmp")
    torch.save(state, tmp)
    tmp.replace(folder / WEIGHTS)
    write_json_atomic({"config": asdict(config), **provenance}, folder / META)
    return folder


def load_surrogate(folder: str | Path) -> tuple[Surrogate, dict]:
    """A saved surrogate and its meta.json."""
    import torch

    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    config = SurrogateConfig(**meta["config"])
    state = torch.load(folder / WEIGHTS, weights_only=True)
    net = _network(len(DESIGN_KEYS), len(OUTPUTS), config)
    net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
    net.eval()
    arrays = [state[name].numpy() for name in ("x_mean", "x_std", "y_mean", "y_std")]
    return Surrogate(net, *arrays), meta


def _cached(folder: Path, fingerprint: str, config: SurrogateConfig) -> Surrogate | None:
    if not (folder / META).is_file():
        return None
    try:
        surrogate, meta = load_surrogate(folder)
    except (OSError, KeyError, ValueError, RuntimeError):
        return None  # unreadable: fit again
    return surrogate if meta.get("fingerprint") == fingerprint and meta.get("config") == asdict(config) else None


def surrogate_for(rows: pd.DataFrame, folder: str | Path | None, config: SurrogateConfig = SurrogateConfig(),
                  check_rows: pd.DataFrame | None = None, log=None) -> Surrogate:
    """The surrogate of these training rows: loaded from `folder`, or from the user's cache folder, when it was
    fitted there on the same rows with the same config; otherwise fitted and saved in the first of the two that is
    writable (a read-only dataset still serves `icgen size`), with errors on `check_rows` recorded."""
    fingerprint = rows_fingerprint(rows)
    fallback = cache_dir() / "surrogates" / fingerprint
    places = ([Path(folder)] if folder is not None else []) + [fallback]
    for place in places:
        cached = _cached(place, fingerprint, config)
        if cached is not None:
            return cached
    if log:
        log(f"fitting the simulator surrogate on {len(rows)} training designs (once; it is cached)")
    started = time.perf_counter()
    surrogate = fit_surrogate(rows, config)
    provenance = {"what": "MLP surrogate of the ngspice metrics of the two-stage op-amp (icgen.surrogate)",
                  "fingerprint": fingerprint, "rows": len(rows), "fit_seconds": round(time.perf_counter() - started, 1)}
    if check_rows is not None and len(check_rows):
        provenance["median_abs_error_on_check_rows"] = surrogate_errors(surrogate, check_rows)
        provenance["check_rows"] = len(check_rows)
    for place in places:
        try:
            save_surrogate(surrogate, config, place, provenance)
            break
        except (OSError, RuntimeError):  # torch.save reports an unwritable folder as RuntimeError
            continue
    else:
        if log:
            log("the surrogate could not be cached (no writable folder); it is kept in memory for this run")
    return surrogate


def surrogate_loader(data: Dataset, kind: str = "heldout", log=None):
    """A callable giving the simulator surrogate of a dataset's training rows of one split kind (cached in the
    dataset folder, refitted when the rows change), or None when torch is not installed (the loop then refines by
    the designer's directions alone)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None

    def load() -> Surrogate:
        train = data.training_rows(kind)
        return surrogate_for(train[train["working"]], data.surrogate_dir(kind), check_rows=data.rows("validation", kind),
                             log=log)
    return load


def surrogate_provenance(data: Dataset, kind: str = "heldout") -> dict | None:
    """What the cached surrogate was fitted on and how well it predicts the validation designs."""
    meta = data.surrogate_dir(kind) / META
    if not meta.is_file():
        return None
    recorded = json.loads(meta.read_text())
    return {k: recorded.get(k) for k in ("fingerprint", "rows", "median_abs_error_on_check_rows", "check_rows")}
