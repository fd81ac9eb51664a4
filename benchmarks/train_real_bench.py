"""Training throughput on a real model shape (SmolLM2-135M): steper's LightningModule under a
Lightning Trainer vs a plain PyTorch loop vs TRL's SFTTrainer, on the same token batches, full
fine-tuning and LoRA, with the fp32 GEMM peak measured in the same run.

    python benchmarks/train_real_bench.py                      # CPU, 2 torch threads, ~10-15 min
    python benchmarks/train_real_bench.py --steps 2 --modes lora --json /tmp/quick.json

Arms (each loads its own copy of the fetched model, `python -m steper.models fetch smollm2-135m`):
  lightning  StepwiseDistillationModule (adaptive weighting, logits at target positions only) under
             `lightning.Trainer` as train.py configures it: 32-true, gradient_clip_val 1.0,
             log_every_n_steps 10, CSV logger; no progress bar or checkpointing.
  plain      the same module's `compute_loss`, backward, clip_grad_norm_(1.0), AdamW, cosine
             schedule and σ restore in a hand-written loop.
  trl        SFTTrainer on the same token ids with prompt tokens masked (-100: completion-only loss),
             the same batch order (`train_sampling_strategy="sequential"` over the examples laid out
             in the datamodule's batch order), the same AdamW implementation, clipping 1.0, fp32.
All three use torch.optim.AdamW, lr 1e-5, weight decay 0; LoRA is r 16, alpha 32, dropout 0.05 on
all linear layers but the head (conf/peft/lora.yaml) in every arm.

**Interleaving.** The machine is shared, so arm-level runs one after another would see different
loads. Each arm runs its own, unmodified training loop in its own thread, and a baton lets exactly
one of them work at a time, handing over at every optimizer-step boundary: step 0 of lightning,
plain, trl, then a GEMM probe, then step 1 of each, ... Step i of every arm trains the same batch
(checked: a checksum of each padded batch must agree), so per-step ratios compare like with like.
A step's time runs from the moment its arm gets the baton to the moment it gives it back, so it
holds everything its loop does between two optimizer steps (fetching and collating the batch,
hooks, logging, forward, backward, clipping, the optimizer and scheduler). Step 0 is warm-up.

**FLOPs.** Model FLOPs per real (non-padding) token: 6·N for full fine-tuning, 4·N + 6·N_lora for
LoRA (the frozen weights still need the activation gradient, 2·N, but no weight gradient; the
adapters need all three); N = the model's parameters (tied embedding counted once, since as the
LM head it does the work), attention scores left out (+≈6 % at these lengths). Reported against
the fp32 GEMM rate measured by torch.matmul on the model's shapes ([tokens, 576] × [576, 1536] and
kin) in the same run, between the arms' steps.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing_trainer import timing_trainer  # noqa: E402

from steper.distill.datamodule import StepwiseDataModule  # noqa: E402
from steper.distill.models import count_parameters, load_student  # noqa: E402
from steper.distill.module import StepwiseDistillationModule, cosine_with_warmup  # noqa: E402
from steper.distill.synthetic import synthetic_stepwise_rows  # noqa: E402
from steper.distill.weighting import AdaptiveWeighting  # noqa: E402
from steper.io import write_jsonl  # noqa: E402
from steper.models import resolve_model  # noqa: E402

ARMS = ("lightning", "plain", "trl")
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
LR = 1e-5
CLIP = 1.0


def quiet() -> None:
    """Library chatter off: the terminal shows the benchmark's own lines only."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers", "trl", "peft",
                 "accelerate", "datasets", "steper"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - datasets comes with trl
        pass


def checksum(input_ids: torch.Tensor) -> int:
    """A position-weighted sum of a padded batch's ids: equal batches give equal sums."""
    ids = input_ids.to(torch.int64).cpu()
    w = torch.arange(1, ids.numel() + 1, dtype=torch.int64).view_as(ids)
    return int((ids * w).sum()) ^ (ids.shape[0] << 40) ^ (ids.shape[1] << 48)


# --------------------------------------------------------------------------- the baton


