"""Preference tuning: the ranking of simulated answers into (chosen, rejected) pairs, the resumable sampler on a fake
pool, the rejection-sampling pairs, the DPO settings, and real DPO steps on a tiny random Llama whose reference is
the SFT model (base + SFT adapter), not the bare base."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from icgen.core.design import EXAMPLE_DESIGN, Design, Metrics
from icgen.core.errors import ConfigError
from icgen.core.measure import DeviceOp, Health
from icgen.core.score import Specs
from icgen.core.status import Status
from icgen.core.tech import load_technology
from icgen.llm import preferences as prefs
from icgen.llm.dpo import DPOSettings, load_settings
from icgen.llm.pairs import compact_completion
from icgen.llm.preferences import PreferenceConfig, Tier, judged, pairs_of, preference_config, rft_pairs_of
from icgen.sim.simulate import SimResult

DATA = Path(__file__).resolve().parent.parent / "data" / "ptm65"
TECH = load_technology("ptm65")
SPECS = Specs(gain_db=45.0, pm_deg=50.0)


def _health(weak: bool = False) -> Health:
    devices = tuple(DeviceOp(name=f"M{i}", region="triode" if weak and i == 1 else "saturation", vgs_v=0.5,
                             vds_v=0.4, vth_v=0.4, vdsat_v=0.1, saturation_margin_v=0.3, id_a=1e-6, gm_s=1e-5,
                             gds_s=1e-7) for i in range(1, 8))
    return Health(vout_v=0.6, vdd_v=1.2, devices=devices, flags=("M1 in the triode region",) if weak else ())


def _result(gain_db: float, status: Status = Status.OK, weak: bool = False) -> SimResult:
    metrics = Metrics(gain_db=gain_db, bw3db_hz=1e3, ugb_hz=1e6, pm_deg=60.0, gm_db=10.0, power_w=1e-5)
    return SimResult(design=EXAMPLE_DESIGN, status=status, reason=None if status == Status.OK else "no",
                     metrics=metrics if status == Status.OK else None, health=_health(weak), tech="ptm65",
                     testbench="open_loop", backend="fake", seconds=0.0)


def _record(*answers: dict) -> dict:
    return {"prompt": "need gain>45\n", "answers": list(answers)}


def _pairs(record: dict) -> set[tuple[str, str]]:
    return {(p["chosen"], p["rejected"]) for p in pairs_of(record)}


def test_met_beats_missed_and_smaller_shortfall_beats_larger():
    met, near, far = judged("met", True, _result(46.0), SPECS), judged("near", True, _result(44.0), SPECS), \
        judged("far", True, _result(35.0), SPECS)
    assert (met["tier"], near["tier"]) == (Tier.MET, Tier.MISSED)
    assert near["shortfall"] < far["shortfall"]
    assert _pairs(_record(far, met, near)) == {("met", "near"), ("met", "far"), ("near", "far")}


def test_valid_beats_unparseable_and_healthy_beats_unhealthy_or_failed():
    missed = judged("missed", True, _result(40.0), SPECS)
    weak_but_meeting = judged("weak", True, _result(50.0, weak=True), SPECS)  # meets on paper, a device off
    failed = judged("failed", True, _result(0.0, status=Status.FAILED), SPECS)
    garbage = judged("R0=oops", False, None, SPECS)
    assert weak_but_meeting["tier"] == failed["tier"] == Tier.UNHEALTHY and garbage["tier"] == Tier.INVALID
    assert _pairs(_record(garbage, failed, weak_but_meeting, missed)) == {
        ("missed", "weak"), ("missed", "failed"), ("missed", "R0=oops"),
        ("weak", "failed"),  # unhealthy (its metrics) ranks over failed (none): a smaller shortfall
        ("weak", "R0=oops"), ("failed", "R0=oops")}


def test_ties_and_repeated_texts_give_no_pair():
    a, b = judged("a", True, _result(46.0), SPECS), judged("b", True, _result(48.0), SPECS)  # both met: a tie
    x, y = judged("x", False, None, SPECS), judged("y", False, None, SPECS)  # both unparseable: a tie
    assert pairs_of(_record(a, b, x, y)) != [] and _pairs(_record(a, b, x, y)) == {
        ("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")}
    assert pairs_of(_record(a, b)) == [] and pairs_of(_record(x, y)) == []
    assert pairs_of(_record(a, judged("a", True, _result(46.0), SPECS))) == []


def test_rejection_sampling_pairs_are_the_answers_that_met_once_each():
    met = judged("R0=3k", True, _result(46.0), SPECS)
    record = _record(met, met, judged("far", True, _result(35.0), SPECS), judged("??", False, None, SPECS))
    assert rft_pairs_of(record) == [{"prompt": "need gain>45\n", "completion": "R0=3k"}]


GOOD = EXAMPLE_DESIGN.replace(W1=30e-6)
BAD = EXAMPLE_DESIGN.replace(W1=15e-6)


class VerdictPool:
    """Answers like SimulatorPool.map (out of order): GOOD is a superb amplifier, anything else a poor one."""

    def __init__(self) -> None:
        self.designs: list[Design] = []

    def map(self, designs, config):
        designs = list(designs)
        self.designs += designs
        assert config.benches == ("buffer_ac",)  # simulated as the eval simulates
        for index, design in reversed(list(enumerate(designs))):
            good = design == GOOD
            metrics = Metrics(gain_db=120.0 if good else 10.0, bw3db_hz=1e7 if good else 1.0,
                              ugb_hz=1e10 if good else 10.0, pm_deg=89.0 if good else 1.0, gm_db=40.0,
                              power_w=1e-12 if good else 1.0)
            yield index, SimResult(design=design, status=Status.OK, reason=None, metrics=metrics, health=_health(),
                                   tech="ptm65", testbench="open_loop", backend="fake", seconds=0.0)


def fake_complete(model, tokenizer, prompts, fmt="compact", num_samples=1, temperature=0.0, max_new_tokens=160,
                  batch_size=16, seed=0, starts=None):
    """K answers per prompt: the good design, the bad one and an unparseable one, cycled."""
    from icgen.llm.complete import Completion
    from icgen.llm.pairs import parse_completion

    assert temperature > 0 and starts is not None and len(starts) == len(prompts)
    texts = [compact_completion(GOOD), compact_completion(BAD), "R0=? C0=?"]
    return [Completion(prompt_index=i, text=texts[k % 3], parsed=parse_completion(texts[k % 3], fmt))
            for i in range(len(prompts)) for k in range(num_samples)]


@pytest.fixture
def training_rows():
    from icgen.data.dataset import Dataset

    data = Dataset(DATA).require()
    return data.training_rows("heldout"), set(data.split_index("train", "heldout"))


def test_sampler_writes_trl_pairs_rft_pairs_and_provenance_and_resumes(monkeypatch, tmp_path, training_rows):
    import icgen.llm.complete

    train, train_index = training_rows
    monkeypatch.setattr(icgen.llm.complete, "complete", fake_complete)
    pool = VerdictPool()
    config = PreferenceConfig(samples=3, temperature=0.7, targets=5, chunk=2)
    meta = prefs.preference_pairs(None, None, "compact", train, TECH, pool, tmp_path, config, "runs/sft")
    records = [json.loads(line) for line in (tmp_path / "samples-seed0.jsonl").read_text().splitlines()]
    assert len(records) == meta["targets"] == 5 and all(r["index"] in train_index for r in records)
    assert all(r["start_index"] != r["index"] and r["start_index"] in train_index for r in records)
    assert meta["simulations"] == len(pool.designs) == 10  # the unparseable answer is never simulated
    pairs = [json.loads(line) for line in (tmp_path / "preferences.jsonl").read_text().splitlines()]
    good, bad = compact_completion(GOOD), compact_completion(BAD)
    assert len(pairs) == 15 and all(set(p) == {"prompt", "chosen", "rejected"} for p in pairs)
    assert sum((p["chosen"], p["rejected"]) == (good, bad) for p in pairs) == 5
    assert sum(p["rejected"] == "R0=? C0=?" for p in pairs) == 10 and not any(p["chosen"] == bad and
                                                                             p["rejected"] == good for p in pairs)
    rft = [json.loads(line) for line in (tmp_path / "rft.jsonl").read_text().splitlines()]
    assert [p["completion"] for p in rft] == [good] * 5 and rft[0]["prompt"] == records[0]["prompt"]
    saved = json.loads((tmp_path / "preferences.json").read_text())
    assert saved["share_met"] == pytest.approx(1 / 3) and saved["settings"]["samples"] == 3
    assert saved["settings"]["temperature"] == 0.7 and saved["settings"]["model"] == "runs/sft"
    assert saved["seed"] == 0 and saved["simulations"] == 10

    lines = (tmp_path / "samples-seed0.jsonl").read_text().splitlines()  # a draw interrupted mid-write
    (tmp_path / "samples-seed0.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    again = VerdictPool()
    meta = prefs.preference_pairs(None, None, "compact", train, TECH, again, tmp_path, config, "runs/sft")
    assert len(again.designs) == 4 and meta["targets"] == 5  # the torn target and the missing one, redrawn
    assert [json.loads(line)["index"] for line in (tmp_path / "samples-seed0.jsonl").read_text().splitlines()] \
        == [r["index"] for r in records[:3]] + [r["index"] for r in records[3:]]
    with pytest.raises(ConfigError, match="other settings"):
        prefs.preference_pairs(None, None, "compact", train, TECH, again, tmp_path,
                               PreferenceConfig(samples=3, temperature=0.9, targets=5), "runs/sft")


def test_missed_starts_only_samples_targets_whose_retrieved_start_misses(monkeypatch, tmp_path, training_rows):
    import icgen.llm.complete
    from icgen.core.score import Specs, shortfall
    from icgen.data.dataset import metrics_of

    train, _ = training_rows
    monkeypatch.setattr(icgen.llm.complete, "complete", fake_complete)
    pool = VerdictPool()
    config = PreferenceConfig(samples=3, temperature=0.7, targets=30, chunk=8, starts="missed")
    meta = prefs.preference_pairs(None, None, "compact", train, TECH, pool, tmp_path, config, "runs/sft")
    records = [json.loads(line) for line in (tmp_path / "samples-seed0.jsonl").read_text().splitlines()]
    by_index = train.set_index("index")
    misses = [shortfall(metrics_of(by_index.loc[r["start_index"]]), Specs.from_dict(r["specs"])) > 0 for r in records]
    assert len(records) == 30 and 0 < sum(misses) < 30  # both kinds among 30 training targets
    for record, missed in zip(records, misses, strict=True):
        assert (len(record["answers"]) == 3) == missed and ("skipped" in record) == (not missed)
    assert meta["targets"] == sum(misses) and meta["skipped"] == 30 - sum(misses)
    assert len(pool.designs) == 2 * sum(misses) and meta["settings"]["starts"] == "missed"
    again = VerdictPool()  # resumed: nothing is ranked or sampled again
    prefs.preference_pairs(None, None, "compact", train, TECH, again, tmp_path, config, "runs/sft")
    assert again.designs == []
    with pytest.raises(ConfigError, match="starts must be one of all, missed"):
        PreferenceConfig(starts="some")


@pytest.mark.parametrize(("values", "message"), [
    ({"beta": 0}, "beta must be a positive number"), ({"beta": -0.1}, "beta must be a positive number"),
    ({"learning_rate": 0}, "learning_rate must be in"), ({"learning_rate": 3}, "learning_rate must be in"),
    ({"from_run": ""}, "from_run must name"), ({"max_length": 4}, "max_length must be between")])
def test_bad_dpo_settings_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message) as err:
        DPOSettings(**{"from_run": "runs/x", **values})
    assert "\n" not in str(err.value)


def test_dpo_settings_load_from_a_stage_dpo_config_with_overrides(tmp_path):
    path = tmp_path / "dpo.yaml"
    path.write_text("stage: dpo\nbeta: 0.2\nepochs: 2\n")
    settings = load_settings(path, ["learning_rate=1e-4"], from_run="runs/sft")
    assert (settings.beta, settings.epochs, settings.learning_rate) == (0.2, 2.0, 1e-4)
    assert settings.out == Path("runs/sft-dpo") and settings.preferences_folder == Path("runs/sft/preferences")
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(path, ["lora_rank=4"], from_run="runs/sft")
    with pytest.raises(ConfigError, match="beta must be"):
        load_settings(path, ["beta=-1"], from_run="runs/sft")
    with pytest.raises(ConfigError, match="samples"):
        preference_config(["samples=1"])
    with pytest.raises(ConfigError, match="temperature"):
        preference_config(["temperature=0"])


# ----------------------------------------------------------------------------- real DPO steps on a tiny Llama

@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """A 2-layer random Llama (the real tokenizer) and an SFT run on it whose LoRA adapter is non-zero."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("trl")
    import yaml
    from peft import get_peft_model

    from icgen.llm.model import load_tokenizer
    from icgen.llm.train import TrainConfig, lora_config

    tokenizer = load_tokenizer()
    base = tmp_path_factory.mktemp("tiny-llama")
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=512, tie_word_embeddings=True, initializer_range=0.5)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    run = tmp_path_factory.mktemp("sft-run")
    train_config = TrainConfig(base=str(base), lora_rank=4, lora_alpha=8, quant="none", output_dir=str(run))
    model = get_peft_model(transformers.AutoModelForCausalLM.from_pretrained(base), lora_config(train_config))
    with torch.no_grad():  # as if SFT had trained it: the adapter moves the model away from the base
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.3)
    model.save_pretrained(run / "adapter")
    tokenizer.save_pretrained(run / "adapter")
    (run / "config.yaml").write_text(yaml.safe_dump({"base": str(base), "format": "compact", "name": "sft"}))
    return run, base


