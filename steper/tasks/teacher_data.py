"""What generate_data makes of the teacher's traces: the step-wise files, their HF dataset view
and the summary numbers (teacher accuracy, gold-paragraph recall, finish reasons)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steper.io import write_jsonl


def save_hf(train: Sequence[dict], validation: Sequence[dict], out: Path) -> None:
    """The step-wise splits as a `datasets.DatasetDict` at `out`, written atomically."""
    from datasets import DatasetDict
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    from steper.distill.stepwise import stepwise_dataset

    dd = DatasetDict({"train": stepwise_dataset(train), "validation": stepwise_dataset(validation)})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = out.with_name(f".{out.name}.old")
    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        dd.save_to_disk(str(tmp))
        if old.exists():
            shutil.rmtree(old)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if not bars_were_off:
            enable_progress_bars()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_stepwise(traces: Sequence[Any], out_dir: Path, filter: str, val_fraction: float, seed: int) -> dict:
    """The step-wise examples of the correct traces, split by question, written as
    `stepwise/{train,validation}.jsonl` and `stepwise_hf/`; returns the counts and filter stats."""
    from steper.distill.stepwise import build_stepwise, split_by_question, task_counts

    examples, filter_stats = build_stepwise(traces, filter)
    train, validation = split_by_question(examples, val_fraction, seed)
    write_jsonl(out_dir / "stepwise" / "train.jsonl", train)
    write_jsonl(out_dir / "stepwise" / "validation.jsonl", validation)
    save_hf(train, validation, out_dir / "stepwise_hf")
    counts = {
        "train": {**task_counts(train), "questions": len({e["qid"] for e in train})},
        "validation": {**task_counts(validation), "questions": len({e["qid"] for e in validation})},
    }
    return {"counts": counts, "filter": filter_stats}


def _pct(vals: Sequence[float]) -> float | None:
    return round(100.0 * sum(vals) / len(vals), 4) if vals else None


def summarize(traces: Sequence[Any]) -> dict[str, Any]:
    """Teacher metrics, finish reasons and gold-paragraph recall over traces (percentages)."""
    from steper.distill.stepwise import trace_score

    n = len(traces)
    scores = [trace_score(t) for t in traces]
    gold = [(t, s) for t, s in zip(traces, scores) if t.gold_titles]
    return {
        "teacher": {
            "em": _pct([s["em"] for s in scores]),
            "f1": _pct([s["f1"] for s in scores]),
            "acc": _pct([s["acc"] for s in scores]),
            "count": n,
        },
        "finish": dict(sorted(Counter(t.finish for t in traces).items())),
        "mean_steps": round(sum(len(t.steps) for t in traces) / n, 4) if n else None,
        "retrieval": {
            "questions_with_gold_titles": len(gold),
            "all_gold_found": _pct([float(t.all_gold_found) for t, _ in gold]),
            "gold_recall": _pct([len(t.gold_found) / len(t.gold_titles) for t, _ in gold]),
            # the oracle-style view: the teacher's Acc where retrieval found every gold paragraph
            "acc_when_all_gold_found": _pct([s["acc"] for t, s in gold if t.all_gold_found]),
            "acc_when_gold_missed": _pct([s["acc"] for t, s in gold if not t.all_gold_found]),
        },
    }
