"""The GPU check: steper's training and generation paths on a Qwen2.5-0.5B-shaped model.

    python benchmarks/gpu_check.py                 # one CUDA GPU, no network; ~2-4 min on an H100
    python benchmarks/gpu_check.py --dry           # the same code path on CPU, tiny sizes, ~30 s
    bash scripts/gpu_check.sh [--dry]              # the same, after checking the wheels it needs

What it runs, in order:
1. A byte-level BPE tokenizer trained on synthetic step-wise rows (steper.distill.synthetic), and a
   randomly initialised Qwen2 with Qwen2.5-0.5B's sizes (hidden 896, 24 layers, 14 heads / 2 KV
   heads, FFN 4864, vocabulary 151,936, tied embeddings; 494 M parameters), saved as a transformers
   folder (no download: the weights are random, the shapes are the real ones).
2. Training, bf16-mixed, without and with gradient checkpointing: the model loaded by
   `steper.distill.models.load_student` (fp32 master weights, checkpointing as train.py turns it
   on), `StepwiseDataModule` batches (length-grouped, batch 8, examples of 315-2,005 tokens),
   `StepwiseDistillationModule` with adaptive weighting under a `lightning.Trainer` as train.py
   configures it (AdamW, cosine schedule, gradient clipping 1.0). Warm-up steps are not timed.
   Reported: tokens/s (non-padding), step time, peak memory, model FLOP/s and MFU.
3. Generation with steper's hf backend (`HFGenerator.from_pretrained`, bf16, greedy, the configs'
   64 new tokens and "\\n" stop) at micro-batch 1 and 32: generated tokens/s. A random model rarely
   writes a stop string or EOS, so nearly every row decodes all 64 tokens.

MFU = 6·N·tokens/s / peak, N = all parameters (the tied embedding once: as the LM head it does
the work); attention scores are left out of the model FLOPs (reported separately). The peak is the
dense bf16 tensor-core rate of the card: H100 SXM / H200 989 TFLOP/s, H100 NVL 835, H100 PCIe 756,
A100 312; `--peak-tflops` for another card. With gradient checkpointing the hardware redoes the
forward (8·N per token) but MFU counts 6·N, the usual convention.

The result is JSON: `$OUT/gpu_check.json` when OUT is set, else `--out` (default
outputs/gpu_check/gpu_check.json). Time estimate for the GPU mode on one H100 (not measured yet):
training 2 × 25 steps × 6·N·≈9k tokens ≈ 1.3 PFLOP (+⅓ of the second half for recomputation)
≈ 4-16 s at 10-40 % MFU; generation 8 + 64 requests × 64 tokens, ≈ 512 batch-1 decode steps and
128 batch-32 ones at ≤ 50 ms each ≈ 30 s; model build, save and three loads ≈ 1 min. Under 3 min
in all, well inside the 8-minute budget.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

# Sizes per mode. `gpu`: Qwen2.5-0.5B's shape and train.py's batch for it (conf/model/qwen0.5b.yaml:
# batch 8; max_length 2048 rather than 4096, so that the no-checkpointing run fits any 40 GB+ card).
SIZES: dict[str, dict[str, Any]] = {
    "gpu": {
        "hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864, "vocab": 151936,
        "tokenizer_vocab": 4096, "batch": 8, "max_length": 2048, "warmup": 5, "steps": 20,
        "gen_batches": (1, 32), "gen_requests": {1: 8, 32: 64}, "max_new_tokens": 64, "prompt_words": 400,
    },
    "dry": {
        "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128, "vocab": 2048,
        "tokenizer_vocab": 512, "batch": 2, "max_length": 128, "warmup": 1, "steps": 2,
        "gen_batches": (1, 4), "gen_requests": {1: 2, 4: 4}, "max_new_tokens": 8, "prompt_words": 20,
    },
}
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0))


def quiet() -> None:
    """Library chatter off: the output is the check's own lines and the JSON path."""
    warnings.filterwarnings("ignore")
    import lightning.pytorch  # noqa: F401 - it sets its loggers' levels when imported: import first

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers", "steper"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def peak_flops(device_name: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- model and data


