"""Tables of single runs: the inventory of every run, the training table (did each student
really train?) and the reasoning-ability judge's scores."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from steper.constants import METRICS, STEP_TASKS
from steper.report.cards import TRAINING_COUNTS
from steper.report.judge_prompts import ABILITIES
from steper.report.paired import run_interval
from steper.report.records import RunRecord, where
from steper.report.rows import baseline_model, dataset_label, model_rank, student_label, vanilla_qualified
from steper.report.table import UNRECORDED, Cell, Stat, Table

# the columns of what a student trained on (the card's metrics.optimizer_steps, …)
COUNT_LABELS = {"optimizer_steps": "steps", "examples_seen": "examples", "target_tokens": "target tokens"}


def judge_table(judged: list[tuple[RunRecord, dict[str, Any]]]) -> Table:
    """Rows = judged runs; columns = share of scores ≥ 4 (%) per reasoning ability, and items judged."""
    table = Table(
        name="judge",
        title="Reasoning-ability judge: share of scores ≥ 4 (%)",
        key_header=["method", "model", "dataset", "seed"],
        value_header=[
            "init ≥4",
            "expansion ≥4",
            "aggregation ≥4",
            "init mean",
            "expansion mean",
            "aggregation mean",
        ],
        value_names=[f"{a}_share_ge4" for a in ABILITIES] + [f"{a}_mean" for a in ABILITIES],
        digits=1,
    )
    qualified = vanilla_qualified(r for r, _ in judged)
    judged = sorted(judged, key=lambda rj: (rj[0].role != "baseline", model_rank(rj[0].model), rj[0].label))
    for r, res in judged:
        abil = res.get("abilities") or {}
        shares: list[Cell] = []
        means: list[Cell] = []
        for a in ABILITIES:
            d = abil.get(a) or {}
            share, mean = d.get("share_ge4"), d.get("mean")
            shares.append(Stat([float(share)]) if _finite(share) else "")
            means.append(Stat([float(mean)]) if _finite(mean) else "")
        label = student_label(r, qualified) if r.role == "student" else r.label
        model = r.model if r.role == "student" else baseline_model(r)
        keys = [
            label,
            model or "?",
            dataset_label(r.dataset) if r.dataset else "?",
            "" if r.seed is None else str(r.seed),
        ]
        table.rows.append((keys, shares + means))
        fails = {a: (abil.get(a) or {}).get("failures", 0) for a in ABILITIES}
        if any(fails.values()):
            table.notes.append(
                f"{' · '.join(k for k in keys if k)}: judge failures excluded "
                + ", ".join(f"{a} {n}" for a, n in fails.items() if n)
            )
    return table


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# ------------------------------------------------------------------------------------------ runs


def has_counts(runs: Iterable[RunRecord]) -> bool:
    """Whether any student's card recorded what it trained on (then the tables show it; older cards
    did not, and a column of nothing but `–` would be noise)."""
    return any(k in r.extra for r in runs if r.role == "student" for k in TRAINING_COUNTS)


def runs_table(runs: list[RunRecord], kept: list[RunRecord] | None = None) -> Table:
    """Every run collected, one line each (the report's inventory); runs left out of `kept` (the
    losers of a same-cell-same-seed duplicate) are marked `superseded`. EM / F1 / Acc carry the
    run's bootstrap 95% CI over its test questions when its predictions have per-question scores;
    what each student trained on (steps, examples, target tokens) when any card says."""
    kept_ids = None if kept is None else {id(r) for r in kept}
    counts = list(TRAINING_COUNTS) if has_counts(runs) else []
    table = Table(
        name="runs",
        title="Runs",
        key_header=["run", "kind", "method", "model", "dataset", "seed", "mode", "status"],
        value_header=["EM", "F1", "Acc", "latency (s/q)"] + [COUNT_LABELS[k] for k in counts],
        value_names=["em", "f1", "acc", "latency_s", *counts],
        with_ci=True,
        no_ci=("latency_s", *counts),
    )
    for r in sorted(runs, key=lambda r: r.order):
        keys = [
            where(r),
            r.kind,
            r.label,
            (r.model if r.role == "student" else baseline_model(r)) or "?",
            r.dataset or "?",
            "" if r.seed is None else str(r.seed),
            r.mode or "",
            r.status + (", superseded" if kept_ids is not None and id(r) not in kept_ids else ""),
        ]
        cells: list[Cell] = [
            Stat([r.metrics[m]], ci=run_interval(r, m)) if m in r.metrics else "" for m in METRICS
        ]
        cells.append(Stat([r.latency_s]) if r.latency_s is not None else "")
        for k in counts:
            student = r.role == "student"
            cells.append(
                Stat([float(r.extra[k])], integer=True) if k in r.extra else UNRECORDED if student else ""
            )
        table.rows.append((keys, cells))
    return table


TASK_LOSSES = tuple(f"val/loss_{t}" for t in STEP_TASKS)


def loss_start_end(history: dict[str, list[float | None]], key: str) -> tuple[float, float] | None:
    """The first and last logged values of a (sparse) history column, None when fewer than two."""
    values = [v for v in history.get(key, []) if _finite(v)]
    return (values[0], values[-1]) if len(values) >= 2 else None


def training_table(runs: list[RunRecord]) -> Table:
    """Did each student really train? Per task, the validation loss where it started (the step-0
    validation) and where it ended."""
    table = Table(
        name="training",
        title="Training: per-task validation loss at the start and at the end",
        key_header=["run", "student", "model", "dataset", "seed"],
        value_header=[f"{t} {when}" for t in STEP_TASKS for when in ("start", "end")],
        value_names=[f"{t}_{when}" for t in STEP_TASKS for when in ("start", "end")],
    )
    for r in sorted(runs, key=lambda r: r.order):
        if r.kind != "train" or not r.history:
            continue
        cells: list[Cell] = []
        for key in TASK_LOSSES:
            se = loss_start_end(r.history, key)
            cells += [Stat([se[0]]), Stat([se[1]])] if se else [None, None]
        if all(c is None for c in cells):
            continue
        keys = [where(r), r.label, r.model or "?", r.dataset or "?", "" if r.seed is None else str(r.seed)]
        table.rows.append((keys, cells))
    return table