def _pairs_for_dpo() -> list[dict]:
    prompts = [f"gain={g:.1f} bw=1k ugb=1Meg pm=60.0 gm=10.0 power=10u\n" for g in (40, 45, 50, 55)]
    good, bad = compact_completion(EXAMPLE_DESIGN), compact_completion(EXAMPLE_DESIGN.replace(W1=3e-6, R0=9e3))
    return [{"prompt": p, "chosen": good, "rejected": bad} for p in prompts]


def test_dpo_steps_widen_the_margin_against_the_frozen_sft_reference(sft_run, tmp_path):
    import torch
    from safetensors.torch import load_file

    from icgen.llm.dpo import POLICY_ADAPTER, REFERENCE_ADAPTER, preference_stats, prepare_dpo

    run, base = sft_run
    settings = DPOSettings(from_run=str(run), output_dir=str(tmp_path / "dpo"), beta=0.5, learning_rate=0.02,
                           max_steps=6, batch_size=4, logging_steps=1, warmup_ratio=0.0)
    pairs = _pairs_for_dpo()
    prepared = prepare_dpo(settings, pairs)
    model = prepared.model
    sft = load_file(str(run / "adapter" / "adapter_model.safetensors"))

    def adapter(name: str) -> dict:
        return {n.replace(f".{name}.", "."): p.detach().clone() for n, p in model.named_parameters()
                if f".{name}." in n and "lora_" in n}

    reference_before, policy_before = adapter(REFERENCE_ADAPTER), adapter(POLICY_ADAPTER)
    assert reference_before and all(not p.requires_grad for n, p in model.named_parameters()
                                    if f".{REFERENCE_ADAPTER}." in n)
    assert all(torch.equal(reference_before[n], policy_before[n]) for n in policy_before)  # a copy of SFT ...
    saved_b = [v for k, v in sft.items() if "lora_B" in k]
    assert sorted(float(v.abs().sum()) for v in saved_b) == pytest.approx(sorted(
        float(v.abs().sum()) for n, v in reference_before.items() if "lora_B" in n))  # ... the saved SFT adapter,
    assert all(v.abs().sum() > 0 for v in saved_b)  # which is not the bare base (lora_B = 0)

    before = preference_stats(model, prepared.tokenizer, pairs, settings.beta)
    assert before["loss"] == pytest.approx(math.log(2), abs=1e-5) and before["margin"] == pytest.approx(0, abs=1e-5)
    with model.disable_adapter():  # the bare base gives other log-probabilities than the SFT reference
        ids = prepared.tokenizer(pairs[0]["prompt"] + pairs[0]["chosen"], return_tensors="pt")["input_ids"]
        bare = model(input_ids=ids).logits
    model.set_adapter(REFERENCE_ADAPTER)
    sft_logits = model(input_ids=ids).logits
    model.set_adapter(POLICY_ADAPTER)
    for n, p in model.named_parameters():  # set_adapter moved requires_grad: the policy trains, the reference not
        p.requires_grad_(f".{POLICY_ADAPTER}." in n and "lora_" in n)
    assert (bare - sft_logits).abs().max() > 1e-2

    prepared.trainer.train()
    after = preference_stats(model, prepared.tokenizer, pairs, settings.beta)
    assert after["loss"] < before["loss"] - 0.05 and after["margin"] > 0.1 and after["accuracy"] == 1.0
    reference_after, policy_after = adapter(REFERENCE_ADAPTER), adapter(POLICY_ADAPTER)
    assert all(torch.equal(reference_after[n], reference_before[n]) for n in reference_before)
    assert any(not torch.equal(policy_after[n], policy_before[n]) for n in policy_before)
    logged = [r for r in prepared.logger.records if "rewards/margins" in r]
    # TRL's own first step: the policy still equals its reference, so its margin is 0 (against the bare base it is not)
    assert logged[0]["rewards/margins"] == pytest.approx(0, abs=1e-4) and logged[0]["loss"] == pytest.approx(
        math.log(2), abs=1e-3)
    assert logged[-1]["rewards/margins"] > 0.1


