"""Preference pairs from the simulator's verdicts: K sampled answers per training target, simulated and ranked.

    prefs = preference_pairs(model, tokenizer, "fix", data.training_rows(), tech, pool, PreferenceConfig(), folder)

For each training target (a seeded shuffle of the training split's working rows, the first `targets`; never a
validation or test row) the bounds are its metrics relaxed as the eval relaxes them; the start is retrieval's first
row from the other training rows; K answers are sampled in the model's own prompt format and simulated as the eval
simulates them (the UGB bench included). Answers are ranked by `answer_rank` (valid over unparseable or out of
bounds; a healthy working amplifier over an unhealthy or failed one; met over missed; smaller shortfall over
larger); every two answers of different rank give a (chosen, rejected) pair, equal ranks give none. The sampled and
simulated answers are cached (one JSON line per target, resumable); TRL's preference JSONL (`prompt`, `chosen`,
`rejected`), the rejection-sampling SFT pairs (the answers that met) and a provenance JSON are written beside them.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from enum import IntEnum
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..core.io import append_drawn, read_jsonl_records, write_json_atomic
from ..core.score import SpecError, Specs, healthy_result, relaxed_specs, result_shortfall, shortfall
from ..core.status import Status
from ..core.tech import Technology
from ..data.dataset import design_of, metrics_of

SAMPLES_FILE = "samples-seed{seed}.jsonl"
"""The cache: one JSON line per target with its prompt and its simulated answers."""
PREFERENCES_FILE = "preferences.jsonl"
"""TRL's preference format: {"prompt", "chosen", "rejected"} per line."""
RFT_FILE = "rft.jsonl"
"""Rejection-sampling fine-tuning pairs: {"prompt", "completion"} of the answers that met their bounds."""
META_FILE = "preferences.json"
"""Provenance of the three files above."""


STARTS = ("all", "missed")
"""PreferenceConfig.starts: which training targets are sampled."""


