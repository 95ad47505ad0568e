"""Ask a fine-tuned model for sizings: batched generation from spec prompts, parsed into typed designs.

    completions = generate(model, tokenizer, prompts, num_samples=4, temperature=0.7)
"""
from __future__ import annotations

from dataclasses import dataclass

from .pairs import parse_completion
from .parse import ParsedAnswer


@dataclass(frozen=True)
class Completion:
    """One generated completion and what was read from it."""

    prompt_index: int
    text: str
    parsed: ParsedAnswer


def generate(model, tokenizer, prompts: list[str], fmt: str = "compact", num_samples: int = 1,
             temperature: float = 0.0, max_new_tokens: int = 160, batch_size: int = 16,
             seed: int = 0) -> list[Completion]:
    """Greedy (temperature 0) or sampled completions, `num_samples` per prompt, in one batched generate per batch."""
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
            out.append(Completion(prompt_index=start + i // num_samples, text=text.strip(),
                                  parsed=parse_completion(text, fmt)))
    return out