def test_train_dpo_writes_a_run_that_loads_like_any_other(sft_run, tmp_path):
    from icgen.llm.dpo import train_dpo
    from icgen.llm.model import load_finetuned, model_info

    run, _ = sft_run
    out = tmp_path / "dpo"
    settings = DPOSettings(from_run=str(run), output_dir=str(out), beta=0.5, learning_rate=0.02, max_steps=3,
                           batch_size=4, logging_steps=1)
    metrics = train_dpo(settings, _pairs_for_dpo())
    assert metrics["steps"] == 3 and metrics["after"]["loss"] < metrics["before"]["loss"]
    assert sorted(p.name for p in (out / "adapter").iterdir() if p.is_dir()) == []  # the reference is not saved
    card = (out / "README.md").read_text()
    assert "## Preference tuning (DPO)" in card and f"{metrics['after']['loss']:.4f}" in card
    assert json.loads((out / "metrics.json").read_text())["stage"] == "dpo"
    assert model_info(out)["format"] == "compact"
    tuned, _ = load_finetuned(out)
    sft, _ = load_finetuned(run)
    import torch

    ids = torch.tensor([[1, 2, 3, 4]])
    assert (tuned(input_ids=ids).logits - sft(input_ids=ids).logits).abs().max() > 1e-4


