"""Predictions and their metrics: one predictions.jsonl row per question, and the metrics of a
whole file of them (docs/method.md §6).

`metrics_from_predictions(rows)` is all that metrics.json holds, so recomputing it from
predictions.jsonl gives the file back. em/f1/acc in percent (0–100), gold_recall/all_gold_found as
shares (0–1), latency in seconds per question.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from steper.evaluation.metrics import aggregate, score
from steper.reasoning.loop import Trace

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
# metrics that measure speed, not answers: they differ between two runs of the same evaluation
TIMING_METRICS = ("latency_s", "questions_per_s")


def prediction_row(trace: Trace, mode: str = "multistep") -> dict[str, Any]:
    """One line of predictions.jsonl: the scored answer, retrieval of the gold paragraphs, timings,
    and the whole trace."""
    prediction = trace.answer if trace.answer and trace.answer.strip() else None  # "" is no answer
    s = score(prediction, trace.golds)
    secs = trace.seconds or {}
    retrieval = float(secs.get("retrieval", sum(st.retrieval_s for st in trace.steps)))
    generation = float(secs.get("generation", sum(st.generation_s for st in trace.steps)))
    return {
        "qid": trace.qid,
        "question": trace.question,
        "golds": list(trace.golds),
        "prediction": prediction,
        "em": float(s["em"]),
        "f1": float(s["f1"]),
        "acc": float(s["acc"]),
        "hops": trace.hops,
        "qtype": trace.qtype,
        "dataset": trace.dataset,
        "framework": trace.framework,
        "mode": mode,
        "steps": len(trace.steps),
        "finish": trace.finish,
        "reasoning": " ".join(trace.sentences),
        "queries": [st.query for st in trace.steps],
        "gold_titles": list(trace.gold_titles),
        "gold_found": list(trace.gold_found),
        "all_gold_found": trace.all_gold_found if trace.gold_titles else None,
        "retrieval_s": retrieval,
        "generation_s": generation,
        "seconds": retrieval + generation,
        "trace": trace.to_dict(),
    }


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _scores(rows: Sequence[dict]) -> dict[str, Any]:
    agg = aggregate([score(r.get("prediction"), r.get("golds") or []) for r in rows])
    return {"n": len(rows), "em": _r(agg["em"]), "f1": _r(agg["f1"]), "acc": _r(agg["acc"])}


def _group_key(value: Any) -> str:
    return "unknown" if value is None or value == "" else str(value)


def _sort_key(k: str) -> tuple:
    return (0, int(k), "") if k.isdigit() else (1, 0, k)


def _by(rows: Sequence[dict], field: str) -> dict[str, dict]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(_group_key(r.get(field)), []).append(r)
    return {k: _scores(groups[k]) for k in sorted(groups, key=_sort_key)}


def metrics_from_predictions(rows: Sequence[dict]) -> dict[str, Any]:
    """The metrics of predictions.jsonl rows (the scores recomputed from prediction + golds with
    `steper.evaluation.metrics`). em/f1/acc in percent; gold_recall = found gold paragraphs / all
    gold paragraphs, all_gold_found = share of questions with every gold paragraph retrieved (both
    over the questions that have gold titles, None without any); latency_s = mean seconds per
    question (retrieval and generation shares of the batched calls)."""
    n = len(rows)
    out: dict[str, Any] = _scores(rows)
    out["by_hops"] = _by(rows, "hops")
    out["by_type"] = _by(rows, "qtype")
    with_gold = [r for r in rows if r.get("gold_titles")]
    n_titles = sum(len(set(r["gold_titles"])) for r in with_gold)
    n_found = sum(len(set(r.get("gold_found") or []) & set(r["gold_titles"])) for r in with_gold)
    out["gold_recall"] = _r(n_found / n_titles) if n_titles else None
    out["all_gold_found"] = (
        _r(sum(bool(r.get("all_gold_found")) for r in with_gold) / len(with_gold)) if with_gold else None
    )
    out["mean_steps"] = _r(sum(int(r.get("steps") or 0) for r in rows) / n) if n else None
    finish = Counter(str(r.get("finish")) for r in rows)
    out["finish"] = dict(sorted(finish.items()))
    out["failures"] = finish.get("error", 0)
    out["empty"] = finish.get("empty", 0)
    out["no_answer"] = sum(r.get("prediction") is None for r in rows)
    total = sum(float(r.get("seconds") or 0.0) for r in rows)
    out["latency_s"] = {
        "mean": _r(total / n, 6) if n else None,
        "retrieval": _r(sum(float(r.get("retrieval_s") or 0.0) for r in rows) / n, 6) if n else None,
        "generation": _r(sum(float(r.get("generation_s") or 0.0) for r in rows) / n, 6) if n else None,
    }
    out["questions_per_s"] = _r(n / total, 3) if total > 0 else None
    return out


def strip_timing_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without the speed fields (for comparing two runs of the same evaluation)."""
    return {k: v for k, v in metrics.items() if k not in TIMING_METRICS}
