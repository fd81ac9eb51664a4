"""Training throughput of the step-wise LightningModule under a Lightning Trainer vs a plain PyTorch
loop doing the same forward / backward / optimizer step on the same batches, and the share of real
(non-padding) tokens per batch with and without length grouping.

    python benchmarks/train_throughput_bench.py                      # CPU, ~3 min
    python benchmarks/train_throughput_bench.py --device cuda --precision bf16-mixed --hidden 1024 --layers 8

Targets: Lightning / plain >= 0.9 (tokens/s, warm-up excluded); real-token share >= 85 % with
length grouping. Runs alternate (Lightning, plain, Lightning, plain, ...) so that drifts in machine
load hit both; the medians are compared. A third arm, plain with full logits (the model's own
forward), shows what computing logits at target positions only saves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as L  # noqa: E402
import torch  # noqa: E402

from steper.distill.datamodule import StepwiseDataModule, real_token_share  # noqa: E402
from steper.distill.models import load_student  # noqa: E402
from steper.distill.module import StepwiseDistillationModule, cosine_with_warmup  # noqa: E402
from steper.distill.synthetic import synthetic_stepwise_rows  # noqa: E402
from steper.distill.weighting import AdaptiveWeighting  # noqa: E402
from steper.io import write_jsonl  # noqa: E402


def stepwise_rows(n: int, seed: int, max_filler: int) -> list[dict]:
    """3-step synthetic chains (first, mid, final) with passages of 0..max_filler extra words."""
    return synthetic_stepwise_rows(n, seed, filler=(0, max_filler), tasks=("first", "mid", "final"))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class WindowTimer(L.Callback):
    """Times training steps [warmup, end): tokens and seconds."""

    def __init__(self, warmup: int, device: str):
        self.warmup, self.device = warmup, device
        self.t0 = self.t1 = self.c0 = self.c1 = None
        self.tokens = self.target_tokens = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.t0 is None and trainer.global_step == self.warmup:
            sync(self.device)
            self.t0, self.c0 = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.t0 is not None:
            self.tokens += batch["stats"]["tokens"]
            self.target_tokens += batch["stats"]["target_tokens"]
            sync(self.device)
            self.t1, self.c1 = time.perf_counter(), time.process_time()


def make_module(model_dir: Path, args) -> StepwiseDistillationModule:
    model, _ = load_student(str(model_dir), dtype="float32")
    return StepwiseDistillationModule(
        model,
        AdaptiveWeighting(lr=1e-2),
        partial(torch.optim.AdamW, lr=1e-3),
        warmup_ratio=0.05,
        target_logits_only=not args.full_logits_only,
    )


def run_lightning(model_dir: Path, dm: StepwiseDataModule, args) -> dict:
    torch.manual_seed(0)
    module = make_module(model_dir, args)
    timer = WindowTimer(args.warmup, args.device)
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        max_steps=args.steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=L.loggers.CSVLogger(tempfile.mkdtemp(prefix="bench-csv-")),
        log_every_n_steps=25,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=dm)
    dt, cpu = timer.t1 - timer.t0, timer.c1 - timer.c0
    return {
        "tokens_per_s": timer.tokens / dt,
        "target_tokens_per_s": timer.target_tokens / dt,
        "tokens_per_cpu_s": timer.tokens / cpu,
        "s": dt,
    }


def run_plain(model_dir: Path, dm: StepwiseDataModule, args, full_logits: bool = False) -> dict:
    """The same work without Lightning: forward, weighted loss, backward, AdamW, cosine schedule, σ restore."""
    torch.manual_seed(0)
    module = make_module(model_dir, args)
    module.target_logits_only = module.target_logits_only and not full_logits
    module.to(args.device).train()
    opt = module.optimizer_factory(module.parameter_groups())
    sched = cosine_with_warmup(opt, args.steps, module.warmup_ratio)
    loader = dm.train_dataloader()
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed")
    epoch, it = 0, None
    t0 = c0 = None
    tokens = target_tokens = 0
    for step in range(args.steps):
        batch = next(it, None) if it is not None else None
        if batch is None:
            loader.sampler.set_epoch(epoch)
            epoch += 1
            it = iter(loader)
            batch = next(it)
        if step == args.warmup:
            sync(args.device)
            t0, c0 = time.perf_counter(), time.process_time()
        batch = {
            k: (v.to(args.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()
        }
        snapshot = module.weighting.snapshot()
        opt.zero_grad(set_to_none=True)
        with autocast:
            out = module.compute_loss(batch)
        out["total"].backward()
        opt.step()
        sched.step()
        module.weighting.restore_absent(out["present"], snapshot)
        if t0 is not None:
            tokens += batch["stats"]["tokens"]
            target_tokens += batch["stats"]["target_tokens"]
    sync(args.device)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "tokens_per_s": tokens / dt,
        "target_tokens_per_s": target_tokens / dt,
        "tokens_per_cpu_s": tokens / cpu,
        "s": dt,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--max-filler", type=int, default=60, help="passage padding words (mixed lengths)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=70, help="optimizer steps per run, warm-up included")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave as is)")
    ap.add_argument("--full-logits-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="steper-train-bench-"))
    data = work / "stepwise"
    data.mkdir()
    write_jsonl(data / "train.jsonl", stepwise_rows(args.questions, 0, args.max_filler))
    write_jsonl(data / "validation.jsonl", stepwise_rows(8, 1, args.max_filler))

    def datamodule(length_grouped: bool = True) -> StepwiseDataModule:
        dm = StepwiseDataModule(str(data), batch_size=args.batch_size, length_grouped=length_grouped, seed=0)
        return dm

    dm = datamodule()
    heads = max(1, args.hidden // 64)
    sizes = {
        "vocab_size": args.vocab,
        "hidden_size": args.hidden,
        "num_layers": args.layers,
        "num_heads": heads,
        "num_kv_heads": max(1, heads // 2),
        "intermediate_size": 3 * args.hidden,
    }
    _, tok = load_student("tiny", tiny=sizes, texts_fn=dm.texts, cache_dir=work / "tiny")
    model_dir = next((work / "tiny").glob("tiny-*"))
    dm.set_tokenizer(tok)
    dm.setup("fit")

    # Real-token share per batch, length-grouped vs not (the same examples, batch size, seed).
    plain_dm = datamodule(length_grouped=False)
    plain_dm.set_tokenizer(tok)
    plain_dm.setup("fit")
    ds = dm.datasets["train"]
    share_grouped = real_token_share(ds, dm.sampler("train").rank_batches())
    share_plain = real_token_share(ds, plain_dm.sampler("train").rank_batches())

    light, plain, full = [], [], []
    for _ in range(args.reps):
        light.append(run_lightning(model_dir, dm, args))
        plain.append(run_plain(model_dir, dm, args))
        full.append(run_plain(model_dir, dm, args, full_logits=True))

    def med(runs, key="tokens_per_s"):
        return statistics.median(r[key] for r in runs)

    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(0),
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "model": sizes,
        "examples": len(ds),
        "mean_tokens": float(ds.lengths.mean()),
        "batch_size": args.batch_size,
        "steps_timed": args.steps - args.warmup,
        "reps": args.reps,
        "lightning_tokens_per_s": med(light),
        "plain_tokens_per_s": med(plain),
        "plain_full_logits_tokens_per_s": med(full),
        "lightning_target_tokens_per_s": med(light, "target_tokens_per_s"),
        "ratio_lightning_over_plain": med(light) / med(plain),
        "lightning_tokens_per_cpu_s": med(light, "tokens_per_cpu_s"),
        "plain_tokens_per_cpu_s": med(plain, "tokens_per_cpu_s"),
        "plain_full_logits_tokens_per_cpu_s": med(full, "tokens_per_cpu_s"),
        "ratio_lightning_over_plain_cpu_time": med(light, "tokens_per_cpu_s")
        / med(plain, "tokens_per_cpu_s"),
        "all_runs_tokens_per_s": {
            "lightning": [round(r["tokens_per_s"]) for r in light],
            "plain": [round(r["tokens_per_s"]) for r in plain],
            "plain_full_logits": [round(r["tokens_per_s"]) for r in full],
        },
        "all_runs_tokens_per_cpu_s": {
            "lightning": [round(r["tokens_per_cpu_s"]) for r in light],
            "plain": [round(r["tokens_per_cpu_s"]) for r in plain],
            "plain_full_logits": [round(r["tokens_per_cpu_s"]) for r in full],
        },
        "real_token_share_grouped": share_grouped,
        "real_token_share_unsorted": share_plain,
    }
    print(json.dumps(result, indent=2))
    ok_ratio = result["ratio_lightning_over_plain"] >= 0.9
    ok_share = share_grouped >= 0.85
    print(
        f"\nLightning {med(light):,.0f} tok/s vs plain {med(plain):,.0f} tok/s: ratio "
        f"{result['ratio_lightning_over_plain']:.3f} ({'OK' if ok_ratio else 'BELOW'} target 0.9); "
        f"plain with full logits {med(full):,.0f} tok/s\n"
        f"per CPU-second (robust to other jobs on the machine): Lightning {med(light, 'tokens_per_cpu_s'):,.0f} "
        f"vs plain {med(plain, 'tokens_per_cpu_s'):,.0f}: ratio {result['ratio_lightning_over_plain_cpu_time']:.3f}; "
        f"full logits {med(full, 'tokens_per_cpu_s'):,.0f}\n"
        f"real-token share: length-grouped {share_grouped:.1%} ({'OK' if ok_share else 'BELOW'} target 85%) "
        f"vs unsorted {share_plain:.1%}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