def make_rows(n_questions: int, max_length: int, seed: int) -> list[dict]:
    """Step-wise rows whose two passages fill most of `max_length` (≈ one token per filler word
    with the tokenizer trained below): example lengths spread over about [0.25, 1] × max_length."""
    from steper.distill.synthetic import synthetic_stepwise_rows

    low = max(1, max_length // 8)
    high = max(low + 1, max_length // 2 - 40)
    return synthetic_stepwise_rows(n_questions, seed, (low, high), ("first", "mid", "final"))


def build_model_dir(work: Path, sizes: dict, rows: list[dict], device: str) -> Path:
    """A random Qwen2 of the given sizes + a BPE tokenizer trained on the rows, saved as a folder."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from steper.distill.encoding import row_text
    from steper.distill.tiny import train_tokenizer

    texts = [row_text(r) for r in rows]
    tok = train_tokenizer(texts, vocab_size=sizes["tokenizer_vocab"])
    config = Qwen2Config(
        vocab_size=sizes["vocab"],
        hidden_size=sizes["hidden"],
        intermediate_size=sizes["intermediate"],
        num_hidden_layers=sizes["layers"],
        num_attention_heads=sizes["heads"],
        num_key_value_heads=sizes["kv_heads"],
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device(device):  # random init on the GPU: seconds instead of a minute on CPU
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    out = work / "model"
    model.to(torch.bfloat16).save_pretrained(out)  # bf16 on disk; training loads it back as fp32
    tok.save_pretrained(out)
    del model
    return out


# --------------------------------------------------------------------------- training


def train_once(model_dir: Path, data_dir: Path, sizes: dict, device: str, checkpointing: bool) -> dict:
    import lightning.pytorch as L
    from timing_trainer import timing_trainer

    from steper.distill.datamodule import StepwiseDataModule
    from steper.distill.models import count_parameters, load_student
    from steper.distill.module import StepwiseDistillationModule
    from steper.distill.weighting import AdaptiveWeighting

    model, tok = load_student(str(model_dir), dtype="float32", gradient_checkpointing=checkpointing)
    n_params = count_parameters(model)[1]
    # what the model reports, so a run that asked for checkpointing and did not get it shows
    active = getattr(model, "is_activation_checkpointing", None)  # transformers >= 5
    if active is None:
        active = getattr(model, "is_gradient_checkpointing", False)
    dm = StepwiseDataModule(str(data_dir), batch_size=sizes["batch"], max_length=sizes["max_length"], seed=0)
    dm.set_tokenizer(tok)
    # train.py's optimizer (conf/train.yaml) with the 0.5B model's lr (conf/model/qwen0.5b.yaml)
    module = StepwiseDistillationModule(
        model,
        AdaptiveWeighting(lr=1e-2),
        partial(torch.optim.AdamW, lr=5e-6, betas=(0.9, 0.999), eps=1e-8),
        warmup_ratio=0.03,
    )
    warmup, steps = sizes["warmup"], sizes["steps"]

    class Timer(L.Callback):
        """Tokens and time over steps [warmup, warmup + steps); syncs only at the window's ends."""

        def __init__(self) -> None:
            self.t0 = self.t1 = None
            self.tokens = self.target_tokens = self.padded = 0
            self.step_marks: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == warmup and self.t0 is None:
                sync(device)
                self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self.t0 is None:
                return
            s = batch["stats"]
            self.tokens += s["tokens"]
            self.target_tokens += s["target_tokens"]
            self.padded += s["padded"]
            self.step_marks.append(time.perf_counter())  # host time: launch-ahead blurs single steps
            if trainer.global_step == warmup + steps:
                sync(device)
                self.t1 = time.perf_counter()

    timer = Timer()
    trainer = timing_trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        precision="bf16-mixed",
        max_steps=warmup + steps,
        gradient_clip_val=1.0,
        callback=timer,
    )
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit_s = time.perf_counter() - started
    if timer.t1 is None:
        raise RuntimeError(f"training stopped after {trainer.global_step} of {warmup + steps} steps")
    secs = timer.t1 - timer.t0
    gaps = [b - a for a, b in zip([timer.t0, *timer.step_marks], timer.step_marks)]
    lengths = dm.datasets["train"].lengths
    out = {
        "gradient_checkpointing": checkpointing,
        "checkpointing_active": bool(active),
        "params": n_params,
        "timed_steps": steps,
        "warmup_steps": warmup,
        "tokens": timer.tokens,
        "target_tokens": timer.target_tokens,
        "real_token_share": timer.tokens / timer.padded,
        "seconds": secs,
        "tokens_per_s": timer.tokens / secs,
        "step_s_mean": secs / steps,
        "step_s_median_host": statistics.median(gaps),
        "fit_s": fit_s,
        "example_tokens_mean": float(lengths.mean()),
        "loss_finite": bool(torch.isfinite(torch.tensor(float(trainer.callback_metrics["train/loss"])))),
    }
    if device == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del trainer, module, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


# --------------------------------------------------------------------------- generation


def generate(model_dir: Path, rows: list[dict], sizes: dict) -> list[dict]:
    from steper.generators.base import GenerationRequest
    from steper.generators.hf import HFGenerator

    # auto: bf16 on the GPU, fp32 on CPU (the backend's own default)
    gen = HFGenerator.from_pretrained(
        str(model_dir), dtype="auto", device="auto", max_new_tokens=sizes["max_new_tokens"], stop=("\n",)
    )
    words = sizes["prompt_words"]
    from steper.distill.encoding import row_prompt

    prompts = [row_prompt(r) for r in rows if r["task"] == "final"]
    # one prompt cut to about `prompt_words` words per request: the loop's prompts are a few hundred tokens
    requests = [GenerationRequest(" ".join(p.split()[:words])) for p in prompts]
    results = []
    device = str(gen.model.device)
    try:
        for b in sizes["gen_batches"]:
            n = sizes["gen_requests"][b]
            batch = (requests * (n // max(len(requests), 1) + 1))[:n]
            gen.batch_size = b
            gen.generate(batch[:b])  # warm-up: kernels, allocator
            gen.stats.clear()
            sync("cuda" if device.startswith("cuda") else "cpu")
            t0 = time.perf_counter()
            texts = gen.generate(batch)
            sync("cuda" if device.startswith("cuda") else "cpu")
            secs = time.perf_counter() - t0
            new = int(gen.stats.get("generated_tokens", 0))
            results.append({
                "batch_size": b,
                "requests": n,
                "prompt_tokens_mean": gen.stats.get("prompt_tokens", 0) / n,
                "generated_tokens": new,
                "generated_tokens_per_request": new / n,
                "seconds": secs,
                "generated_tokens_per_s": new / secs,
                "requests_per_s": n / secs,
                "all_returned": all(t is not None for t in texts),
            })
    finally:
        gen.close()
    return results


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry", action="store_true", help="CPU, tiny sizes, a few steps: the same code path")
    ap.add_argument("--out", type=Path, default=Path("outputs/gpu_check/gpu_check.json"),
                    help="result JSON (ignored when $OUT is set: $OUT/gpu_check.json)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the card, if not listed")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (default per mode)")
    args = ap.parse_args(argv)
    mode = "dry" if args.dry else "gpu"
    sizes = dict(SIZES[mode])
    if args.steps:
        sizes["steps"] = args.steps
    if mode == "gpu" and not torch.cuda.is_available():
        print("no CUDA device: run the GPU check on a GPU machine, or --dry for its CPU mode", file=sys.stderr)
        return 2
    device = "cuda" if mode == "gpu" else "cpu"
    if device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))  # the CPU dry run shares a small machine
    quiet()
    from steper.io import write_jsonl

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="steper-gpu-check-"))
    # enough examples (3 per question) for every step to get a full batch, with a margin
    n_questions = -(-(sizes["warmup"] + sizes["steps"]) * sizes["batch"] // 3) + 10
    rows = make_rows(n_questions, sizes["max_length"], 0)
    data = work / "stepwise"
    data.mkdir()
    write_jsonl(data / "train.jsonl", rows)
    write_jsonl(data / "validation.jsonl", make_rows(1, sizes["max_length"], 1))
    model_dir = build_model_dir(work, sizes, rows, device)
    prepared = time.perf_counter() - started
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    peak = peak_flops(name, args.peak_tflops) if device == "cuda" else None
    print(f"{mode} mode on {name}: Qwen2 hidden {sizes['hidden']}, {sizes['layers']} layers, vocab "
          f"{sizes['vocab']}; batch {sizes['batch']} x up to {sizes['max_length']} tokens", flush=True)

    training = []
    for checkpointing in (False, True):
        r = train_once(model_dir, data, sizes, device, checkpointing)
        n = r["params"]
        attn = 6 * sizes["layers"] * sizes["hidden"] * r["example_tokens_mean"]  # causal: half of 12·L·d·T
        r["model_flops_per_token"] = 6 * n
        r["attention_flops_per_token"] = attn
        r["model_flops_per_s"] = 6 * n * r["tokens_per_s"]
        r["mfu"] = r["model_flops_per_s"] / peak if peak else None
        r["mfu_with_attention"] = (6 * n + attn) * r["tokens_per_s"] / peak if peak else None
        training.append(r)
        mfu = f", MFU {r['mfu']:.1%}" if r["mfu"] is not None else ""
        mem = f", peak memory {r['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in r else ""
        print(f"train, gradient checkpointing {'on ' if checkpointing else 'off'}: {r['tokens_per_s']:,.0f} tokens/s, "
              f"{r['step_s_mean'] * 1000:.0f} ms/step, {r['model_flops_per_s'] / 1e12:.3g} model TFLOP/s{mfu}{mem}",
              flush=True)
    gen = generate(model_dir, rows, sizes)
    for g in gen:
        print(f"generate, batch {g['batch_size']:>2}: {g['generated_tokens_per_s']:,.0f} generated tokens/s "
              f"({g['requests']} requests, {g['generated_tokens_per_request']:.1f} new tokens each, "
              f"{g['prompt_tokens_mean']:.0f} prompt tokens)", flush=True)

    import lightning
    import transformers

    result = {
        "mode": mode,
        "device": name,
        "peak_bf16_flops_per_s": peak,
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
                     "lightning": lightning.__version__, "python": sys.version.split()[0]},
        "sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sizes.items()},
        "training": training,
        "generation": gen,
        "prepare_s": prepared,
        "total_s": time.perf_counter() - started,
    }
    out = Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {result['total_s']:.0f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
