"""`icgen train --stage rft --from RUN`: rejection-sampling fine-tuning, the simple alternative to DPO.

    icgen data preferences --model runs/smollm2-135m-fix      # sample, simulate, rank -> RUN/preferences/rft.jsonl
    icgen train --stage rft --from runs/smollm2-135m-fix [--set epochs=1 --set learning_rate=5e-5]

The SFT adapter of RUN is trained further, with the SFT loss (completion tokens only), on the model's own sampled
answers that met their bounds: the same draw, hence the same simulations, as the DPO pairs. The settings are
DPOSettings with `stage: rft` (beta unused); the run folder is written as a DPO run is (icgen.llm.dpo.save_tuned).
"""
from __future__ import annotations

import math
import os
import time

from ..core.errors import ConfigError
from .dpo import DPOSettings, load_policy, save_tuned, subset_of
from .preferences import RFT_FILE, read_preferences


def completion_loss(model, examples: list[dict], pad: int, batch_size: int = 16) -> float:
    """Mean cross-entropy per completion token of tokenised examples (the SFT loss), without gradients."""
    import torch

    from .train import Collator

    collate, total, tokens = Collator(pad), 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start:start + batch_size])
            batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                     labels.reshape(-1), ignore_index=-100, reduction="sum")
            total, tokens = total + float(loss), tokens + int((labels != -100).sum())
    model.train()
    return total / tokens if tokens else math.nan


def train_rft(settings: DPOSettings, pairs: list[dict] | None = None) -> dict:
    """Supervised fine-tuning of RUN's adapter on its own answers that met; returns OUT/metrics.json's contents."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from .train import Collator, _CsvLogger, build_examples

    if settings.stage != "rft":
        raise ConfigError(f"train_rft needs stage: rft, not {settings.stage!r}")
    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(os.cpu_count() or 1)
    started = time.time()
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    set_seed(settings.seed)
    model, tokenizer = load_policy(settings.from_run)
    source = pairs if pairs is not None else read_preferences(settings.preferences_folder, RFT_FILE)
    examples, dropped = build_examples(source, tokenizer, settings.max_length, "drop")
    examples = subset_of(examples, settings.max_pairs, settings.seed)
    if not examples:
        raise ConfigError(f"no rejection-sampling pairs to train on ({len(source)} given, {dropped} longer than "
                          f"max_length={settings.max_length}); sample more targets or answers")
    before = completion_loss(model, examples, tokenizer.pad_token_id)
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=settings.batch_size,
                             gradient_accumulation_steps=settings.gradient_accumulation,
                             learning_rate=settings.learning_rate, num_train_epochs=settings.epochs,
                             max_steps=settings.max_steps, lr_scheduler_type="cosine",
                             warmup_steps=settings.warmup_ratio, logging_steps=settings.logging_steps,
                             save_strategy="no", report_to=[], seed=settings.seed, data_seed=settings.seed,
                             bf16=cuda, use_cpu=not cuda, remove_unused_columns=False, dataloader_num_workers=0,
                             disable_tqdm=True)
    logger = _CsvLogger(out / "metrics.csv")
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=Collator(tokenizer.pad_token_id),
                      callbacks=[logger.callback])
    result = trainer.train()
    after = completion_loss(model, examples, tokenizer.pad_token_id)
    metrics = {"rft_pairs": len(examples), "dropped_too_long": dropped, "steps": trainer.state.global_step,
               "train_loss": result.training_loss, "before": {"loss": before}, "after": {"loss": after}}
    return save_tuned(model, tokenizer, settings, metrics, started, card_section(settings, metrics))


def card_section(settings: DPOSettings, metrics: dict) -> list[str]:
    """The RFT section of the model card."""
    return [
        "## Rejection-sampling fine-tuning (RFT)", "",
        f"The SFT adapter of `{settings.from_run}` trained further with the SFT loss on the model's own sampled "
        "answers that met their bounds (the same draw and simulations as the DPO pairs).", "",
        "| what | value |", "|---|---|",
        f"| RFT pairs | {metrics['rft_pairs']} (dropped as too long: {metrics['dropped_too_long']}) |",
        f"| lr / epochs / batch | {settings.learning_rate} / {settings.epochs} / {settings.batch_size} x "
        f"{settings.gradient_accumulation} |",
        f"| steps | {metrics['steps']} |",
        f"| completion loss on the pairs, before -> after | {metrics['before']['loss']:.4f} -> "
        f"{metrics['after']['loss']:.4f} |"]
