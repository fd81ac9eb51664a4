"""The batched reasoning loop vs one question at a time, with the `hf` backend (a random tiny Qwen2).

The same toy questions go through `ircot_loop` twice: batched (`--batch-size` questions in flight,
one retriever call and one generator call per step, the generator micro-batching them by
`--gen-batch-size`) and one question at a time (loop batch 1, generator batch 1). The traces must be identical (timings
aside): batching changes the speed, not the outputs.

    .venv/bin/python benchmarks/loop_batching_bench.py                  # 32 questions, batch 32
    .venv/bin/python benchmarks/loop_batching_bench.py --questions 64 --hidden 256 --layers 4 --out bench.json

The model is random (built by steper.distill.tiny, cached under --cache), so its sentences are
noise: few traces reach an answer and most run all `max_steps` steps, which is the loop's worst
case. No demonstrations (the student's setting).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from steper.data.toy import make_world  # noqa: E402
from steper.distill.tiny import load_or_build_tiny  # noqa: E402
from steper.generators.hf import HFGenerator  # noqa: E402
from steper.reasoning.loop import ircot_loop, strip_timings  # noqa: E402
from steper.retrieval import BM25Retriever  # noqa: E402


def run(
    questions, retriever, model, tokenizer, loop_batch: int, gen_batch: int, args
) -> tuple[list, float, dict]:
    gen = HFGenerator.from_pretrained_objects(
        model, tokenizer, batch_size=gen_batch, max_new_tokens=args.max_new_tokens, stop=["\n"], chat=False
    )
    t0, c0 = time.perf_counter(), time.process_time()
    traces = ircot_loop(
        questions, retriever, gen, top_k=args.top_k, max_steps=args.max_steps, batch_size=loop_batch
    )
    stats = dict(gen.stats)
    stats["cpu_seconds"] = time.process_time() - c0
    return traces, time.perf_counter() - t0, stats


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32, help="questions in flight in the batched loop")
    ap.add_argument(
        "--gen-batch-size",
        type=int,
        default=32,
        help="the hf generator's micro-batch in the batched run (conf/teacher/hf.yaml says 8; with the "
        "hand-written greedy decoding, one micro-batch of all 32 questions is faster on CPU)",
    )
    ap.add_argument("--max-new-tokens", type=int, default=64, help="the configs' default (64)")
    ap.add_argument("--max-steps", type=int, default=5)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0 = torch's default); 1 by default: on a shared 2-core machine two OpenMP "
        "threads per process slow both modes down several-fold",
    )
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each mode; the best counts")
    ap.add_argument("--cache", default="data/cache/bench")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    world = make_world(seed=0, n_train=args.questions, n_dev=1, n_test=1, hops=[2, 3, 4])
    questions = world.train[: args.questions]
    retriever = BM25Retriever.build(world.paragraphs)
    texts = [f"Wikipedia Title: {p.title}\n{p.text}" for p in world.paragraphs[:400]]
    texts += [f"Q: {q.question}\nA: " + " ".join(c.sentence for c in q.chain) for q in world.train]
    model_dir = load_or_build_tiny(
        args.cache, lambda: texts, vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    # warm-up (allocator, kernels) on other questions
    run(world.dev, retriever, model, tokenizer, 1, 1, args)

    # alternate the two modes, keep each one's best time (the machine may be shared)
    times_b, times_s, cpu_b, cpu_s = [], [], [], []
    for _ in range(args.repeats):
        single, t, st_s = run(questions, retriever, model, tokenizer, 1, 1, args)
        times_s.append(t)
        cpu_s.append(st_s["cpu_seconds"])
        batched, t, st_b = run(
            questions, retriever, model, tokenizer, args.batch_size, args.gen_batch_size, args
        )
        times_b.append(t)
        cpu_b.append(st_b["cpu_seconds"])
    t_batched, t_single = min(times_b), min(times_s)

    a = [strip_timings(t.to_dict()) for t in batched]
    b = [strip_timings(t.to_dict()) for t in single]
    differ = [x["qid"] for x, y in zip(a, b) if x != y]
    n = len(questions)
    result = {
        "questions": n,
        "batch_size": args.batch_size,
        "gen_batch_size": args.gen_batch_size,
        "top_k": args.top_k,
        "model": {"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab},
        "max_new_tokens": args.max_new_tokens,
        "max_steps": args.max_steps,
        "steps_total": sum(len(t.steps) for t in batched),
        "finish": {k: sum(t.finish == k for t in batched) for k in ("answer", "empty", "error", "max_steps")},
        "generated_tokens": {
            "batched": st_b.get("generated_tokens"),
            "one_by_one": st_s.get("generated_tokens"),
        },
        "seconds": {"batched": round(t_batched, 3), "one_by_one": round(t_single, 3)},
        "all_seconds": {
            "batched": [round(t, 3) for t in times_b],
            "one_by_one": [round(t, 3) for t in times_s],
        },
        "questions_per_s": {"batched": round(n / t_batched, 3), "one_by_one": round(n / t_single, 3)},
        "speedup": round(t_single / t_batched, 2),
        # process CPU time (one torch thread): the work each mode does, whoever else uses the machine
        "cpu_seconds": {"batched": round(min(cpu_b), 3), "one_by_one": round(min(cpu_s), 3)},
        "speedup_cpu_time": round(min(cpu_s) / min(cpu_b), 2),
        "identical_traces": not differ,
        "differing_qids": differ,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0],
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if differ:
        raise SystemExit(f"batched and one-by-one traces differ for {len(differ)} question(s): {differ[:5]}")
    return result


if __name__ == "__main__":
    main()
