"""The three entry points on real rows, with a real pretrained model where one is needed: the
oracle teacher's step-wise data from the 500 2Wiki train rows (generate_data.py), an ICL baseline
(SmolLM2-135M as an `hf` target with the framework's few-shot demonstrations, evaluate.py) on 10
real dev questions of 2Wiki and of HotpotQA, and a short LoRA student trained on that real 2Wiki
step-wise data and evaluated in the multi-step loop on 10 real 2Wiki dev questions (train.py).

Sized for a 2-core CPU: BM25 top-2 per step, at most 3 steps and 32 new tokens per step in the
loop, 8 LoRA steps of 2 examples cut to 512 tokens. Scores are reported, not asserted: what must
hold is structure (a prediction for every question, no failure, every passage a real paragraph
of the file, losses finite and logged, the run card done)."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from steper.evaluation.metrics import score
from steper.evaluation.predictions import metrics_from_predictions
from tests.realdata.conftest import (
    FILES,
    dataset_overrides,
    raw_rows,
    read_jsonl,
    real_path,
    row_id,
    run_entry,
)

TOP_K = 2
MAX_STEPS = 3  # of the loop that evaluates (the oracle's chains need up to 5 sentences on 2Wiki)
N_EVAL = 10
TRAIN_STEPS = 8
T = TypeVar("T")
TASKS = ("first", "mid", "final", "vanilla")
# the short loop of every evaluation here (evaluate.py's top-level keys; train.py's under eval.)
LOOP = [f"retriever.top_k={TOP_K}", f"framework.max_steps={MAX_STEPS}"]


def _squash(text: str) -> str:
    """A paragraph's text without whitespace: HotpotQA joins sentences with "", 2Wiki with " "."""
    return re.sub(r"\s+", "", text)


def real_paragraphs(key: str) -> dict[str, set[str]]:
    """title → the (whitespace-free) texts of the paragraphs of that title in the file's contexts."""
    out: dict[str, set[str]] = {}
    for row in raw_rows(real_path(key)):
        for title, sentences in row["context"]:
            out.setdefault(title.strip(), set()).add(_squash("".join(sentences)))
    return out


def bad_sf_rows(rows: list[dict]) -> list[str]:
    """Ids of the rows with a supporting fact whose sentence index is past its paragraph's end."""
    out = []
    for row in rows:
        lengths = {title: len(sentences) for title, sentences in row["context"]}
        if any(title in lengths and i >= lengths[title] for title, i in row["supporting_facts"]):
            out.append(row_id(row))
    return out


def check_real_loop(rows: list[dict], key: str) -> None:
    """Every step of every prediction queried the retriever and got TOP_K real paragraphs of the
    file's contexts (the corpus is their union); the first query is the question itself."""
    paragraphs = real_paragraphs(key)
    for row in rows:
        trace, steps = row["trace"], row["trace"]["steps"]
        assert 1 <= row["steps"] == len(steps) <= MAX_STEPS, row["qid"]
        assert row["queries"] == [s["query"] for s in steps] and all(q.strip() for q in row["queries"])
        assert steps[0]["query"] == row["question"]
        for s in steps:
            assert len(s["retrieved"]) == TOP_K == len(set(s["retrieved"])), (row["qid"], s["step"])
            assert set(s["retrieved"]) <= set(s["accumulated"]) <= set(trace["passages"])
        for pid, p in trace["passages"].items():
            assert p["title"] in paragraphs, (row["qid"], pid, p["title"])
            assert _squash(p["text"]) in paragraphs[p["title"]], (row["qid"], pid)
        assert set(row["gold_found"]) <= set(row["gold_titles"]) <= set(paragraphs)
        expected = score(row["prediction"], row["golds"])["em"] if row["prediction"] is not None else 0.0
        assert row["em"] == expected, (row["qid"], row["prediction"], row["golds"])


def check_metrics(metrics: dict, rows: list[dict], ids: list[str]) -> None:
    """metrics.json is the summary of predictions.jsonl, one row per test question, in order."""
    assert [r["qid"] for r in rows] == ids
    assert metrics["n"] == N_EVAL and metrics["failures"] == 0
    assert metrics == metrics_from_predictions(rows)
    for k in ("em", "f1", "acc"):
        assert 0.0 <= metrics[k] <= 100.0, (k, metrics[k])
    assert 0.0 <= metrics["gold_recall"] <= 1.0 and metrics["gold_recall"] > 0  # BM25 finds some gold
    assert metrics["no_answer"] == sum(r["prediction"] is None for r in rows)