class Baton:
    """Lets the participants work one at a time, in a fixed rotation, and times each turn.

    A participant calls `start()` once (waits for its first turn), `step_done(...)` after each of
    its optimizer steps (records the turn, passes the baton, waits for the next turn unless it was
    the last step), and `finish()` when it stops for good (also on error).
    """

    def __init__(self, names: list[str], steps: int):
        self.names, self.steps = names, steps
        self.cond = threading.Condition()
        self.turn = 0
        self.done: set[str] = set()
        self.records: dict[str, list[dict]] = {n: [] for n in names}
        self._t0: dict[str, tuple[float, float]] = {}

    def _advance(self) -> None:
        for _ in range(len(self.names)):
            self.turn = (self.turn + 1) % len(self.names)
            if self.names[self.turn] not in self.done:
                break
        self.cond.notify_all()

    def start(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.names[self.turn] == name)
        self._t0[name] = (time.perf_counter(), time.process_time())

    def step_done(self, name: str, **info: Any) -> None:
        t, c = time.perf_counter(), time.process_time()
        t0, c0 = self._t0[name]
        self.records[name].append({"s": t - t0, "cpu_s": c - c0, "threads": torch.get_num_threads(), **info})
        if len(self.records[name]) >= self.steps:
            return  # keep the baton through the arm's teardown; finish() passes it on
        with self.cond:
            self._advance()
            self.cond.wait_for(lambda: self.names[self.turn] == name)
        self._t0[name] = (time.perf_counter(), time.process_time())

    def finish(self, name: str) -> None:
        with self.cond:
            self.done.add(name)
            if self.names[self.turn] == name and len(self.done) < len(self.names):
                self._advance()


# --------------------------------------------------------------------------- data


def make_data(work: Path, args) -> Path:
    """Synthetic first/mid/final rows whose passages fill most of `max_length` (lengths vary)."""
    data = work / "stepwise"
    data.mkdir(parents=True, exist_ok=True)
    tasks = ("first", "mid", "final")
    write_jsonl(data / "train.jsonl", synthetic_stepwise_rows(args.questions, 0, (args.min_filler, args.max_filler), tasks))
    write_jsonl(data / "validation.jsonl", synthetic_stepwise_rows(2, 1, (0, 4), tasks))
    return data


def make_datamodule(data: Path, tokenizer, args) -> StepwiseDataModule:
    dm = StepwiseDataModule(str(data), batch_size=args.batch_size, max_length=args.max_length, seed=0)
    dm.set_tokenizer(tokenizer)
    dm.setup("fit")
    return dm


# --------------------------------------------------------------------------- the arms


# from_pretrained builds the model under process-wide context managers (meta device, default
# dtype): two threads loading at once corrupt each other's models, so loads take turns.
LOADING = threading.Lock()


def load(model_dir: Path, lora: bool):
    with LOADING:
        torch.manual_seed(0)
        return load_student(str(model_dir), dtype="float32", peft=dict(LORA) if lora else None)


def make_module(model, args) -> StepwiseDistillationModule:
    optimizer = partial(torch.optim.AdamW, lr=LR, **({"fused": True} if args.fused_adamw else {}))
    return StepwiseDistillationModule(model, AdaptiveWeighting(lr=1e-2), optimizer, warmup_ratio=0.03)


def run_lightning(baton: Baton, model_dir: Path, data: Path, args, lora: bool) -> None:
    model, tok = load(model_dir, lora)
    dm = make_datamodule(data, tok, args)
    module = make_module(model, args)
    total = args.steps + args.warmup

    class Turns(L.Callback):
        def on_train_start(self, trainer, pl_module):
            baton.start("lightning")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            s = batch["stats"]
            baton.step_done("lightning", tokens=s["tokens"], target_tokens=s["target_tokens"],
                            padded=s["padded"], width=int(batch["input_ids"].shape[1]),
                            checksum=checksum(batch["input_ids"]))

    trainer = timing_trainer(
        accelerator="cpu", precision="32-true", max_steps=total, gradient_clip_val=CLIP, callback=Turns()
    )
    trainer.fit(module, datamodule=dm)


