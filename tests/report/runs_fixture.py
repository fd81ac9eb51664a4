"""Synthetic run folders in the layout train.py / evaluate.py write (see steper/report/collect.py)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import yaml


def _write_config(run_dir: Path, cfg: dict[str, Any]) -> None:
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")


def _touch_later(path: Path, t: float | None) -> None:
    if t is not None:
        os.utime(path, (t, t))


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
) -> Path:
    """A train.py job folder; `finished=False` leaves out metrics.json (a failed job)."""
    cfg = {
        "task_name": "train",
        "seed": seed,
        "dataset": {"name": dataset, "format": dataset},
        "model": {"name": model, "lr": 5e-6},
        "method": {"name": method},
        "weighting": {"name": weighting},
    }
    _write_config(run_dir, cfg)
    if overrides is not None:
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides), encoding="utf-8")
    if finished:
        m: dict[str, Any] = {"val/loss_mean": 1.0, "global_step": 10}
        for k, v in (("em", em), ("f1", f1), ("acc", acc)):
            if v is not None:
                m[f"test/{k}"] = v
        (run_dir / "metrics.json").write_text(json.dumps(m), encoding="utf-8")
        _touch_later(run_dir / "metrics.json", mtime)
    if history:
        cols = sorted({k for row in history for k in row}, key=lambda c: (c != "step", c != "epoch", c))
        (run_dir / "csv").mkdir(parents=True, exist_ok=True)
        with open(run_dir / "csv" / "metrics.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for row in history:
                w.writerow({k: row.get(k, "") for k in cols})
    if eval_metrics is not None:
        (run_dir / "eval").mkdir(parents=True, exist_ok=True)
        (run_dir / "eval" / "metrics.json").write_text(json.dumps(eval_metrics), encoding="utf-8")
    if predictions is not None:
        (run_dir / "eval").mkdir(parents=True, exist_ok=True)
        write_predictions(run_dir / "eval" / "predictions.jsonl", predictions)
    return run_dir


def eval_run(
    run_dir: Path,
    *,
    dataset: str = "hotpot",
    target: dict[str, Any] | None = None,
    mode: str = "multistep",
    metrics: dict[str, Any] | None = None,
    predictions: list[dict[str, Any]] | None = None,
    run_json: dict[str, Any] | None = None,
) -> Path:
    """An evaluate.py job folder (metrics=None: a failed one)."""
    cfg = {
        "task_name": "evaluate",
        "dataset": {"name": dataset},
        "mode": mode,
        "target": target or {"name": "openai", "model": "qwen72b", "label": "teacher"},
    }
    _write_config(run_dir, cfg)
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if predictions is not None:
        write_predictions(run_dir / "predictions.jsonl", predictions)
    if run_json is not None:
        (run_dir / "run.json").write_text(json.dumps(run_json), encoding="utf-8")
    return run_dir


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
