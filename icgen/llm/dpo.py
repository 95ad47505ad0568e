"""`icgen train --stage dpo --from RUN`: preference tuning (DPO, TRL) of a run's SFT adapter on simulated verdicts.

    icgen data preferences --model runs/smollm2-135m-fix           # sample, simulate, rank -> RUN/preferences/
    icgen train --stage dpo --from runs/smollm2-135m-fix [--set beta=0.1 --set epochs=1]

The policy is the SFT adapter of RUN, trained further; the reference is the SFT model itself (base + the SFT
adapter, frozen), not the bare base: the adapter is loaded once as the trainable `default` adapter, and TRL's
DPOTrainer copies it into a frozen `ref` adapter of the same PeftModel, which it switches to for the reference
log-probabilities. The output folder holds the adapter, the SFT config (so `load_finetuned` reads it like any
run), dpo.yaml, metrics.json and a model card with a preference-tuning section.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from ..core.errors import ConfigError
from ..core.io import write_json_atomic
from ..core.tech import portable_path
from .model import base_folder, model_technology, run_config
from .preferences import read_preferences

STAGES = ("sft", "dpo", "rft")
"""What `icgen train --stage` runs: supervised fine-tuning (icgen.llm.train), preference tuning (this module) or
rejection-sampling fine-tuning of a run on its own answers that met (icgen.llm.rft)."""
TUNE_STAGES = STAGES[1:]
"""The stages that continue an SFT run's adapter (DPOSettings.stage)."""
PREFERENCES_DIR = "preferences"
"""RUN/preferences: the default home of a run's preference pairs (icgen.llm.preferences writes them)."""
POLICY_ADAPTER = "default"
"""The trainable adapter: the SFT adapter, trained further."""
REFERENCE_ADAPTER = "ref"
"""The frozen copy of the SFT adapter that DPOTrainer (TRL 1.16) adds and uses as the reference."""