def run_plain(baton: Baton, model_dir: Path, data: Path, args, lora: bool) -> None:
    model, tok = load(model_dir, lora)
    dm = make_datamodule(data, tok, args)
    module = make_module(model, args)
    module.train()
    total = args.steps + args.warmup
    groups = module.parameter_groups()
    params = [p for g in groups for p in g["params"]]
    opt = module.optimizer_factory(groups)
    sched = cosine_with_warmup(opt, total, module.warmup_ratio)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    baton.start("plain")
    for _, batch in zip(range(total), loader):
        snapshot = module.weighting.snapshot()
        out = module.compute_loss(batch)
        out["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        sched.step()
        module.weighting.restore_absent(out["present"], snapshot)
        # after the step, as Lightning and the HF Trainer do: no gradients held while others work
        opt.zero_grad(set_to_none=True)
        s = batch["stats"]
        baton.step_done("plain", tokens=s["tokens"], target_tokens=s["target_tokens"], padded=s["padded"],
                        width=int(batch["input_ids"].shape[1]), checksum=checksum(batch["input_ids"]))


def trl_examples(dm: StepwiseDataModule) -> list[dict]:
    """The training examples in the order the datamodule batches them in epoch 0, as TRL rows:
    `input_ids` and `labels` (-100 on the prompt: the loss is on the completion only)."""
    ds = dm.datasets["train"]
    sampler = dm.sampler("train")
    sampler.set_epoch(0)
    rows = []
    for b in sampler.rank_batches():
        for i in b:
            ids, n_in, _ = ds[int(i)]
            ids = [int(x) for x in ids]
            rows.append({"input_ids": ids, "labels": [-100] * n_in + ids[n_in:]})
    return rows


def run_trl(baton: Baton, model_dir: Path, data: Path, args, lora: bool) -> None:
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    model, tok = load(model_dir, lora)
    dm = make_datamodule(data, tok, args)
    total = args.steps + args.warmup
    rows = trl_examples(dm)[: total * args.batch_size]
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        per_device_train_batch_size=args.batch_size,
        max_steps=total,
        learning_rate=LR,
        lr_scheduler_type="cosine",
        warmup_steps=round(0.03 * total),
        weight_decay=0.0,
        max_grad_norm=CLIP,
        # the same AdamW implementation as the other arms (transformers' default is the fused one)
        optim="adamw_torch_fused" if args.fused_adamw else "adamw_torch",
        bf16=False,  # TRL defaults to bf16: fp32 like the other arms
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,  # TRL defaults to on
        train_sampling_strategy="sequential",  # rows are already in batch order
        max_length=None,  # already cut to the datamodule's max_length
        packing=False,
        padding_free=False,
        completion_only_loss=True,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    seen: list[dict] = []  # collated batches in order (accelerate's loader fetches one ahead)

    class Turns(TrainerCallback):
        def on_train_begin(self, args_, state, control, **kw):
            baton.start("trl")

        def on_step_end(self, args_, state, control, **kw):
            b = seen[state.global_step - 1]
            baton.step_done("trl", **b)

    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[Turns()]
    )
    trainer.remove_callback(PrinterCallback)  # with tqdm off it prints every log dict
    collate = trainer.data_collator

    def recording(examples):
        out = collate(examples)
        labels = out["labels"][:, 1:]
        seen.append({
            "tokens": int(out["attention_mask"].sum()),
            "target_tokens": int(labels.ne(-100).sum()),
            "padded": int(out["input_ids"].numel()),
            "width": int(out["input_ids"].shape[1]),
            "checksum": checksum(out["input_ids"]),
        })
        return out

    trainer.data_collator = recording
    trainer.train()


def run_gemm(baton: Baton, args, rounds: int) -> None:
    """fp32 matmuls of the model's shapes at the run's tokens per batch; best of 3 per shape."""
    t = args.batch_size * args.max_length
    shapes = [(t, 576, 1536), (t, 1536, 576), (t, 576, 576), (t, 576, 192)]
    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    for a, b in mats:
        a @ b
    baton.start("gemm")
    for _ in range(rounds):
        rates = {}
        for (m, k, n), (a, b) in zip(shapes, mats):
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                a @ b
                best = min(best, time.perf_counter() - t0)
            rates[f"{m}x{k}x{n}"] = 2 * m * k * n / best
        baton.step_done("gemm", flops_per_s=max(rates.values()), by_shape=rates)


