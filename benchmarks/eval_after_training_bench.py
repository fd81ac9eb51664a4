"""The evaluation after training, as `make demo` runs it: a SmolLM2-135M + LoRA student through the
IRCoT loop on the demo's 50 toy test questions, before and after the in-process speed-ups, side by
side in one process.

    .venv/bin/python benchmarks/eval_after_training_bench.py                    # builds a demo student once
    .venv/bin/python benchmarks/eval_after_training_bench.py --student <train run>/student --repeats 3

Arms (each an `HFGenerator` over the same loaded weights, through `evaluate_generator` with the
demo's `eval.*` settings: batch 25, greedy, 32 new tokens, top-2 passages):

- `before`: the LoRA adapter unmerged (the in-memory PeftModel train.py evaluated until now), no
  prompt cache, every generation up to the line break or 32 tokens;
- `merged`: the adapter merged into the base weights;
- `cached`: merged, and each question's prompt reuses the keys/values of its previous step's
  prompt (`prompt_cache`);
- `after`: merged, cached, and each generation ends once its first sentence is settled
  (`stop_at_unit`): what train.py's evaluation after training runs now.

The arms take turns within each repeat, in a rotating order, and the medians over the repeats
are reported, so a change in the machine's load hits every arm alike. Each arm's predictions are
compared with `before`'s: the prediction, every step's sentence (what the loop keeps), and every
step's raw generation, which under `stop_at_unit` must be a prefix of `before`'s; each difference
is shown at its first differing step. Without `--student`, the demo's recipe (oracle teacher data of
30 training questions, StepER-uniform at 25 optimizer steps) trains one into `--work` first
(≈ 3 min; reused on the next run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (merge the LoRA adapter, prompt cache, stop at the unit)
ARMS = {
    "before": (False, False, False),
    "merged": (True, False, False),
    "cached": (True, True, False),
    "after": (True, True, True),
}


def demo_student(work: Path) -> Path:
    """A demo student (StepER-uniform, the demo's recipe), trained once into `work`."""
    student = work / "student-uniform" / "student"
    if (student / "steper_export.json").is_file():
        return student
    from tests.conftest import subprocess_env

    env = {**subprocess_env(), "STEPER_ROOT": str(work)}
    py = sys.executable
    data = work / "data" / "demo"
    if not (data / "stepwise" / "train.jsonl").is_file():
        subprocess.run(
            [py, "generate_data.py", "dataset=toy", "dataset.paragraphs=facts", "retriever.top_k=2", "teacher=oracle",
             "limit=30", "progress=false", f"out_dir={data}", f"hydra.run.dir={work / 'gen'}"],
            cwd=REPO, env=env, check=True,
        )  # fmt: skip
    subprocess.run(
        [py, "train.py", "experiment=demo", "method=steper", "weighting=uniform", f"stepwise.data_dir={data}/stepwise",
         "eval.enabled=false", "logger=csv", "trainer.num_sanity_val_steps=0", "trainer.val_check_interval=null",
         f"hydra.run.dir={student.parent}"],
        cwd=REPO, env=env, check=True,
    )  # fmt: skip
    return student


def demo_config(root: Path):
    """train.py's config under experiment=demo: the dataset, retriever, loop and eval.* it evaluates with."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return compose("train", overrides=["experiment=demo", f"paths.root_dir={root}"])


def sentences(row: dict) -> list[str | None]:
    return [s["sentence"] for s in row["trace"]["steps"]]


def raw_is_prefix(a: dict, b: dict) -> bool:
    """Each of `b`'s raw generations starts `a`'s (b may have stopped earlier)."""
    ga = [s["generation"] or "" for s in a["trace"]["steps"]]
    gb = [s["generation"] or "" for s in b["trace"]["steps"]]
    return len(ga) == len(gb) and all(x.startswith(y) for x, y in zip(ga, gb))


def first_difference(a: dict, b: dict) -> dict:
    steps_a, steps_b = sentences(a), sentences(b)
    k = next((i for i, (x, y) in enumerate(zip(steps_a, steps_b)) if x != y), min(len(steps_a), len(steps_b)))
    return {
        "qid": a["qid"],
        "step": k + 1,
        "before": steps_a[k] if k < len(steps_a) else None,
        "this_arm": steps_b[k] if k < len(steps_b) else None,
        "prediction_before": a["prediction"],
        "prediction": b["prediction"],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--student", default=None, help="an exported LoRA student folder (default: train a demo one)")
    ap.add_argument("--work", default=str(REPO / "bench-eval-after-training"), help="the demo student, the index")
    ap.add_argument("--questions", type=int, default=50, help="the demo's eval.limit")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arms", default="before,merged,cached,after")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    from steper.data import load_questions
    from steper.evaluation.runner import evaluate_generator
    from steper.evaluation.targets import build_target
    from steper.generators.hf import HFGenerator
    from steper.retrieval import load_retriever
    from steper.tasks.train_eval import generation_options, loop_settings

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    student = Path(args.student) if args.student else demo_student(work)
    cfg = demo_config(work)
    questions = load_questions(cfg.dataset, cfg.eval.split)[: args.questions]
    retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)
    gen_opts = generation_options(cfg)
    loop = loop_settings(cfg)
    arms = [a.strip() for a in args.arms.split(",")]
    models = {}
    for merge in sorted({ARMS[a][0] for a in arms}):
        target = build_target({"name": "student", "path": str(student), "merge": merge, **gen_opts})
        models[merge] = target.generator
    tmp = tempfile.TemporaryDirectory(prefix="eval-after-training-")
    times: dict[str, list[float]] = {a: [] for a in arms}
    stats: dict[str, dict[str, Any]] = {}
    rows: dict[str, list[dict]] = {}
    for rep in range(args.repeats):
        order = arms[rep % len(arms) :] + arms[: rep % len(arms)]
        for arm in order:
            merge, cache, stop_at_unit = ARMS[arm]
            base = models[merge]
            opts = {**gen_opts, "prompt_cache": cache, "stop_at_unit": stop_at_unit}
            gen = HFGenerator.from_pretrained_objects(base.model, base.tokenizer, chat=base.chat, **opts)
            out = Path(tmp.name) / f"{arm}-{rep}"
            t0 = time.perf_counter()
            evaluate_generator(questions, retriever, gen, out_dir=out, progress=False, **loop)
            times[arm].append(time.perf_counter() - t0)
            stats[arm] = dict(gen.stats)
            got = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines() if x.strip()]
            rows.setdefault(arm, got)
            print(f"repeat {rep + 1} {arm:>7}: {times[arm][-1]:.1f} s", flush=True)
    ref = rows[arms[0]]
    results = []
    for arm in arms:
        wall = statistics.median(times[arm])
        diffs = [
            first_difference(a, b)
            for a, b in zip(ref, rows[arm])
            if sentences(a) != sentences(b) or a["prediction"] != b["prediction"] or not raw_is_prefix(a, b)
        ]
        results.append({
            "arm": arm,
            "merge": ARMS[arm][0],
            "prompt_cache": ARMS[arm][1],
            "stop_at_unit": ARMS[arm][2],
            "wall_s": [round(t, 1) for t in times[arm]],
            "median_s": round(wall, 1),
            "questions_per_s": round(len(questions) / wall, 3),
            "speedup_vs_first": round(statistics.median(times[arms[0]]) / wall, 2),
            "prompt_tokens": stats[arm].get("prompt_tokens"),
            "reused_prompt_tokens": stats[arm].get("reused_prompt_tokens"),
            "generated_tokens": stats[arm].get("generated_tokens"),
            "identical_to_first": len(questions) - len(diffs),
            "differences": diffs,
            "acc": round(100 * sum(bool(r.get("acc")) for r in rows[arm]) / len(rows[arm]), 1),
        })  # fmt: skip
    for r in results:
        print(
            f"{r['arm']:>7}: median {r['median_s']:.1f} s ({r['questions_per_s']:.3f} q/s, "
            f"{r['speedup_vs_first']:.2f}x), {r['identical_to_first']}/{len(questions)} identical to "
            f"{arms[0]}, reused {r['reused_prompt_tokens']} of {r['prompt_tokens']} prompt tokens"
        )
        for d in r["differences"]:
            print(f"    differs: {json.dumps(d)}")
    report = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_avg": os.getloadavg(),
        },
        "student": str(student),
        "settings": {**vars(args), "generation": gen_opts, "loop": loop},
        "results": results,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