def first_ids(key: str, n: int) -> list[str]:
    """The ids of the first `n` rows of a shared file (the test questions of dataset_overrides)."""
    return [row_id(r) for r in raw_rows(real_path(key))[:n]]


def timed(label: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs), its wall time printed (shown with `pytest -s`)."""
    start = time.monotonic()
    out = fn(*args, **kwargs)
    print(f"\n[{label}: {time.monotonic() - start:.1f}s]")
    return out


# ------------------------------------------------------------------------------------------------
# 1. the oracle teacher's step-wise data from 500 real 2Wiki train rows
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle_2wiki(
    real_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess, Path]:
    """generate_data.py teacher=oracle on every row of the 2Wiki train sample (seconds): the result
    and its out_dir (<out>/stepwise is train.py's stepwise.data_dir)."""
    tmp = tmp_path_factory.mktemp("real-2wiki-oracle")
    overrides = [
        *dataset_overrides("2wiki_train", tmp),
        "split=train",
        "teacher=oracle",
        f"retriever.top_k={TOP_K}",
    ]
    r = timed("generate_data 2wiki_train", run_entry, "generate_data.py", overrides, tmp, timeout=300)
    return r, tmp / "data" / "stepwise" / "2wiki-oracle-ircot"


def test_oracle_stepwise_data_from_real_2wiki_train_rows(oracle_2wiki):
    r, out = oracle_2wiki
    assert r.returncode == 0, r.stderr[-4000:]
    rows = raw_rows(real_path("2wiki_train"))
    assert len(rows) == FILES["2wiki_train"][3]
    traces = read_jsonl(out / "traces.jsonl")
    # every row read, in the file's order, the 6 with a supporting fact one past its paragraph among them
    assert [t["qid"] for t in traces] == [row_id(row) for row in rows]
    odd = bad_sf_rows(rows)
    assert len(odd) == 6
    by_qid = {t["qid"]: t for t in traces}
    for row in rows:
        t = by_qid[row_id(row)]
        assert t["question"] == row["question"].strip() and t["golds"] == [row["answer"]]
        assert set(t["gold_titles"]) == {title.strip() for title, _ in row["supporting_facts"]}, t["qid"]
        assert t["finish"] == "answer" and t["steps"], t["qid"]

    train = read_jsonl(out / "stepwise" / "train.jsonl")
    val = read_jsonl(out / "stepwise" / "validation.jsonl")
    assert {e["qid"] for e in train}.isdisjoint({e["qid"] for e in val}) and val
    kept = {e["qid"] for e in train} | {e["qid"] for e in val}
    assert set(odd) <= set(by_qid)  # read, whether the oracle's retrieval then found their gold or not
    for t in traces:  # the oracle is right exactly when retrieval found every gold paragraph
        right = score(t["answer"], t["golds"])["em"] == 1.0
        assert right == (set(t["gold_titles"]) <= set(t["gold_found"])), t["qid"]
        assert right == (t["qid"] in kept), t["qid"]  # filter=em keeps exactly the right traces
    # each example is one step of its trace: that step's sentence as target, the earlier ones as
    # prefix, the passages accumulated so far; vanilla is the whole chain
    for e in train + val:
        t = by_qid[e["qid"]]
        if e["task"] == "vanilla":
            assert e["target"] == " ".join(s["sentence"] for s in t["steps"]), e["qid"]
            continue
        s = t["steps"][e["step"] - 1]
        assert (e["target"], e["prefix"]) == (s["sentence"], s["prefix"]), (e["qid"], e["step"])
        assert [p["title"] for p in e["passages"]] == [t["passages"][i]["title"] for i in s["accumulated"]]
        assert (e["task"] == "first") == (e["step"] == 1)
        assert (e["task"] == "final") == (e["step"] == len(t["steps"]))
    assert all(e["target"].startswith("So the answer is: ") for e in train + val if e["task"] == "final")

    m = json.loads((out / "manifest.json").read_text())
    assert m["questions"] == len(traces) == 500
    for split, examples in (("train", train), ("validation", val)):
        counts = {task: sum(e["task"] == task for e in examples) for task in TASKS}
        assert {task: m["counts"][split][task] for task in TASKS} == counts, split
        assert counts["first"] > 0 and counts["mid"] > 0 and counts["final"] > 0, (split, counts)
        assert m["counts"][split]["questions"] == counts["final"] == len({e["qid"] for e in examples})
    n_right = sum(score(t["answer"], t["golds"])["em"] == 1.0 for t in traces)
    assert m["filter"]["kept"] == len(kept) == n_right
    assert m["filter"]["dropped"]["wrong_answer"] == 500 - n_right
    assert m["teacher"]["em"] == pytest.approx(100 * n_right / 500)
    assert m["retrieval"]["acc_when_all_gold_found"] == 100.0 and m["failures"]["failed_requests"] == 0
    assert n_right >= 450, n_right  # the oracle misses only where BM25 top-2 missed a gold paragraph
    card = json.loads((out / "run.json").read_text())
    assert card["job"] == "generate_data" and card["status"] == "done"
    print(f"\n[oracle on 2wiki_train: {n_right}/500 kept; counts {m['counts']}]")


# ------------------------------------------------------------------------------------------------
# 2. an ICL baseline: SmolLM2-135M with the few-shot demonstrations, on real dev questions
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    """The fetched SmolLM2-135M-Instruct folder (a failure, as in tests/real, when it was not fetched)."""
    from steper.models import REGISTRY, fetched_path

    folder = fetched_path(REGISTRY["smollm2-135m"])
    if folder is None:
        pytest.fail(
            "smollm2-135m is not fetched: run `make models` (python -m steper.models fetch smollm2-135m)"
        )
    return folder


@pytest.mark.parametrize("key", ["2wiki_dev", "hotpot_dev"])
def test_icl_baseline_smollm2_on_real_dev_questions(real_dir, tmp_path_factory, smollm2_path, key):
    tmp = tmp_path_factory.mktemp(f"real-icl-{key}")
    out = tmp / "out"
    overrides = [
        *dataset_overrides(key, tmp, limit=N_EVAL), "target=hf", "target.model_name_or_path=smollm2-135m",
        "target.max_new_tokens=32", *LOOP, f"limit={N_EVAL}", "logger=none", f"out_dir={out}",
    ]  # fmt: skip
    r = timed(f"evaluate ICL {key}", run_entry, "evaluate.py", overrides, tmp, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    rows = read_jsonl(out / "predictions.jsonl")
    metrics = json.loads((out / "metrics.json").read_text())
    check_metrics(metrics, rows, first_ids(key, N_EVAL))
    check_real_loop(rows, key)
    # the model really generated for every question (a step-1 generation, even an empty one, is a string)
    assert all(isinstance(r["trace"]["steps"][0]["generation"], str) for r in rows)
    assert any(r["trace"]["steps"][0]["generation"].strip() for r in rows)
    card = json.loads((out / "run.json").read_text())
    assert card["job"] == "evaluate" and card["status"] == "done"
    assert card["data"]["n_demos"] == 3 and card["model"]["kind"] == "hf"  # the ICL default: 3 demos
    stats = card["data"]["run"]["generator_stats"]
    assert stats["failures"] == 0 and stats["generated_tokens"] > 0
    assert stats["requests"] == sum(row["steps"] for row in rows)
    # the demonstrations are in the prompt: ~3 demos of ~100 tokens each on top of 2-6 passages
    assert stats["prompt_tokens"] / stats["requests"] > 300
    print(f"\n[ICL smollm2-135m on {key}: EM {metrics['em']:.1f} F1 {metrics['f1']:.1f} "
          f"Acc {metrics['acc']:.1f}, no answer {metrics['no_answer']}, finish {metrics['finish']}]")  # fmt: skip


# ------------------------------------------------------------------------------------------------
# 3. a short LoRA student on the real 2Wiki step-wise data, evaluated in the loop on real dev rows
# ------------------------------------------------------------------------------------------------


def test_lora_student_on_real_2wiki_stepwise_data(oracle_2wiki, tmp_path_factory, smollm2_path):
    r, data = oracle_2wiki
    assert r.returncode == 0, r.stderr[-4000:]
    tmp = tmp_path_factory.mktemp("real-2wiki-lora")
    run_dir = tmp / "train-run"
    overrides = [
        *dataset_overrides("2wiki_dev", tmp, limit=N_EVAL), f"stepwise.data_dir={data / 'stepwise'}",
        "model=smollm2-135m", "peft=lora", "logger=csv", f"hydra.run.dir={run_dir}",
        # CPU-sized (conf/experiment/demo.yaml): LoRA at a high lr, short examples, a few steps
        "training.lr=1e-3", "training.warmup_ratio=0.1", "training.batch_size=2", "training.max_length=512",
        f"trainer.max_steps={TRAIN_STEPS}", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "callbacks.progress_bar=null", "module.weighting_lr=1e-2",
        "stepwise.limit_train=64", "stepwise.limit_val=8",
        # the evaluation after training: 10 real dev questions in the loop
        *LOOP, "eval.enabled=true", f"eval.limit={N_EVAL}", "eval.val_limit=0", "eval.max_new_tokens=32",
        f"eval.batch_size={N_EVAL}", "eval.progress=false",
    ]  # fmt: skip
    r = timed("train LoRA student", run_entry, "train.py", overrides, tmp, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]

    # the loss: a finite train/loss logged at every step (the adaptive weighting's total, which may
    # go below 0), positive per-task cross-entropies, and the final weights' validation losses
    history = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv", newline="")))
    losses = [float(row["train/loss"]) for row in history if row.get("train/loss")]
    assert len(losses) == TRAIN_STEPS and all(math.isfinite(v) for v in losses), losses
    for task in ("first", "mid", "final"):
        per_task = [float(row[f"train/loss_{task}"]) for row in history if row.get(f"train/loss_{task}")]
        assert per_task and all(math.isfinite(v) and v > 0 for v in per_task), (task, per_task)
    val = [row for row in history if row.get("val/loss_mean")]
    assert val, "no validation after training"
    for task in ("first", "mid", "final", "mean"):
        v = float(val[-1][f"val/loss_{task}"])
        assert math.isfinite(v) and v > 0, (task, v)

    # the exported student: a LoRA adapter on SmolLM2 with the tokenizer, trained on that data
    student = run_dir / "student"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "steper_export.json"):
        assert (student / name).is_file(), name
    export = json.loads((student / "steper_export.json").read_text())
    assert export["adapter"] is True and export["global_step"] == TRAIN_STEPS
    assert Path(export["base_model"]) == smollm2_path and export["dataset"] == "2wiki"
    assert Path(export["data_dir"]) == data / "stepwise"
    adapter = json.loads((student / "adapter_config.json").read_text())
    assert {"q_proj", "v_proj", "down_proj"} <= set(adapter["target_modules"])

    # the evaluation after training: 10 real 2Wiki dev questions, none a training question
    rows = read_jsonl(run_dir / "eval" / "predictions.jsonl")
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    ids = first_ids("2wiki_dev", N_EVAL)
    check_metrics(metrics, rows, ids)
    check_real_loop(rows, "2wiki_dev")
    assert set(ids).isdisjoint(t["qid"] for t in read_jsonl(data / "traces.jsonl"))
    test_logged = [row for row in history if row.get("test/em")]
    assert test_logged and float(test_logged[-1]["test/em"]) == pytest.approx(metrics["em"])

    card = json.loads((run_dir / "run.json").read_text())
    assert card["job"] == "train" and card["status"] == "done" and card["error"] is None
    assert card["finished"] >= card["started"]
    assert card["data"]["stepwise_dir"] == str(data / "stepwise") and card["data"]["eval_split"] == "test"
    assert (run_dir / card["where"]["student"]).is_dir()
    assert {k: card["metrics"][k] for k in ("n", "em", "f1", "acc")} == {
        k: metrics[k] for k in ("n", "em", "f1", "acc")
    }
    print(f"\n[LoRA student on 2wiki_dev: EM {metrics['em']:.1f} F1 {metrics['f1']:.1f} Acc {metrics['acc']:.1f}, "
          f"no answer {metrics['no_answer']}, finish {metrics['finish']}; train/loss {losses[0]:.3f} -> "
          f"{losses[-1]:.3f}; val/loss_mean {float(val[-1]['val/loss_mean']):.3f}]")  # fmt: skip