RUNNERS: dict[str, Callable] = {"lightning": run_lightning, "plain": run_plain, "trl": run_trl}


# --------------------------------------------------------------------------- one mode


def model_counts(model_dir: Path, lora: bool) -> dict[str, int]:
    model, _ = load(model_dir, lora)
    trainable, total = count_parameters(model)
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    emb, head = hf.get_input_embeddings().weight, hf.get_output_embeddings().weight
    tied = emb.data_ptr() == head.data_ptr()
    lora_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    n = total - lora_params  # the base model
    out = {"params": n, "head": head.numel(), "embedding": emb.numel(), "tied": int(tied),
           "body": n - emb.numel() - (0 if tied else head.numel()), "lora": lora_params, "trainable": trainable}
    del model
    gc.collect()
    return out


def run_mode(mode: str, model_dir: Path, data: Path, args) -> dict:
    lora = mode == "lora"
    counts = model_counts(model_dir, lora)
    total = args.steps + args.warmup
    names = [*args.arms, "gemm"]
    baton = Baton(names, total)
    errors: dict[str, BaseException] = {}

    def target(name: str) -> None:
        torch.set_num_threads(args.threads)  # per thread: OpenMP settings are per calling thread
        try:
            if name == "gemm":
                run_gemm(baton, args, total)
            else:
                RUNNERS[name](baton, model_dir, data, args, lora)
        except BaseException as e:  # reported below; the baton must move on either way
            errors[name] = e
        finally:
            baton.finish(name)

    threads = [threading.Thread(target=target, args=(n,), name=n) for n in names]
    started = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        name, err = next(iter(errors.items()))
        raise RuntimeError(f"{mode}/{name} failed: {err!r}") from err
    wall = time.perf_counter() - started
    gc.collect()
    return summarise(mode, baton.records, counts, args, wall)


def flops_per_token(counts: dict, lora: bool) -> float:
    n = counts["params"]
    return 4 * n + 6 * counts["lora"] if lora else 6 * n


def executed_flops(step: dict, counts: dict, lora: bool, head_positions: int) -> float:
    """Matmul FLOPs one step really runs: the body over every padded position, the LM head over
    `head_positions` (attention scores left out)."""
    body, head, lo = counts["body"], counts["head"], counts["lora"]
    p = step["padded"]
    if lora:
        return 4 * body * p + 6 * lo * p + 4 * head * head_positions
    return 6 * body * p + 6 * head * head_positions


