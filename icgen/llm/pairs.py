"""Spec -> sizing training pairs in three formats, each of which parses back to exactly its design.

    seed     the original work's long prompt and its answer format ("To achieve ... M1 pch net3 VINP ...")
    compact  the same information in few tokens: "gain=64.09dB ugb=4.518MHz ..." -> "R0=3k C0=1p L1=622n ..."
    chat     {"messages": [system, user, assistant]} with the answer format as the assistant's reply
    edit     retrieval-augmented: the targets, a starting design and its simulated metrics -> the improved design
             ("want gain=64.1 ...\nfrom R0=3k ...\nhas gain=58.2 ...\n" -> "R0=3.3k C0=1p ..."), parsed as compact
    fix      retrieval-augmented with the simulator's verdict: the bounds, a start, its metrics with each missed bound
             marked `!` -> the moves that make it meet them ("need gain>39.1 pm>50.2 ...\nfrom R0=3k ...\nhas
             gain=40.2 pm=47.0! ...\n" -> "C0*1.4 R0*0.7", or "keep"), read by core.parse.parse_fix against the
             start; pairs come from simulated local moves (icgen.llm.fixes)

Formats are looked up by name in `REGISTRY` (`pair_format(name)`); a new format is one new `PairFormat` entry.
`make_pair(design, metrics, fmt)` builds one pair; `parse_completion(text, fmt)` reads a completion back.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.deck import TEMPLATE, render_answer
from ..core.design import DESIGN_KEYS, Design, Metrics
from ..core.errors import IcgenError
from ..core.parse import ParsedAnswer, format_fix, parse_answer, parse_compact, parse_fix
from ..core.score import SPEC_KINDS, Specs, check_specs, relaxed_specs
from ..core.units import format_spice

if TYPE_CHECKING:
    from ..data.dataset import Dataset

# Between prompt and completion: TRL glues plain-string prompt and completion with no separator.
SEPARATOR = "\n"

_NETLIST_TEMPLATE = "\n".join(
    f"{d.name} {d.model} {d.drain} {d.gate} {d.source} {d.bulk} {d.length_key}=__ {d.width_key}=__" for d in TEMPLATE
) + "\nC0 net3 net4 C0_value=__\nR0 net4 VOUT R0_value=__"

# The original work's prompt was not published verbatim; this follows its described structure: the task naming
# every variable and the technology, the two stages, the netlist with placeholders, how to read the netlist,
# and the performance-metrics line in the original's wording.
SEED_PROMPT = (
    "Determine the design parameters R0, C0, L1, L2, L3, L4, L5, W1, W2, W3, W4, W5, VIN and VB1 of the "
    "two-stage Miller-compensated operational amplifier below, implemented in a TSMC-style 65 nm CMOS technology "
    "(nch and pch devices), so that it achieves the given performance metrics.\n"
    "The first stage is a differential amplifier: the PMOS input pair M1 and M2 (length L1, width W1) with gates "
    "on VINP and VINN, biased by the PMOS tail current source M5 (L2, W2) whose gate is at VB1, and loaded by the "
    "NMOS current mirror M3 and M4 (L3, W3).\n"
    "The second stage is a common-source amplifier: the NMOS transistor M6 (L4, W4), driven by the first-stage "
    "output net3, with the PMOS current-source load M7 (L5, W5) whose gate is also at VB1. The Miller compensation "
    "capacitor C0 in series with the resistor R0 connects net3 to the output VOUT.\n"
    "Netlist:\n" + _NETLIST_TEMPLATE + "\n"
    "In the netlist, each transistor line gives the device name, its type (pch for PMOS, nch for NMOS), its drain, "
    "gate, source and bulk nodes, then its channel length L and width W; the C0 and R0 lines give their two nodes "
    "and their values. VINP=VINN=VIN is the input common-mode voltage and VB1 the bias voltage.\n"
    "Performance Metrics: {metrics}"
)
SEED_COMPLETION = "To achieve the given performance metrics, the design parameters are:\n{netlist}\nAnd with biasing " \
                  "voltages of VINP=VINN=VIN= {vin}, VB1={vb1}."
CHAT_SYSTEM = ("You size a two-stage Miller op-amp (PMOS input pair M1/M2, NMOS mirror M3/M4, PMOS tail M5, NMOS "
               "second stage M6, PMOS load M7, R0 in series with C0 from net3 to VOUT). Given target metrics, answer "
               "with the netlist lines and biases only.")
# Compact keys, in order; all values in SI with SPICE suffixes.
COMPACT_METRICS = (("gain", "gain_db", "dB"), ("bw", "bw3db_hz", "Hz"), ("ugb", "ugb_hz", "Hz"), ("pm", "pm_deg", "deg"),
                   ("gm", "gm_db", "dB"), ("power", "power_w", "W"))


def _sig(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}"


def seed_metrics_line(m: Metrics) -> str:
    """`Power=...W, Gain=...dB, 3dB Bandwidth (BW_3dB)=...Hz, ...` as the original prompts write it."""
    gm = f"{_sig(m.gm_db)}dB" if m.gm_db is not None else "none (the phase never reaches -180 degree)"
    bw = f"{_sig(m.bw3db_hz)}Hz" if m.bw3db_hz is not None else "none"
    return (f"Power={_sig(m.power_w)}W, Gain={_sig(m.gain_db)}dB, 3dB Bandwidth (BW_3dB)={bw}, "
            f"Unity Gain Bandwidth (UGB)={_sig(m.ugb_hz)}Hz, Phase Margin (PM)={_sig(m.pm_deg)}degree, "
            f"Gain Margin (GM)={gm}")


def _short(value: float | None, unit: str) -> str:
    if value is None:
        return "none"
    if unit in ("dB", "deg"):
        return f"{value:.1f}"
    return format_spice(float(f"{value:.3g}"))


def compact_prompt(m: Metrics) -> str:
    """`gain=64.1 bw=3.42k ugb=4.52Meg pm=2.7 gm=0.5 power=6.21u`: dB and degrees bare, SI suffixes otherwise."""
    return " ".join(f"{name}={_short(getattr(m, key), unit)}" for name, key, unit in COMPACT_METRICS)


def compact_completion(design: Design) -> str:
    """`R0=3k C0=1p L1=622n W1=15u ... VIN=605m VB1=932m`: exact SPICE values."""
    values = design.to_dict()
    return " ".join(f"{k}={format_spice(values[k])}" for k in DESIGN_KEYS)


def seed_completion(design: Design) -> str:
    answer = render_answer(design)
    netlist, bias = answer.rsplit("\n", 1)
    vin, vb1 = re.match(r"VINP=VINN=VIN= (\S+), VB1=(\S+)", bias).groups()
    return SEED_COMPLETION.format(netlist=netlist, vin=vin, vb1=vb1)


Start = tuple[Design, Metrics]
"""A starting design and its simulated metrics: what an edit prompt shows besides the targets."""


class FormatError(IcgenError):
    """A pair format that does not exist, or an edit prompt without its starting design."""


@dataclass(frozen=True)
class PairFormat:
    """One way of writing a spec -> sizing example: the prompt for a metric set (and, for edit formats, a starting
    design with its metrics), the pair, and the completion parser."""

    name: str
    """The format's name in configs and on the command line."""
    prompt: Callable[[Metrics, Start | None], str]
    """The prompt for these metrics (and start), ending with the separator."""
    pair: Callable[[Design, Metrics, Start | None], dict]
    """One training example."""
    parse: Callable[[str, Design | None], ParsedAnswer]
    """Read a completion back into a design (fix formats change the start's design; the others ignore it)."""
    trainable: bool = True
    """Whether `icgen train`'s prompt/completion trainer takes it (chat pairs are messages)."""
    needs_start: bool = False
    """The prompt carries a starting design and its metrics (retrieval-augmented); pairs come from `draw_edits`."""
    specs_prompt: Callable[[Specs, Start], str] | None = None
    """The prompt written from the user's bounds themselves (rather than from target metrics), when the format has
    one; `icgen.llm.complete.spec_prompt` uses it."""
    simulated_pairs: bool = False
    """Its training pairs come from simulating moves around each start (`icgen.llm.fixes`), not from the table."""


