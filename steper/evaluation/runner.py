"""A generator through the reasoning loop on test questions, resumable (docs/method.md §6).

`evaluate_generator(questions, retriever, generator, *, out_dir, ...)` needs no Hydra: evaluate.py
calls it with a loaded target, train.py with the in-memory student wrapped as an `HFGenerator`.
Written into `out_dir`: `predictions.jsonl` (one row per question, `prediction_row`), `metrics.json`
(`metrics_from_predictions` of those rows) and `eval_key.json` (the settings the predictions depend
on: a rerun with other settings into the same folder is refused). Resume and the final rewrite in
question order are `steper.jobs.ResumableRows`', so a resumed evaluation's files equal an
uninterrupted one's (but for the timing metrics).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.evaluation.modes import with_mode
from steper.evaluation.predictions import METRICS, PREDICTIONS, metrics_from_predictions, prediction_row
from steper.io import write_json
from steper.jobs import JobProgress, ResumableRows, check_unique_qids
from steper.reasoning.loop import Framework, Trace, run_loop

EVAL_KEY = "eval_key.json"


def evaluate_generator(
    questions: Sequence[Any],
    retriever: Any,
    generator: Any,
    *,
    out_dir: str | Path,
    framework: str | Framework = "ircot",
    mode: str = "multistep",
    top_k: int = 4,
    max_steps: int = 5,
    max_passages: int = 15,
    batch_size: int = 32,
    demos: str = "",
    progress: bool = True,
    retry_errors: bool = True,
    run_key: dict[str, Any] | None = None,
    row_delay_s: float = 0.0,
    run_stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `generator` through the loop on `questions` into `out_dir` (resuming from the rows
    already there); return the metrics (what metrics.json holds). How the run went (resumed and new
    rows, seconds, generator stats) goes into `run_stats` when one is given.

    `framework`: ircot | selfask (or a Framework); `mode`: multistep | single | noretrieval;
    `top_k` passages per retrieval, at most `max_steps` generated units and `max_passages`
    accumulated passages; `batch_size` questions in flight (one retriever and one generator call
    per step for all of them); `demos`: few-shot text before each prompt ("" for a student).
    `run_key`: extra settings the predictions depend on (dataset, target, ...).
    """
    t_start = time.perf_counter()
    fw = with_mode(framework, mode)
    if not questions:
        raise SteperError("no questions to evaluate")
    qids = check_unique_qids(questions, "the evaluation's questions")
    loop = {"top_k": int(top_k), "max_steps": int(max_steps), "max_passages": int(max_passages)}
    key = {
        "framework": fw.name,
        "mode": mode,
        **loop,
        "demos": hashlib.sha1(demos.encode("utf-8")).hexdigest()[:12] if demos else "",
        **(run_key or {}),
    }
    with ResumableRows(Path(out_dir), PREDICTIONS, EVAL_KEY, key, what="predictions") as job:
        todo = job.todo(questions, retry_errors=retry_errors)
        if todo and (retriever is None or generator is None):
            raise SteperError("evaluate_generator needs a retriever and a generator for the questions left")
        if todo:
            with JobProgress("evaluate", len(questions), job.resumed, enabled=progress, qps_digits=2) as bar:

                def on_trace(trace: Trace) -> None:
                    row = prediction_row(trace, mode)
                    job.write(row)
                    bar.add(row["acc"])
                    if row_delay_s:
                        time.sleep(row_delay_s)

                run_loop(todo, retriever, generator, framework=fw, demos=demos, batch_size=int(batch_size),
                         on_trace=on_trace, **loop)  # fmt: skip
    rows = job.finish(qids)
    metrics = metrics_from_predictions(rows)
    write_json(job.out_dir / METRICS, metrics)
    stats = dict(getattr(generator, "stats", {}) or {}) if generator is not None else {}
    (run_stats if run_stats is not None else {}).update(
        questions=len(rows),
        resumed_rows=job.resumed,
        new_rows=job.new,
        seconds=round(time.perf_counter() - t_start, 3),
        generator_stats=json.loads(json.dumps(stats, default=str)),
    )
    return metrics