@dataclass(frozen=True)
class PreferenceConfig:
    """How answers are sampled for preference pairs; the only source of these defaults."""

    samples: int = 4
    """K: answers sampled per target."""
    temperature: float = 0.8
    """Sampling temperature (must be > 0: K greedy answers would be one answer)."""
    targets: int | None = 64
    """Sample for the first N training targets of a seeded shuffle (None: all)."""
    seed: int = 0
    """Seed for the target shuffle and for sampling."""
    max_new_tokens: int = 160
    """Longest sampled completion, in tokens."""
    chunk: int = 16
    """Targets sampled and simulated together (one generate and one pool map per chunk)."""
    starts: str = "all"
    """Which targets are sampled: `all`, or `missed` (only those whose retrieved start misses its bounds, read from
    the table without a simulation: where a fix model's answers differ most, since a met start is mostly `keep`)."""

    def __post_init__(self) -> None:
        checks = [(self.samples >= 2, f"samples (K) must be >= 2 to compare answers, not {self.samples}"),
                  (0 < self.temperature <= 5, f"temperature must be in (0, 5], not {self.temperature}"),
                  (self.targets is None or self.targets >= 1, "targets must be >= 1 or null"),
                  (self.max_new_tokens >= 1 and self.chunk >= 1, "max_new_tokens and chunk must be >= 1"),
                  (self.starts in STARTS, f"starts must be one of {', '.join(STARTS)}, not {self.starts!r}")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def preference_config(overrides: list[str] | dict | None = None) -> PreferenceConfig:
    """A PreferenceConfig from key=value overrides of its defaults, validated."""
    import yaml

    from .train import _coerce  # one coercion rule for every --set

    raw = dict(overrides) if isinstance(overrides, dict) else {}
    for item in overrides if not isinstance(overrides, dict) else []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: use key=value")
        raw[key.strip()] = yaml.safe_load(value) if value.strip() else None
    known = {f.name: f for f in fields(PreferenceConfig)}
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise ConfigError(f"preferences: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return PreferenceConfig(**{k: _coerce(k, v, known[k].type) for k, v in raw.items()})


class Tier(IntEnum):
    """How good an answer is before its shortfall is looked at (lower is better)."""

    MET = 0
    """A healthy working amplifier meeting every bound."""
    MISSED = 1
    """A healthy working amplifier missing some bound."""
    UNHEALTHY = 2
    """Simulated, but unhealthy (railed output, a device out of saturation), not an amplifier, or failed."""
    INVALID = 3
    """Unparseable, with problems, or outside the technology's bounds: never simulated."""


def answer_rank(valid: bool, result, specs: Specs) -> tuple[int, float]:
    """Sort key, best first: the tier, then the shortfall (0 for met, inf for an invalid answer)."""
    if not valid or result is None:
        return int(Tier.INVALID), math.inf
    short = result_shortfall(result, specs)
    if result.status != Status.OK or not healthy_result(result):
        return int(Tier.UNHEALTHY), short
    return (int(Tier.MET), 0.0) if short == 0.0 else (int(Tier.MISSED), short)


def judged(text: str, valid: bool, result, specs: Specs) -> dict:
    """One answer as the cache keeps it: its text, the verdict and its rank."""
    tier, short = answer_rank(valid, result, specs)
    return {"text": text, "valid": valid, "status": str(result.status) if result is not None else None,
            "healthy": healthy_result(result) if result is not None else False,
            "shortfall": None if math.isinf(short) else short, "tier": tier}


def _rank(answer: dict) -> tuple[int, float]:
    return answer["tier"], math.inf if answer["shortfall"] is None else round(answer["shortfall"], 9)


def pairs_of(record: dict) -> list[dict]:
    """(chosen, rejected) pairs of one target's answers: every two distinct answers of different rank, the better one
    chosen; answers of equal rank (and repeats of one text) give none."""
    unique = list({a["text"]: a for a in record["answers"]}.values())
    out = []
    for a, b in combinations(unique, 2):
        if _rank(a) == _rank(b):
            continue
        chosen, rejected = (a, b) if _rank(a) < _rank(b) else (b, a)
        out.append({"prompt": record["prompt"], "chosen": chosen["text"], "rejected": rejected["text"]})
    return out


def rft_pairs_of(record: dict) -> list[dict]:
    """SFT pairs of the answers that met their bounds (each text once): rejection-sampling fine-tuning data."""
    met = {a["text"] for a in record["answers"] if a["tier"] == Tier.MET}
    return [{"prompt": record["prompt"], "completion": text} for text in sorted(met)]


class PreferenceSampler:
    """Samples and simulates K answers per target, chunk by chunk (see the module docstring)."""

    def __init__(self, model, tokenizer, fmt: str, train: pd.DataFrame, tech: Technology, pool,
                 config: PreferenceConfig = PreferenceConfig()) -> None:
        from ..core.score import UGB_BENCHES
        from ..sim.simulate import SimConfig

        self.model, self.tokenizer, self.fmt = model, tokenizer, fmt
        self.train = train[train["working"]].reset_index(drop=True)
        self.tech, self.pool, self.config = tech, pool, config
        self.sim_config = SimConfig(tech=tech, benches=UGB_BENCHES)  # as the eval simulates every answer

    def simulate(self, designs: list) -> list:
        results = [None] * len(designs)
        for i, result in self.pool.map(designs, self.sim_config):
            results[i] = result
        return results

    def prompts(self, rows: pd.DataFrame) -> list[dict]:
        """Per target row that a user could ask for: its bounds, retrieval's start and the model's prompt."""
        from ..data.retrieval import rank_rows
        from .complete import spec_prompt

        out = []
        for _, row in rows.iterrows():
            try:
                specs = relaxed_specs(metrics_of(row))
            except SpecError:  # a metric outside what a user could ask for: not a target
                continue
            ranked = rank_rows(self.train[self.train["index"] != row["index"]], specs)  # never its own answer
            top = ranked.iloc[0]
            start = (design_of(top), metrics_of(top))
            skip = self.config.starts == "missed" and shortfall(start[1], specs) == 0.0  # its start already meets
            out.append({"index": int(row["index"]), "start_index": int(top["index"]), "specs": specs,
                        "start": start[0], "prompt": spec_prompt(specs, start[1], self.fmt, start), "skip": skip})
        return out

    def draw_chunk(self, rows: pd.DataFrame) -> list[dict]:
        """One record per target: prompt, start and the K answers with their verdicts."""
        from .complete import complete

        config = self.config
        every = self.prompts(rows)
        targets = [t for t in every if not t["skip"]]
        skipped = [{"index": t["index"], "start_index": t["start_index"], "specs": t["specs"].given(),
                    "prompt": t["prompt"], "answers": [], "simulations": 0, "skipped": "start meets"}
                   for t in every if t["skip"]]  # kept, so that a resumed draw does not rank them again
        if not targets:
            return skipped
        completions = complete(self.model, self.tokenizer, [t["prompt"] for t in targets], fmt=self.fmt,
                               num_samples=config.samples, temperature=config.temperature,
                               max_new_tokens=config.max_new_tokens, seed=config.seed + targets[0]["index"],
                               starts=[t["start"] for t in targets])
        valid = [c.parsed.design is not None and not c.parsed.problems and not self.tech.out_of_bounds(c.parsed.design)
                 for c in completions]
        simulated = [i for i, ok in enumerate(valid) if ok]
        results = dict(zip(simulated, self.simulate([completions[i].parsed.design for i in simulated]), strict=True))
        records = []
        for n, target in enumerate(targets):
            mine = [i for i, c in enumerate(completions) if c.prompt_index == n]
            answers = [judged(completions[i].text, valid[i], results.get(i), target["specs"]) for i in mine]
            records.append({"index": target["index"], "start_index": target["start_index"],
                            "specs": target["specs"].given(), "prompt": target["prompt"], "answers": answers,
                            "simulations": sum(i in results for i in mine)})
        return records + skipped


def preference_pairs(model, tokenizer, fmt: str, train: pd.DataFrame, tech: Technology, pool, folder: str | Path,
                     config: PreferenceConfig = PreferenceConfig(), model_folder: str | None = None,
                     progress=None) -> dict:
    """Sample, simulate and rank answers for the training targets (resuming an interrupted draw in `folder`), then
    write the TRL preference JSONL, the RFT JSONL and their provenance; returns the provenance."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SAMPLES_FILE.format(seed=config.seed)
    meta_path = folder / META_FILE
    settings = {"format": fmt, "samples": config.samples, "temperature": config.temperature,
                "max_new_tokens": config.max_new_tokens, "model": model_folder,
                "starts": config.starts}
    if meta_path.is_file():
        earlier = json.loads(meta_path.read_text()).get("settings")
        if earlier is not None and earlier != settings:
            raise ConfigError(f"{path} was sampled with other settings ({earlier}); move it away to sample again")
    rows = train[train["working"]]
    rows = rows.iloc[np.random.default_rng(config.seed).permutation(len(rows))]
    if config.targets is not None:
        rows = rows.iloc[:config.targets]
    order = {int(i): n for n, i in enumerate(rows["index"])}
    done = [r for r in read_records(path) if r["index"] in order]
    todo = rows[~rows["index"].isin({r["index"] for r in done})]
    started = time.time()
    sampler = PreferenceSampler(model, tokenizer, fmt, train, tech, pool, config) if len(todo) else None
    if sampler is not None:
        done += append_drawn(path, todo, sampler.draw_chunk, config.chunk, progress)
    done.sort(key=lambda r: order[r["index"]])
    preferences = [p for r in done for p in pairs_of(r)]
    rft = [p for r in done for p in rft_pairs_of(r)]
    _write_jsonl(folder / PREFERENCES_FILE, preferences)
    _write_jsonl(folder / RFT_FILE, rft)
    answers = [a for r in done for a in r["answers"]]
    earlier_s = json.loads(meta_path.read_text()).get("seconds", 0.0) if meta_path.is_file() else 0.0
    from ..core.io import git_sha

    meta = {"what": "icgen preference pairs: sampled answers simulated and ranked (icgen.llm.preferences)",
            "settings": settings, "seed": config.seed, "targets": sum("skipped" not in r for r in done),
            "skipped": sum("skipped" in r for r in done), "simulations":
            sum(r["simulations"] for r in done), "answers": len(answers),
            "share_met": sum(a["tier"] == Tier.MET for a in answers) / len(answers) if answers else 0.0,
            "share_valid": sum(a["valid"] for a in answers) / len(answers) if answers else 0.0,
            "preference_pairs": len(preferences), "rft_pairs": len(rft), "seconds": earlier_s + time.time() - started,
            "files": {"samples": path.name, "preferences": PREFERENCES_FILE, "rft": RFT_FILE},
            "config": asdict(config), "git_sha": git_sha()}
    write_json_atomic(meta, meta_path)
    return meta


read_records = read_jsonl_records
"""Kept under this module's name (icgen.core.io.read_jsonl_records)."""


def read_preferences(folder: str | Path, name: str = PREFERENCES_FILE) -> list[dict]:
    """The pairs written in `folder`: TRL's preference pairs, or with name=RFT_FILE the rejection-sampling ones."""
    path = Path(folder) / name
    if not path.is_file():
        raise ConfigError(f"{folder} has no {name}; make one with icgen data preferences")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, items: list[dict]) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text("".join(json.dumps(item) + "\n" for item in items))
    os.replace(tmp, path)