@dataclass(frozen=True)
class DPOSettings:
    """Everything a run that tunes an SFT adapter further depends on (DPO, or RFT without `beta`); YAML with
    `stage: dpo` or `stage: rft`, overridden by --set key=value."""

    from_run: str = ""
    """The SFT run folder whose adapter is tuned (and is the reference)."""
    preferences: str | None = None
    """Folder with preferences.jsonl (default RUN/preferences)."""
    name: str | None = None
    """Run name; the default output folder is runs/NAME (default: the SFT run's name + -STAGE)."""
    output_dir: str | None = None
    """Where to write the run (default runs/NAME)."""
    beta: float = 0.1
    """DPO temperature: how far the policy may move from the reference (larger: closer)."""
    learning_rate: float = 5e-5
    """Peak learning rate (cosine schedule with warmup)."""
    warmup_ratio: float = 0.1
    """Fraction of steps spent warming the learning rate up."""
    epochs: float = 1.0
    """Passes over the preference pairs (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 means derive from epochs."""
    batch_size: int = 4
    """Preference pairs per device per forward pass."""
    gradient_accumulation: int = 1
    """Forward passes per optimizer step."""
    max_length: int = 384
    """Longest tokenised prompt + answer; longer pairs are counted and dropped, never truncated."""
    logging_steps: int = 10
    """Log the DPO loss and reward margins every N steps."""
    seed: int = 0
    """Seed for data order and dropout."""
    max_pairs: int | None = None
    """Train on a seeded random subset of this many of the pairs that fit (None: all of them)."""
    stats_pairs: int | None = 256
    """The DPO loss, margin and accuracy before and after are measured on a seeded subset of this many of the
    training pairs (None: all; each pair costs 4 forward passes)."""
    stage: str = "dpo"
    """dpo: preference pairs (preferences.jsonl); rft: supervised on the answers that met (rft.jsonl)."""

    def __post_init__(self) -> None:
        checks = [
            (self.stage in TUNE_STAGES, f"stage must be one of {', '.join(TUNE_STAGES)}, not {self.stage!r}"),
            (bool(self.from_run), f"from_run must name the SFT run folder (icgen train --stage {self.stage} "
                                  f"--from RUN)"),
            (math.isfinite(self.beta) and self.beta > 0, f"beta must be a positive number, not {self.beta}"),
            (0 < self.learning_rate < 1, f"learning_rate must be in (0, 1), not {self.learning_rate}"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.epochs > 0 or self.max_steps > 0, "epochs must be positive (or set max_steps)"),
            (self.batch_size >= 1 and self.gradient_accumulation >= 1, "batch_size and gradient_accumulation >= 1"),
            (16 <= self.max_length <= 32768, "max_length must be between 16 and 32768"),
            (self.logging_steps >= 1, "logging_steps must be >= 1"),
            (self.max_pairs is None or self.max_pairs >= 1, "max_pairs must be >= 1 or null"),
            (self.stats_pairs is None or self.stats_pairs >= 1, "stats_pairs must be >= 1 or null"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def out(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        return Path("runs") / (self.name or Path(self.from_run).resolve().name + f"-{self.stage}")

    @property
    def preferences_folder(self) -> Path:
        return Path(self.preferences) if self.preferences else Path(self.from_run) / PREFERENCES_DIR


def load_settings(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                  from_run: str | None = None, stage: str | None = None) -> DPOSettings:
    """Tuning settings from YAML (`stage: dpo|rft`; none: the defaults) with key=value overrides, validated; `stage`
    (the command line's) wins over the YAML's."""
    from .train import _coerce, apply_overrides  # one rule for both stages' --set

    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path} is not a readable YAML config: {str(err).splitlines()[0]}") from err
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must be a mapping of keys to values")
    raw["stage"] = stage or raw.get("stage") or "dpo"
    apply_overrides(raw, overrides)
    if from_run:
        raw["from_run"] = from_run
    known = {f.name: f for f in fields(DPOSettings)}
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise ConfigError(f"dpo config: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return DPOSettings(**{k: _coerce(k, v, known[k].type) for k, v in raw.items()})


def config_stage(path: str | Path | None) -> str:
    """The `stage` key of a YAML config (sft when absent)."""
    if path is None or not Path(path).is_file():
        return "sft"
    raw = yaml.safe_load(Path(path).read_text()) or {}
    stage = raw.get("stage", "sft") if isinstance(raw, dict) else "sft"
    if stage not in STAGES:
        raise ConfigError(f"{path}: stage {stage!r} is not one of {', '.join(STAGES)}")
    return stage


def load_policy(run: str | Path, dtype=None):
    """Base + the SFT adapter of `run` as the trainable `default` adapter, and the run's tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = Path(run)
    sft = run_config(run)
    cuda = torch.cuda.is_available()
    base = AutoModelForCausalLM.from_pretrained(base_folder(sft["base"]),
                                                dtype=dtype or (torch.bfloat16 if cuda else torch.float32))
    if cuda:
        base = base.to("cuda")
    model = PeftModel.from_pretrained(base, str(run / "adapter"), adapter_name=POLICY_ADAPTER, is_trainable=True)
    tokenizer = AutoTokenizer.from_pretrained(str(run / "adapter"))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def fitting_pairs(pairs: list[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """The pairs whose prompt + longer answer + EOS fits in max_length tokens, and how many were dropped."""
    kept = []
    for pair in pairs:
        longest = max(len(tokenizer(pair["prompt"] + pair[k], add_special_tokens=False)["input_ids"])
                      for k in ("chosen", "rejected"))
        if longest + 1 <= max_length:
            kept.append(pair)
    return kept, len(pairs) - len(kept)


def subset_of(items: list, size: int | None, seed: int) -> list:
    """A seeded random subset of `size` items, in their order (all of them when size is None or not smaller)."""
    if size is None or size >= len(items):
        return list(items)
    import numpy as np

    chosen = sorted(np.random.default_rng(seed).choice(len(items), size=size, replace=False))
    return [items[i] for i in chosen]


def sequence_logps(model, tokenizer, prompts: list[str], completions: list[str], adapter: str):
    """Summed log-probability of each completion (+ EOS) after its prompt, under one adapter of the PeftModel."""
    import torch

    from .train import tokenize_pair

    device = next(model.parameters()).device
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}  # set_adapter moves requires_grad
    model.set_adapter(adapter)
    out = []
    with torch.no_grad():
        for prompt, completion in zip(prompts, completions, strict=True):
            example = tokenize_pair(tokenizer, prompt, completion)
            ids = torch.tensor([example["input_ids"]], device=device)
            labels = torch.tensor(example["labels"][1:], device=device)
            logits = model(input_ids=ids).logits[0, :-1].float()
            logp = torch.log_softmax(logits, dim=-1).gather(1, labels.clamp(min=0)[:, None])[:, 0]
            out.append(float((logp * (labels != -100)).sum()))
    model.set_adapter(POLICY_ADAPTER)
    for name, param in model.named_parameters():
        param.requires_grad_(trainable[name])
    return out


def preference_stats(model, tokenizer, pairs: list[dict], beta: float) -> dict:
    """Mean DPO loss and mean reward margin (beta * (policy - reference) log-ratio, chosen minus rejected) of pairs,
    the policy being the `default` adapter and the reference the `ref` adapter."""
    prompts = [p["prompt"] for p in pairs]
    logps = {(adapter, side): sequence_logps(model, tokenizer, prompts, [p[side] for p in pairs], adapter)
             for adapter in (POLICY_ADAPTER, REFERENCE_ADAPTER) for side in ("chosen", "rejected")}
    margins = [beta * ((pc - rc) - (pr - rr)) for pc, rc, pr, rr in
               zip(logps[POLICY_ADAPTER, "chosen"], logps[REFERENCE_ADAPTER, "chosen"],
                   logps[POLICY_ADAPTER, "rejected"], logps[REFERENCE_ADAPTER, "rejected"], strict=True)]
    losses = [math.log1p(math.exp(-m)) if m > -30 else -m for m in margins]  # -log sigmoid(margin)
    return {"loss": sum(losses) / len(losses), "margin": sum(margins) / len(margins),
            "accuracy": sum(m > 0 for m in margins) / len(margins)}


@dataclass
class DPORun:
    """A prepared DPO run: the trainer, its PeftModel (policy `default`, reference `ref`), tokenizer and pairs."""

    trainer: object
    model: object
    tokenizer: object
    pairs: list[dict]
    dropped: int
    logger: object


def prepare_dpo(settings: DPOSettings, pairs: list[dict] | None = None) -> DPORun:
    """The policy (RUN's SFT adapter, trainable), the reference (a frozen copy of it) and TRL's DPOTrainer."""
    import torch
    from datasets import Dataset as HFDataset
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from .train import _CsvLogger

    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    set_seed(settings.seed)
    model, tokenizer = load_policy(settings.from_run)
    source = pairs if pairs is not None else read_preferences(settings.preferences_folder)
    kept, dropped = fitting_pairs(source, tokenizer, settings.max_length)
    kept = subset_of(kept, settings.max_pairs, settings.seed)
    if not kept:
        raise ConfigError(f"no preference pairs to train on ({len(source)} given, {dropped} longer than "
                          f"max_length={settings.max_length})")
    cuda = torch.cuda.is_available()
    args = DPOConfig(output_dir=str(out), beta=settings.beta, learning_rate=settings.learning_rate,
                     num_train_epochs=settings.epochs, max_steps=settings.max_steps,
                     per_device_train_batch_size=settings.batch_size,
                     gradient_accumulation_steps=settings.gradient_accumulation, lr_scheduler_type="cosine",
                     warmup_steps=settings.warmup_ratio,  # a float in [0, 1): a share of the steps
                     max_length=settings.max_length, logging_steps=settings.logging_steps, save_strategy="no",
                     report_to=[], seed=settings.seed, data_seed=settings.seed, bf16=cuda, use_cpu=not cuda,
                     dataloader_num_workers=0, disable_tqdm=True)
    logger = _CsvLogger(out / "metrics.csv")
    dataset = HFDataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in kept])
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[logger.callback])
    if REFERENCE_ADAPTER not in model.peft_config:  # TRL would then compare against the bare base: refuse
        raise ConfigError(f"DPOTrainer did not add the {REFERENCE_ADAPTER!r} reference adapter; "
                          f"check the pinned trl version (pyproject.toml [train])")
    return DPORun(trainer=trainer, model=model, tokenizer=tokenizer, pairs=kept, dropped=dropped, logger=logger)


def train_dpo(settings: DPOSettings, pairs: list[dict] | None = None) -> dict:
    """Run DPO on a run's SFT adapter against the SFT model; returns the metrics written to OUT/metrics.json."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(os.cpu_count() or 1)
    started = time.time()
    run = Path(settings.from_run)
    prepared = prepare_dpo(settings, pairs)
    model, tokenizer, kept = prepared.model, prepared.tokenizer, prepared.pairs
    probe = subset_of(kept, settings.stats_pairs, settings.seed + 1)  # the before/after figures: 4 forwards a pair
    before = preference_stats(model, tokenizer, probe, settings.beta)
    result = prepared.trainer.train()
    after = preference_stats(model, tokenizer, probe, settings.beta)
    metrics = {"reference": f"the SFT model: base + {run / 'adapter'} (frozen adapter {REFERENCE_ADAPTER!r})",
               "preference_pairs": len(kept), "dropped_too_long": prepared.dropped, "stats_pairs": len(probe),
               "steps": prepared.trainer.state.global_step, "train_loss": result.training_loss,
               "before": before, "after": after}
    return save_tuned(model, tokenizer, settings, metrics, started, card_section(settings, metrics))


def save_tuned(model, tokenizer, settings: DPOSettings, metrics: dict, started: float, section: list[str]) -> dict:
    """Write a tuned run as every run is written: the policy adapter, the SFT config (so that `load_finetuned` reads
    it), STAGE.yaml, metrics.json (with the preference draw's provenance and the CPU time) and the model card."""
    from .train import hardware

    run, sft, out = Path(settings.from_run), run_config(settings.from_run), settings.out
    model.save_pretrained(out / "adapter", selected_adapters=[POLICY_ADAPTER])
    tokenizer.save_pretrained(out / "adapter")
    (out / "config.yaml").write_text(yaml.safe_dump({**sft, "name": out.name, "output_dir": str(out)},
                                                    sort_keys=False))
    (out / f"{settings.stage}.yaml").write_text(yaml.safe_dump(asdict(settings), sort_keys=False))
    preferences_meta = settings.preferences_folder / "preferences.json"
    metrics = {"stage": settings.stage, "from_run": portable_path(run), "base": sft["base"], "format": sft["format"],
               "technology": model_technology(run), **metrics,
               "preferences": json.loads(preferences_meta.read_text()) if preferences_meta.is_file() else None,
               "wall_s": time.time() - started, "cpu_s": time.process_time(), "hardware": hardware()}
    write_json_atomic(metrics, out / "metrics.json")
    write_card(out, run, settings, metrics, section)
    return metrics


def card_section(settings: DPOSettings, metrics: dict) -> list[str]:
    """The DPO section of the model card."""
    before, after = metrics["before"], metrics["after"]
    return [
        "## Preference tuning (DPO)", "",
        f"The SFT adapter of `{settings.from_run}` trained further with DPO (TRL) on simulator-ranked answer pairs; "
        "the reference is the SFT model (base + SFT adapter, frozen).", "",
        "| what | value |", "|---|---|",
        f"| preference pairs | {metrics['preference_pairs']} (dropped as too long: {metrics['dropped_too_long']}) |",
        f"| beta / lr / epochs / batch | {settings.beta} / {settings.learning_rate} / {settings.epochs} / "
        f"{settings.batch_size} x {settings.gradient_accumulation} |",
        f"| steps | {metrics['steps']} |",
        f"| DPO loss on {metrics['stats_pairs']} of the pairs, before -> after | {before['loss']:.4f} -> "
        f"{after['loss']:.4f} |",
        f"| reward margin, before -> after | {before['margin']:.4f} -> {after['margin']:.4f} |",
        f"| pairs ranked right, before -> after | {before['accuracy']:.3f} -> {after['accuracy']:.3f} |"]


def write_card(out: Path, run: Path, settings: DPOSettings, metrics: dict, section: list[str]) -> Path:
    """README.md: the SFT run's card (copied) followed by the tuning stage's section, its cost and how to redo it."""
    sft_card = run / "README.md"
    lines = [sft_card.read_text().rstrip(), ""] if sft_card.is_file() else [f"# {out.name}", ""]
    draw = metrics.get("preferences") or {}
    lines += section + [
        f"| answers sampled / simulations for them | {draw.get('answers', '?')} / {draw.get('simulations', '?')} "
        f"(share met {draw.get('share_met', float('nan')):.3f}) |",
        f"| hardware / wall / CPU time | {metrics['hardware']} / {metrics['wall_s'] / 60:.1f} min / "
        f"{metrics['cpu_s']:.0f} CPU-s |", "",
        f"## Reproduce ({settings.stage})", "", "```sh", f"icgen train --config {out / (settings.stage + '.yaml')}"
        f"   # = icgen train --stage {settings.stage} --from {run} with these settings", "```", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
