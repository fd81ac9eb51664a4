"""W&B runs-table exports (.csv, one row per run) → run cards → `RunRecord`s.

The one place where other spellings exist: W&B shows the config as columns (`dataset`,
`dataset.name`, `model`, `weighting`, `target.name`, …) and the summary under `test/<metric>` (train)
or `eval/<metric>` (evaluate). `WANDB_COLUMNS` maps each card field to the columns that may hold it
(the first non-empty one wins) and `card_from_row` builds the card; the card reader does the rest.
"""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path
from typing import Any

from steper.constants import METRICS
from steper.errors import SteperError
from steper.report.cards import Problems, record_from_card, text
from steper.report.records import RunRecord, display_path
from steper.runcard import RunCard


def _metric(name: str) -> tuple[str, ...]:
    return (f"test/{name}", f"eval/{name}", name)


# card field ("section.key") -> the W&B export columns that hold it, first non-empty wins
WANDB_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("Name", "name", "run", "Run"),
    "state": ("State", "state"),
    "job": ("job", "task_name", "task", "Job Type", "job_type"),
    "data.dataset": ("dataset", "dataset.name", "dataset/name", "config.dataset.name", "data"),
    "data.mode": ("mode", "eval.mode", "eval/mode"),
    "model.target": ("target.name", "target/name", "target_name"),
    "model.label": ("target.label", "target/label", "target_label", "label"),
    "model.name": (
        "target.model",
        "target/model",
        "target.model_name_or_path",
        "target/model_name_or_path",
        "model",
        "model.name",
        "model/name",
        "config.model.name",
    ),  # fmt: skip
    "model.method": ("method", "method.name", "method/name", "config.method.name"),
    "model.weighting": ("weighting", "weighting.name", "weighting/name", "config.weighting.name"),
    "model.seed": ("seed", "config.seed"),
    **{f"metrics.{m}": _metric(m) for m in METRICS},
    "metrics.latency_s": (
        "test/latency_s/mean",
        "eval/latency_s/mean",
        "latency_s.mean",
        "latency_s/mean",
        "test/latency_s.mean",
        "test/latency_s",
        "latency_s",
    ),  # fmt: skip
    "metrics.questions_per_s": _metric("questions_per_s"),
}
NUMERIC = {f"metrics.{m}" for m in (*METRICS, "latency_s", "questions_per_s")}
# W&B run states → card status
STATES = {"finished": "done", "": "done", "running": "running"}


def _config_cell(value: str) -> str | None:
    """A W&B config cell: a plain name, or a dict printed as text (`{'name': 'hotpot', …}`)."""
    v = value.strip()
    if v.startswith("{"):
        try:
            d = json.loads(v)
        except ValueError:
            try:
                d = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                return v
        return text(d.get("name")) if isinstance(d, dict) else v
    return v or None


def _pick(row: dict[str, str], field: str) -> tuple[str, str] | None:
    """(column, cell) of the first non-empty column holding `field`."""
    for column in WANDB_COLUMNS[field]:
        v = row.get(column)
        if v is not None and str(v).strip() != "":
            return column, str(v).strip()
    return None


def card_from_row(row: dict[str, str], problems: Problems) -> RunCard:
    """One export row as the run card its job would have written (a bad number is a problem)."""
    sections: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "metrics": {}}
    for field in WANDB_COLUMNS:
        hit = _pick(row, field)
        if hit is None or "." not in field:
            continue
        section, key = field.split(".", 1)
        column, cell = hit
        if field not in NUMERIC:
            sections[section][key] = _config_cell(cell)
            continue
        try:
            sections[section][key] = float(cell)
        except ValueError:
            problems.add(f"column {column} is {cell!r}, not a number; left out")
    job = (_pick(row, "job") or ("", ""))[1].lower()
    job = "evaluate" if job.startswith("eval") or (not job and "target" in sections["model"]) else "train"
    state = (_pick(row, "state") or ("", ""))[1].lower()
    status = STATES.get(state, "failed")
    return RunCard(
        job=job,
        status=status,
        error=f"W&B state {state!r}" if status == "failed" else None,
        started=0.0,
        **sections,
    )


def read_wandb_csv(path: Path, order: int = 0) -> tuple[list[RunRecord], list[str]]:
    """A W&B runs-table export → one record per row, and the problems found."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise SteperError(f"{display_path(path)}: cannot read as a W&B CSV export ({e})") from None
    known = {c for columns in WANDB_COLUMNS.values() for c in columns}
    if rows and not (known & set(rows[0])):
        raise SteperError(
            f"{display_path(path)}: not a W&B runs export (expected columns like Name, dataset, "
            "model, method, weighting, seed, test/acc)"
        )
    mtime = path.stat().st_mtime
    records: list[RunRecord] = []
    problems: list[str] = []
    for i, row in enumerate(rows):
        name = (_pick(row, "name") or ("", f"row {i + 2}"))[1]
        src = f"{display_path(path)}#{name}"
        found = Problems(src)
        card = card_from_row(row, found)
        card.finished = mtime + i * 1e-6
        rec, probs = record_from_card(card, path=src, src=src, order=order + i, source="wandb")
        records.append(rec)
        problems += [*found, *probs]
    if not records:
        problems.append(f"{display_path(path)}: no rows")
    return records, problems