def _seed_pair(design: Design, metrics: Metrics, start: Start | None = None) -> dict:
    return {"prompt": _seed_prompt(metrics), "completion": seed_completion(design)}


def _seed_prompt(metrics: Metrics, start: Start | None = None) -> str:
    return SEED_PROMPT.format(metrics=seed_metrics_line(metrics)) + SEPARATOR


def _compact_pair(design: Design, metrics: Metrics, start: Start | None = None) -> dict:
    return {"prompt": compact_prompt(metrics) + SEPARATOR, "completion": compact_completion(design)}


def _chat_messages(metrics: Metrics) -> list[dict]:
    return [{"role": "system", "content": CHAT_SYSTEM},
            {"role": "user", "content": "Target metrics: " + seed_metrics_line(metrics)}]


def _chat_pair(design: Design, metrics: Metrics, start: Start | None = None) -> dict:
    return {"messages": _chat_messages(metrics) + [{"role": "assistant", "content": render_answer(design)}]}


def edit_prompt(metrics: Metrics, start: Start | None) -> str:
    """`want <targets>`, `from <starting design>`, `has <its simulated metrics>`, one line each (compact forms)."""
    if start is None:
        raise FormatError("the edit format's prompt needs a starting design and its metrics")
    design, has = start
    return (f"want {compact_prompt(metrics)}\nfrom {compact_completion(design)}\nhas {compact_prompt(has)}"
            + SEPARATOR)


def _edit_pair(design: Design, metrics: Metrics, start: Start | None) -> dict:
    return {"prompt": edit_prompt(metrics, start), "completion": compact_completion(design)}


