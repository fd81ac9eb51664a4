"""Synthetic job folders with run cards (`steper.runcard`), as train.py / evaluate.py write them."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import yaml

from steper.runcard import RunCard, write_card


def _card(run_dir: Path, card: RunCard, finished: float | None) -> Path:
    if card.status != "running":
        card.finished = time.time() if finished is None else finished
    return write_card(run_dir, card)


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    cols = sorted({k for row in history for k in row}, key=lambda c: (c != "step", c != "epoch", c))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k, "") for k in cols})


def train_run(
    run_dir: Path,
    *,
    dataset: str = "hotpot",
    model: str = "qwen0.5b",
    method: str = "steper",
    weighting: str = "adaptive",
    seed: int = 0,
    em: float | None = None,
    f1: float | None = None,
    acc: float | None = None,
    finished: bool = True,
    history: list[dict[str, Any]] | None = None,
    eval_metrics: dict[str, Any] | None = None,
    predictions: list[dict[str, Any]] | None = None,
    mtime: float | None = None,
    overrides: list[str] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """A train.py job folder; `finished=False` makes a failed job (status failed, no metrics).
    The card's metrics: `metrics` as given, else `eval_metrics` (the end-of-training evaluation),
    else em/f1/acc; `mtime`: when the job finished."""
    config = {
        "seed": seed,
        "dataset": {"name": dataset, "format": dataset},
        "model": {"name": model, "lr": 5e-6},
        "method": {"name": method},
        "weighting": {"name": weighting},
    }
    card = RunCard(
        job="train",
        choices={"dataset": dataset, "model": model, "method": method, "weighting": weighting},
        overrides=list(overrides or []),
        config=config,
        data={"dataset": dataset, "stepwise_dir": "data/stepwise", "eval_split": "dev"},
        model={"name": model, "name_or_path": model, "method": method, "weighting": weighting, "seed": seed},
        where={
            "metrics": "metrics.json",
            "checkpoints": "checkpoints",
            "student": "student",
            "predictions": "eval/predictions.jsonl",
        },
    )
    if finished:
        card.status = "done"
        answer = {k: v for k, v in (("em", em), ("f1", f1), ("acc", acc)) if v is not None}
        card.metrics = dict(metrics if metrics is not None else eval_metrics or answer)
        card.metrics["training"] = {"val/loss_mean": 1.0, "global_step": 10}
    else:
        card.status, card.error = "failed", "RuntimeError: CUDA out of memory"
    if history:
        _write_history(run_dir / "csv" / "metrics.csv", history)
        card.where["history"] = "csv/metrics.csv"
    if predictions is not None:
        write_predictions(run_dir / "eval" / "predictions.jsonl", predictions)
    _card(run_dir, card, mtime)
    return run_dir


def eval_run(
    run_dir: Path,
    *,
    dataset: str = "hotpot",
    target: dict[str, Any] | None = None,
    mode: str = "multistep",
    metrics: dict[str, Any] | None = None,
    predictions: list[dict[str, Any]] | None = None,
    mtime: float | None = None,
) -> Path:
    """An evaluate.py job folder (metrics=None: a failed one). `target` is the card's `model`:
    target (the backend), name, label; a student adds method, weighting, seed."""
    model = target or {"target": "openai", "name": "qwen72b", "label": "teacher"}
    card = RunCard(
        job="evaluate",
        choices={"dataset": dataset, "target": str(model.get("target"))},
        config={"dataset": {"name": dataset}, "mode": mode, "target": {"name": model.get("target")}},
        data={"dataset": dataset, "split": "dev", "questions": 500, "framework": "ircot", "mode": mode},
        model=dict(model),
        where={"metrics": "metrics.json", "predictions": "predictions.jsonl"},
    )
    if metrics is not None:
        card.status, card.metrics = "done", dict(metrics)
    else:
        card.status, card.error = "failed", "SteperError: cannot reach http://127.0.0.1:8000/v1"
    if predictions is not None:
        write_predictions(run_dir / "predictions.jsonl", predictions)
    _card(run_dir, card, mtime)
    return run_dir


def generate_data_run(run_dir: Path, dataset: str = "toy") -> Path:
    card = RunCard(job="generate_data", status="done", data={"dataset": dataset, "split": "train"})
    return _card(run_dir, card, None).parent


def eval_metrics(
    em: float, f1: float, acc: float, latency: float | None = None, n: int = 500
) -> dict[str, Any]:
    m: dict[str, Any] = {"n": n, "em": em, "f1": f1, "acc": acc, "gold_recall": 0.8, "mean_steps": 3.0}
    if latency is not None:
        m["latency_s"] = {"mean": latency, "retrieval": latency / 10, "generation": latency * 0.9}
        m["questions_per_s"] = 1 / latency
    return m


def multirun_yaml(folder: Path, params: dict[str, str], task: list[str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "hydra": {
            "sweeper": {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "params": params,
            },
            "overrides": {"task": task or []},
        }
    }
    (folder / "multirun.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")


def write_predictions(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def trace_row(
    qid: str, sentences: list[str], finish: str = "answer", nested: bool = True, question: str | None = None
) -> dict[str, Any]:
    """A predictions row in evaluate.py's layout (the trace nested under `trace`) or flat."""
    passages = {
        "p1": {"title": "Zorvak Telu", "text": "Zorvak Telu is a 1998 film directed by Mirel Okana."},
        "p2": {"title": "Mirel Okana", "text": "Mirel Okana is a film director born in Dresavo Pint."},
    }
    steps = []
    for i, s in enumerate(sentences, 1):
        steps.append(
            {
                "step": i,
                "query": "q",
                "retrieved": ["p1"] if i == 1 else ["p2"],
                "retrieved_titles": ["Zorvak Telu"] if i == 1 else ["Mirel Okana"],
                "accumulated": ["p1"] if i == 1 else ["p1", "p2"],
                "prefix": " ".join(sentences[: i - 1]),
                "generation": s,
                "sentence": s,
            }
        )
    question = question or "Where was the director of Zorvak Telu born?"
    golds = ["Dresavo Pint"]
    trace = {
        "qid": qid,
        "question": question,
        "golds": golds,
        "steps": steps,
        "finish": finish,
        "passages": passages,
    }
    row = {
        "qid": qid,
        "question": question,
        "golds": golds,
        "prediction": "Dresavo Pint",
        "em": 1.0,
        "f1": 1.0,
        "acc": 1.0,
        "finish": finish,
    }
    if nested:
        row.update(steps=len(steps), trace=trace)
    else:
        row.update(steps=steps, passages=passages)
    return row
