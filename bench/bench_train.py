"""Training throughput of LoRA on the default base on this machine, per pair format.

    .venv/bin/python bench/bench_train.py [--steps 6] [--batch-size 8] [--base smollm2-135m] [--formats compact,seed]
        [--lora-layers all,10] [--data data/ptm65] [--name train]

For each format (compact, seed, edit) and each LoRA placement (all layers, or the top N) runs real optimizer steps
on training pairs and reports tokens/s and seconds per 1000 pairs (excluding the first, warm-up step), and each
placement's speed as a ratio to all layers in the same run; writes bench/results/NAME.json. On CUDA it uses the
shipped QLoRA settings (quant auto -> nf4), so the same script measures a GPU.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result  # noqa: E402
from icgen.core.paths import CONFIG_DIR  # noqa: E402
from icgen.llm.train import Collator, build_examples, hardware, load_base_model, load_config, load_pairs, lora_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--formats", default="compact,seed")
    parser.add_argument("--lora-layers", default="all", help="comma list: all, or a number of top layers")
    parser.add_argument("--data", default="data/ptm65")
    parser.add_argument("--name", default="train")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    import torch
    from peft import get_peft_model

    if not torch.cuda.is_available():
        torch.set_num_threads(os.cpu_count() or 1)
    results = {"hardware": hardware(), "base": args.base, "batch_size": args.batch_size, "steps": args.steps,
               "ld_preload": os.environ.get("LD_PRELOAD", ""), "formats": {}}
    variants = [(fmt, None if layers == "all" else int(layers)) for fmt in args.formats.split(",")
                for layers in args.lora_layers.split(",")]
    for fmt, layers in variants:
        values = {"base": args.base, "format": fmt, "max_length": 1024, "quant": "auto", "data": args.data,
                  "lora_layers": layers}
        config = load_config(CONFIG_DIR / "smollm2-135m-cpu.yaml", values)
        model, folder = load_base_model(config)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        pairs = load_pairs(config, "train", args.batch_size * (args.steps + 1))
        examples, _ = build_examples(pairs, tokenizer, config.max_length, "fail")
        model = get_peft_model(model, lora_config(config, model.config.num_hidden_layers))
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        collate = Collator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        device = next(model.parameters()).device
        tokens = 0
        elapsed = 0.0
        for step in range(args.steps + 1):
            batch = collate(examples[step * args.batch_size:(step + 1) * args.batch_size])
            batch = {k: v.to(device) for k, v in batch.items()}
            start = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if step > 0:  # the first step warms caches and allocators up
                elapsed += time.perf_counter() - start
                tokens += int(batch["attention_mask"].sum())
        pairs_timed = args.steps * args.batch_size
        label = fmt if layers is None else f"{fmt}@top{layers}"
        entry = {"tokens_per_s": tokens / elapsed, "s_per_1000_pairs": elapsed / pairs_timed * 1000,
                 "mean_tokens_per_pair": tokens / pairs_timed, "lora_layers": layers or "all"}
        if layers is not None and fmt in results["formats"]:
            entry["speed_vs_all_layers"] = entry["tokens_per_s"] / results["formats"][fmt]["tokens_per_s"]
        results["formats"][label] = entry
        print(f"{label:<14} {tokens / elapsed:8.1f} tokens/s  {elapsed / pairs_timed * 1000:8.0f} s per 1000 pairs  "
              f"({tokens / pairs_timed:.0f} tokens/pair, {hardware()})"
              + (f"  x{entry['speed_vs_all_layers']:.2f} vs all layers" if "speed_vs_all_layers" in entry else ""))
        del model, optimizer
    results["command"] = " ".join(["bench/bench_train.py", *sys.argv[1:]])
    print(f"wrote {write_result(args.out, args.name, results)}")


if __name__ == "__main__":
    main()