def _bound(key: str, value: float) -> str:
    kind = SPEC_KINDS[key]
    return f"{_COMPACT_NAME[key]}{'<' if kind.bound == 'max' else '>'}{_short(value, _COMPACT_UNIT[key])}"


def fix_prompt(specs: Specs, start: Start | None) -> str:
    """`need <the given open-loop bounds>`, `from <start>`, `has <its metrics, each missed bound marked !>`."""
    if start is None:
        raise FormatError("the fix format's prompt needs a starting design and its metrics")
    design, has = start
    bounds = {k: v for k, v in specs.core().items()}
    if not bounds:
        raise FormatError("the fix format's prompt needs at least one of the open-loop specs "
                          "(gain, bw, ugb, pm, gm, power)")
    missed = {c.key for c in check_specs(has, specs) if not c.met and c.key in bounds}
    need = " ".join(_bound(key, bounds[key]) for _, key, _ in COMPACT_METRICS if key in bounds)
    shown_has = " ".join(f"{name}={_short(getattr(has, key), unit)}{'!' if key in missed else ''}"
                         for name, key, unit in COMPACT_METRICS)
    return f"need {need}\nfrom {compact_completion(design)}\nhas {shown_has}" + SEPARATOR


def _fix_pair(design: Design, metrics: Metrics, start: Start | None) -> dict:
    """The bounds `metrics` meets (relaxed as the eval relaxes them), the start, and the moves from it to `design`."""
    if start is None:
        raise FormatError("a fix pair needs a starting design and its metrics")
    return {"prompt": fix_prompt(relaxed_specs(metrics), start), "completion": format_fix(start[0], design)}


def _ignore_start(parse: Callable[[str], ParsedAnswer]) -> Callable[[str, Design | None], ParsedAnswer]:
    return lambda text, start=None: parse(text)


_COMPACT_NAME = {key: name for name, key, _ in COMPACT_METRICS}
_COMPACT_UNIT = {key: unit for _, key, unit in COMPACT_METRICS}

REGISTRY: dict[str, PairFormat] = {f.name: f for f in (
    PairFormat("seed", _seed_prompt, _seed_pair, _ignore_start(parse_answer)),
    PairFormat("compact", lambda m, start=None: compact_prompt(m) + SEPARATOR, _compact_pair,
               _ignore_start(parse_compact)),
    PairFormat("chat", lambda m, start=None: "\n".join(x["content"] for x in _chat_messages(m)) + SEPARATOR,
               _chat_pair, _ignore_start(parse_answer), trainable=False),
    PairFormat("edit", edit_prompt, _edit_pair, _ignore_start(parse_compact), needs_start=True),
    PairFormat("fix", lambda m, start=None: fix_prompt(relaxed_specs(m), start), _fix_pair, parse_fix,
               needs_start=True, specs_prompt=fix_prompt, simulated_pairs=True),
)}
FORMATS: tuple[str, ...] = tuple(REGISTRY)


def pair_format(name: str) -> PairFormat:
    """The registered pair format of this name."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise FormatError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}") from None


def make_pair(design: Design, metrics: Metrics, fmt: str, start: Start | None = None) -> dict:
    """One training example: {"prompt", "completion"} (seed, compact, edit) or {"messages": [...]} (chat)."""
    return pair_format(fmt).pair(design, metrics, start)


def parse_completion(text: str, fmt: str, start: Design | None = None) -> ParsedAnswer:
    """Parse a completion of the given format (chat: the assistant's text; fix: moves applied to `start`)."""
    return pair_format(fmt).parse(text, start)


def completion_text(pair: dict) -> str:
    """The text a model must produce for this pair."""
    return pair["messages"][-1]["content"] if "messages" in pair else pair["completion"]


def export_pairs(data: Dataset, fmt: str, split: str, kind: str = "heldout") -> list[dict]:
    """Pairs for the working rows of one split (train | validation | test) of a split kind (heldout | random)."""
    from ..data.dataset import design_of, metrics_of  # pandas, on use: the CLI imports this module for its names

    form = pair_format(fmt)
    if form.needs_start:
        raise FormatError(f"the {fmt} format's pairs need starting designs: use icgen.llm.edits.dataset_pairs")
    pairs = []
    for _, row in data.rows(split, kind).iterrows():
        pair = form.pair(design_of(row), metrics_of(row))
        pair["index"] = int(row["index"])
        pairs.append(pair)
    return pairs


def pair_token_counts(pairs: list[dict], tokenizer) -> list[int]:
    """Tokens per pair (prompt + completion, or the chat rendered with the tokenizer's template)."""
    counts = []
    for pair in pairs:
        if "messages" in pair:
            ids = tokenizer.apply_chat_template(pair["messages"], tokenize=True)
            counts.append(len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids))
        else:
            counts.append(len(tokenizer(pair["prompt"] + pair["completion"])["input_ids"]))
    return counts