def summarise(mode: str, records: dict[str, list[dict]], counts: dict, args, wall: float) -> dict:
    lora = mode == "lora"
    w = args.warmup
    arms = [a for a in args.arms]
    sums = {a: [r["checksum"] for r in records[a]] for a in arms}
    ref = sums[arms[0]]
    same = all(sums[a] == ref for a in arms)
    if not same:
        raise RuntimeError(f"{mode}: the arms did not train the same batches: {sums}")
    gemm = [r["flops_per_s"] for r in records["gemm"]]
    peak = max(gemm)
    fpt = flops_per_token(counts, lora)
    out: dict[str, Any] = {"mode": mode, "wall_s": round(wall, 1), "same_batches": same, "params": counts,
                           "model_flops_per_token": fpt, "arms": {}}
    timed = {a: records[a][w:] for a in arms}
    for a in arms:
        steps = timed[a]
        tokens = sum(r["tokens"] for r in steps)
        secs = sum(r["s"] for r in steps)
        cpu = sum(r["cpu_s"] for r in steps)
        rates = [r["tokens"] / r["s"] for r in steps]
        # The LM head: at target positions only in steper's module; TRL's fused head scores every
        # position off Triton devices (CPU), padding included.
        head_pos = [r["target_tokens"] if a != "trl" else r["padded"] - r["padded"] // r["width"] for r in steps]
        exe = sum(executed_flops(r, counts, lora, h) for r, h in zip(steps, head_pos))
        out["arms"][a] = {
            "tokens_per_s": tokens / secs,
            "tokens_per_s_median_step": statistics.median(rates),
            "tokens_per_s_range": [min(rates), max(rates)],
            "tokens_per_cpu_s": tokens / cpu,
            "model_flops_per_s": fpt * tokens / secs,
            "mfu_vs_gemm_peak": fpt * tokens / secs / peak,
            "executed_flops_per_s": exe / secs,
            "step_s": [round(r["s"], 3) for r in steps],
            "warmup_step_s": [round(r["s"], 3) for r in records[a][:w]],
            "threads": sorted({r["threads"] for r in records[a]}),
        }
    if "plain" in arms:
        for a in arms:
            if a == "plain":
                continue
            per_step = [x["s"] and p["s"] / x["s"] for x, p in zip(timed[a], timed["plain"])]
            out["arms"][a]["ratio_vs_plain"] = out["arms"][a]["tokens_per_s"] / out["arms"]["plain"]["tokens_per_s"]
            out["arms"][a]["ratio_vs_plain_median_step"] = statistics.median(per_step)
            out["arms"][a]["ratio_vs_plain_step_range"] = [min(per_step), max(per_step)]
            out["arms"][a]["ratio_vs_plain_cpu"] = (
                out["arms"][a]["tokens_per_cpu_s"] / out["arms"]["plain"]["tokens_per_cpu_s"]
            )
    steps = timed[arms[0]]
    out["batches"] = {
        "timed_steps": len(steps),
        "tokens_per_step_mean": statistics.mean(r["tokens"] for r in steps),
        "target_tokens_per_step_mean": statistics.mean(r["target_tokens"] for r in steps),
        "widths": [r["width"] for r in steps],
        "real_token_share": sum(r["tokens"] for r in steps) / sum(r["padded"] for r in steps),
    }
    out["gemm_fp32"] = {
        "peak_flops_per_s": peak,
        "median_flops_per_s": statistics.median(gemm),
        "range": [min(gemm), max(gemm)],
        "shapes": list(records["gemm"][0]["by_shape"]),
    }
    return out


def report(res: dict) -> str:
    lines = [f"\n== {res['mode']} ({res['params']['trainable']:,} trainable of {res['params']['params']:,}; "
             f"{res['batches']['timed_steps']} timed steps, {res['batches']['tokens_per_step_mean']:.0f} tokens/step, "
             f"wall {res['wall_s']:.0f} s)"]
    g = res["gemm_fp32"]
    lines.append(f"fp32 GEMM: peak {g['peak_flops_per_s'] / 1e9:.1f} GFLOP/s, median over rounds "
                 f"{g['median_flops_per_s'] / 1e9:.1f} (range {g['range'][0] / 1e9:.1f}-{g['range'][1] / 1e9:.1f})")
    for a, r in res["arms"].items():
        ratio = ""
        if "ratio_vs_plain" in r:
            lo, hi = r["ratio_vs_plain_step_range"]
            ratio = (f"  /plain {r['ratio_vs_plain']:.3f} (per step median {r['ratio_vs_plain_median_step']:.3f}, "
                     f"{lo:.2f}-{hi:.2f}; per CPU-s {r['ratio_vs_plain_cpu']:.3f})")
        lo, hi = r["tokens_per_s_range"]
        lines.append(f"{a:9} {r['tokens_per_s']:7.1f} tok/s (steps {lo:.0f}-{hi:.0f})  "
                     f"{r['model_flops_per_s'] / 1e9:5.1f} model GFLOP/s = {r['mfu_vs_gemm_peak']:.1%} of GEMM peak"
                     f"{ratio}")
    return "\n".join(lines)


def run_mode_in_subprocess(mode: str) -> dict:
    """This script for one mode in a fresh process: what full fine-tuning's three models and their
    optimizer states leave allocated (and fragmented across the threads' malloc arenas) is given
    back to the shared machine before the next mode starts."""
    argv = list(sys.argv[1:])
    for flag in ("--modes", "--json"):
        while flag in argv:
            i = argv.index(flag)
            del argv[i : i + 2]
    argv = [a for a in argv if not a.startswith(("--modes=", "--json="))]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mode.json"
        subprocess.run([sys.executable, __file__, *argv, "--modes", mode, "--json", str(out), "--quiet-header"],
                       check=True)
        one = json.loads(out.read_text())
    res = one["modes"][mode]
    res["max_rss_gib"] = one.get("max_rss_gib")
    return res


def limit_malloc_arenas(n: int = 1) -> None:
    """glibc gives threads their own malloc arenas, and each arena keeps the heap its thread's
    activations grew to (GBs here) after they are freed: with 2 arenas a LoRA run peaked at 10.5 GB
    RSS on a shared 24 GB machine. The arms never run at the same time, so one arena costs no lock
    contention. Set before any thread starts."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, n)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="a fetched model name or a model folder")
    ap.add_argument("--modes", default="full,lora", help="full and/or lora, comma-separated")
    ap.add_argument("--arms", default=",".join(ARMS), help="lightning,plain,trl (any subset)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--questions", type=int, default=64, help="x3 tasks = training examples")
    ap.add_argument("--min-filler", type=int, default=50, help="passage filler words (lengths near max-length)")
    ap.add_argument("--max-filler", type=int, default=80)
    ap.add_argument("--steps", type=int, default=6, help="timed optimizer steps per arm")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads in every arm")
    ap.add_argument("--fused-adamw", action="store_true", help="fused AdamW in every arm (default: for-loop)")
    ap.add_argument("--quiet-header", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None,
                    help="result file (default: $OUT/train_real_bench.json, else outputs/bench/train_real_bench.json)")
    args = ap.parse_args()
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(args.arms) <= set(ARMS) or not set(modes) <= {"full", "lora"}:
        ap.error(f"--arms from {ARMS}, --modes from full,lora")
    if "trl" in args.arms:
        try:
            import trl  # noqa: F401
        except ImportError:
            sys.exit("the trl arm needs TRL: pip install -e '.[bench]' (or drop it: --arms lightning,plain)")
    quiet()
    limit_malloc_arenas()
    torch.set_num_threads(args.threads)
    model_dir = Path(args.model) if Path(args.model).is_dir() else Path(resolve_model(args.model))
    work = Path(tempfile.mkdtemp(prefix="steper-train-real-"))
    data = make_data(work, args)
    _, tok = load_student(str(model_dir), dtype="float32")
    dm = make_datamodule(data, tok, args)
    n_batches = len(dm.sampler("train").rank_batches())
    if args.steps + args.warmup > n_batches:
        ap.error(f"{args.steps + args.warmup} steps need more than the {n_batches} batches of one epoch: raise --questions")
    lengths = dm.datasets["train"].lengths

    import lightning
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "lightning": lightning.__version__}
    try:
        import peft
        import trl

        versions.update(peft=peft.__version__, trl=trl.__version__)
    except ImportError:
        pass
    result = {
        "model": str(model_dir),
        "device": "cpu",
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "examples": int(len(lengths)),
        "example_tokens": {"min": int(lengths.min()), "median": float(np.median(lengths)), "max": int(lengths.max())},
        "steps": args.steps,
        "warmup": args.warmup,
        "fused_adamw": args.fused_adamw,
        "lora": LORA,
        "modes": {},
    }
    if not args.quiet_header:
        print(f"{model_dir.name}: {len(lengths)} examples of {lengths.min()}-{lengths.max()} tokens, batch "
              f"{args.batch_size}, {args.threads} torch threads, arms {', '.join(args.arms)} interleaved step by step",
              flush=True)
    for mode in modes:
        if len(modes) > 1:
            result["modes"][mode] = run_mode_in_subprocess(mode)
        else:
            res = run_mode(mode, model_dir, data, args)
            result["modes"][mode] = res
            print(report(res), flush=True)
            result["max_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = args.json
    if out is None:
        out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path("outputs/bench")
        out = out / "train_real_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.quiet_header:
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
