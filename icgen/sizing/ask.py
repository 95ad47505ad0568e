"""`icgen ask`: one question to a fine-tuned model, shown raw: the prompt, the answer with control characters
escaped, and the parse/validate report of that answer. What someone who has just trained a model runs first.

The start an edit-format prompt needs is the user's design (`start`, simulated once when its metrics are not
given) or, without one, the training design retrieval ranks first for the specs (its recorded metrics).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.design import Design, Metrics
from ..core.score import Specs
from ..core.tech import Technology
from ..sim.validate import ValidationReport, validate_parsed


def escaped(text: str) -> str:
    """`text` with every control or non-printable character but the newline written as an escape (`\\x1b`, `\\t`)."""
    return "".join(c if c == "\n" or c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@dataclass(frozen=True)
class Asked:
    """The prompt, where its start came from, the raw answer and the validation report of that answer."""

    prompt: str
    start_source: str
    answer: str
    report: ValidationReport


def ask(specs: Specs, model, tokenizer, fmt: str, tech: Technology, *, table=None,
        start: tuple[Design, Metrics | None] | None = None, simulate: bool = True,
        max_new_tokens: int = 128) -> Asked:
    """Ask the model once (greedy) and validate its raw answer (no repair, no fallback)."""
    from ..data.dataset import design_of, metrics_of
    from ..llm.complete import complete, spec_prompt
    from ..llm.pairs import pair_format
    from .retrieval import rank_rows

    reference, source = None, "none"
    if start is not None:
        design, metrics = start
        if metrics is None:
            from ..sim.simulate import simulate as run_simulation

            metrics = run_simulation(design, tech).metrics
        start, source = ((design, metrics) if metrics is not None else None), "your design"
    if table is not None and len(table):
        ranked = rank_rows(table, specs)
        if len(ranked):
            top = ranked.iloc[0]
            reference = metrics_of(top)
            if start is None:
                start, source = (design_of(top), reference), "retrieval (the training design ranked first)"
    if pair_format(fmt).needs_start and start is None:
        from ..llm.pairs import FormatError

        raise FormatError(f"the {fmt} format's prompt needs a starting design: give --start DESIGN.json, or a "
                          f"dataset with --data to retrieve one")
    if not pair_format(fmt).needs_start:
        source = "not used by the " + fmt + " format"
    prompt = spec_prompt(specs, reference, fmt, start)
    completion = complete(model, tokenizer, [prompt], fmt=fmt, max_new_tokens=max_new_tokens,
                          starts=[start[0] if start else None])[0]
    report = validate_parsed(completion.parsed, tech, run_simulation=simulate)
    return Asked(prompt, source, completion.text, report)
