"""Evaluation speed: questions/s and per-question latency (retrieval / generation) of the tiny
student through the full IRCoT loop on the toy world's test questions, batched vs unbatched.

    .venv/bin/python benchmarks/eval_bench.py                       # 100 questions, batch 1 and 32
    .venv/bin/python benchmarks/eval_bench.py --questions 40 --batch-sizes 1,8,32 --threads 2 --out bench.json

The student is `model=tiny` (a random Qwen2 of conf/model/tiny.yaml's size, its BPE tokenizer
trained on the toy world's texts), loaded from disk and wrapped as an `HFGenerator` exactly as
evaluate.py's `target=student` does. Being untrained, it rarely writes "answer is" or a line break,
so almost every question runs all `max_steps` steps with `max_new_tokens` tokens each: the worst
case of the loop. "batch" is evaluate.py's `batch_size`: questions in flight (one retriever call
and one generator call per step for all of them) and the hf micro-batch. Each setting runs in a
fresh output folder after one warm-up question. The per-question latency is each question's share
of the batched retrieval/generation calls (what metrics.json reports); questions/s is measured
wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOY = {
    "name": "toy",
    "format": "toy",
    "seed": 0,
    "n_train": 400,
    "n_dev": 50,
    "n_test": 100,
    "hops": [2, 3, 4],
}
TINY = {
    "vocab_size": 1024,
    "hidden_size": 128,
    "num_layers": 4,
    "num_heads": 4,
    "num_kv_heads": 2,
    "intermediate_size": 384,
}


def tiny_student(cache: Path) -> Path:
    """The tiny model of conf/model/tiny.yaml, its tokenizer trained on toy-world texts."""
    from steper.data import load_corpus, load_questions
    from steper.distill.tiny import load_or_build_tiny
    from steper.reasoning.prompts import build_prompt

    def texts() -> list[str]:
        qs = load_questions(TOY, "train")
        corpus = load_corpus(TOY, cache)
        out = [f"Wikipedia Title: {p.title}\n{p.text}" for p in corpus]
        out += [
            build_prompt(q.question, q.contexts[:2]) + " " + " ".join(c.sentence for c in q.chain) for q in qs
        ]
        return out

    model_dir = load_or_build_tiny(cache / "tiny", texts, **TINY)
    student = cache / "student"  # laid out like train.py's export
    if not (student / "steper_export.json").is_file():
        shutil.copytree(model_dir, student, dirs_exist_ok=True)
        meta = {"base_model": str(model_dir), "model": "tiny", "method": "steper", "weighting": "adaptive"}
        (student / "steper_export.json").write_text(json.dumps({**meta, "peft": False, "dataset": "toy"}))
    return student


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=100, help="toy test questions (at most 100)")
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--cache", default=None, help="where the BM25 index and the tiny model go (default: a temp dir)"
    )
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    from steper.data import load_questions
    from steper.evaluation.predictions import strip_timing_metrics
    from steper.evaluation.runner import evaluate_generator
    from steper.evaluation.targets import build_target
    from steper.retrieval import load_retriever

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix="eval-bench-")
    cache = Path(args.cache) if args.cache else Path(tmp.name) / "cache"
    t0 = time.perf_counter()
    retriever = load_retriever(TOY, {"name": "bm25", "top_k": args.top_k}, cache)
    student = tiny_student(cache)
    print(f"setup (index + tiny model): {time.perf_counter() - t0:.1f} s; student {student}", flush=True)
    questions = load_questions(TOY, "test")[: args.questions]

    results = []
    predictions = {}
    for bs in [int(x) for x in args.batch_sizes.split(",")]:
        target = build_target(
            {"name": "student", "path": str(student), "dtype": "float32", "device": args.device,
             "max_new_tokens": args.max_new_tokens},
            batch_size=bs,
        )  # fmt: skip
        gen = target.generator
        common = dict(top_k=args.top_k, max_steps=args.max_steps, batch_size=bs, progress=False)
        evaluate_generator(questions[:1], retriever, gen, out_dir=Path(tmp.name) / f"warm{bs}", **common)
        gen.stats.update(requests=0, generated_tokens=0, prompt_tokens=0, seconds=0.0)
        out = Path(tmp.name) / f"bs{bs}"
        t = time.perf_counter()
        m = evaluate_generator(questions, retriever, gen, out_dir=out, **common)
        wall = time.perf_counter() - t
        rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
        predictions[bs] = [(r["qid"], r["reasoning"], r["prediction"]) for r in rows]
        res = {
            "batch_size": bs,
            "questions": m["n"],
            "wall_s": round(wall, 2),
            "questions_per_s": round(m["n"] / wall, 3),
            "latency_s": m["latency_s"],
            "mean_steps": m["mean_steps"],
            "generated_tokens": gen.stats.get("generated_tokens"),
            "tokens_per_s": round(gen.stats.get("generated_tokens", 0) / wall, 1),
            "metrics": {k: strip_timing_metrics(m)[k] for k in ("em", "f1", "acc", "no_answer")},
        }
        results.append(res)
        print(json.dumps(res), flush=True)
        gen.close()

    sizes = list(predictions)
    same = all(predictions[b] == predictions[sizes[0]] for b in sizes[1:])
    report = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": args.device,
            "load_avg": os.getloadavg(),
        },
        "settings": vars(args),
        "results": results,
        "predictions_identical_across_batch_sizes": same,
    }
    print(f"predictions identical across batch sizes: {same}")
    base = results[0]["questions_per_s"]
    for r in results:
        lat = r["latency_s"]
        print(
            f"batch {r['batch_size']:>3}: {r['questions_per_s']:.3f} q/s ({r['questions_per_s'] / base:.1f}x), "
            f"per question {lat['mean']:.3f} s = retrieval {lat['retrieval'] * 1000:.2f} ms + "
            f"generation {lat['generation']:.3f} s; {r['tokens_per_s']} generated tokens/s"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
