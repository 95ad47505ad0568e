"""Ask a fine-tuned model for sizings: spec prompts, batched generation, completions parsed into typed designs.

    prompt = spec_prompt(Specs(gain_db=38, pm_deg=52), reference_metrics, fmt="compact")
    completions = complete(model, tokenizer, [prompt], num_samples=4, temperature=0.7)
    designs, unusable = usable_designs(completions, tech)
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.design import Design, Metrics
from ..core.parse import ParsedAnswer
from ..core.score import Specs
from ..core.tech import Technology
from .pairs import pair_format, parse_completion


@dataclass(frozen=True)
class Completion:
    """One generated completion and what was read from it."""

    prompt_index: int
    text: str
    parsed: ParsedAnswer


def complete(model, tokenizer, prompts: list[str], fmt: str = "compact", num_samples: int = 1,
             temperature: float = 0.0, max_new_tokens: int = 160, batch_size: int = 16,
             seed: int = 0, starts: list[Design | None] | None = None) -> list[Completion]:
    """Greedy (temperature 0) or sampled completions, `num_samples` per prompt, in one batched generate per batch.
    `starts`: each prompt's starting design, which a fix-format completion changes."""
    if starts is not None and len(starts) != len(prompts):
        raise ValueError(f"{len(starts)} starts for {len(prompts)} prompts")
    import torch

    torch.manual_seed(seed)
    tokenizer.padding_side = "left"  # decoder-only: pad on the left so every prompt ends where generation starts
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    out: list[Completion] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        sampling = temperature > 0
        with torch.no_grad():
            tokens = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=sampling,
                                    temperature=temperature if sampling else None, top_p=0.95 if sampling else None,
                                    top_k=None, num_return_sequences=num_samples,
                                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = tokens[:, encoded["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        for i, text in enumerate(texts):
            index = start + i // num_samples
            out.append(Completion(prompt_index=index, text=text.strip(),
                                  parsed=parse_completion(text, fmt, starts[index] if starts else None)))
    return out


DEFAULT_PROMPT_METRICS = {"gain_db": 50.0, "bw3db_hz": 3e3, "ugb_hz": 1e6, "pm_deg": 60.0, "gm_db": 12.0,
                          "power_w": 1e-5}
"""The metrics a prompt carries where neither the user nor a reference design gives one."""


def prompt_metrics(specs: Specs, reference: Metrics | None) -> Metrics:
    """A full metric set for the prompt: the user's targets with a little headroom, the rest from a reference."""
    base = reference.to_dict() if reference else dict(DEFAULT_PROMPT_METRICS)
    headroom = {"gain_db": lambda v: v + 2, "pm_deg": lambda v: min(v + 5, 175), "gm_db": lambda v: v + 2,
                "ugb_hz": lambda v: v * 1.25, "bw3db_hz": lambda v: v * 1.25, "power_w": lambda v: v * 0.8}
    values = dict(base)
    for key, target in specs.core().items():  # the model was trained on the open-loop six
        values[key] = headroom[key](target)
    return Metrics(**values)


def spec_prompt(specs: Specs, reference: Metrics | None, fmt: str = "compact", start=None) -> str:
    """The prompt the model is trained on, for the user's targets (with headroom) completed from a reference.

    Edit formats also show `start`, a (design, simulated metrics) pair: the retrieved design or the loop's best
    candidate so far; the targets are then completed from the start's metrics. A format with a `specs_prompt` (fix)
    shows the user's bounds themselves."""
    form = pair_format(fmt)
    if form.specs_prompt is not None:
        return form.specs_prompt(specs, start)
    if form.needs_start:
        return form.prompt(prompt_metrics(specs, start[1] if start else reference), start)
    return form.prompt(prompt_metrics(specs, reference))


def usable_designs(completions: list[Completion], tech: Technology) -> tuple[list[Design], int]:
    """Designs from completions that parse, validate and lie inside the technology's bounds; and the unusable count."""
    designs, invalid = [], 0
    for completion in completions:
        parsed = completion.parsed
        if parsed.design is None or parsed.problems or tech.out_of_bounds(parsed.design):
            invalid += 1
        else:
            designs.append(parsed.design)
    return designs, invalid