def test_train_stage_dpo_without_a_run_is_a_one_line_error():
    from click.testing import CliRunner

    from icgen.cli import main

    result = CliRunner().invoke(main, ["train", "--stage", "dpo"])
    assert result.exit_code != 0 and "from_run must name the SFT run folder" in result.output
    assert "Traceback" not in result.output


def test_rft_steps_lower_the_loss_of_the_answers_that_met_and_write_a_loadable_run(sft_run, tmp_path):
    import torch

    from icgen.llm.model import load_finetuned
    from icgen.llm.rft import train_rft

    run, _ = sft_run
    folder = tmp_path / "prefs"
    folder.mkdir()
    pairs = [{"prompt": p["prompt"], "completion": p["chosen"]} for p in _pairs_for_dpo()]
    (folder / "rft.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    settings = load_settings(None, ["learning_rate=0.02", "max_steps=4", "batch_size=4", "warmup_ratio=0"],
                             from_run=str(run), stage="rft")
    assert settings.stage == "rft" and settings.out == Path("runs") / f"{run.name}-rft"
    settings = DPOSettings(**{**settings.__dict__, "output_dir": str(tmp_path / "rft"), "preferences": str(folder)})
    metrics = train_rft(settings)
    assert metrics["steps"] == 4 and metrics["rft_pairs"] == 4 and metrics["stage"] == "rft"
    assert metrics["after"]["loss"] < metrics["before"]["loss"] - 0.1  # the met answers became likelier
    assert "## Rejection-sampling fine-tuning (RFT)" in (tmp_path / "rft" / "README.md").read_text()
    tuned, _ = load_finetuned(tmp_path / "rft")
    sft, _ = load_finetuned(run)
    ids = torch.tensor([[1, 2, 3, 4]])
    assert (tuned(input_ids=ids).logits - sft(input_ids=ids).logits).abs().max() > 1e-4
    with pytest.raises(ConfigError, match="stage must be one of dpo, rft"):
        DPOSettings(from_run="runs/x", stage="sft")


def test_subset_of_is_seeded_keeps_order_and_takes_all_when_small():
    from icgen.llm.dpo import subset_of

    items = list(range(100))
    a, b, c = subset_of(items, 10, 0), subset_of(items, 10, 0), subset_of(items, 10, 1)
    assert a == b and a != c and len(a) == 10 and a == sorted(a) and len(set(a)) == 10
    assert subset_of(items, None, 0) == items and subset_of(items, 500, 0) == items
    with pytest.raises(ConfigError, match="max_pairs"):
        DPOSettings(from_run="runs/x", max_pairs=0)
