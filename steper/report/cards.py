"""A run card (`steper.runcard`) → its `RunRecord`: the one place the report reads a job's fields.

What is read (the card's contract; a key the report does not know is ignored):

- every job: `job` (train | evaluate; generate_data cards are skipped), `status` (done; running or
  failed make a failed record), `error`, `finished` (else `started`: "the later one wins"),
  `overrides` (sweep variants) and `config` (the value of a swept key in a run that left it out);
- `data.dataset`, `data.mode` (evaluate: the mode, multistep when absent; train: its end-of-training
  evaluation's mode, optional);
- train: `model.name`, `model.method`, `model.weighting`, `model.seed`;
- evaluate: `model.target` (student | checkpoint | hf | openai | oracle), `model.label` (target.label
  as given, null when not), `model.name` (the model in tables: a student's base model name, else the
  HF id / local folder / served model); a student adds `model.method`, `model.weighting`,
  `model.seed`;
- `metrics`: `em`, `f1`, `acc` (percent, 0-100), `latency_s` (seconds per question, a number or
  {mean, retrieval, generation}), `questions_per_s`, `n`, `gold_recall`, `mean_steps`, `failures`,
  `no_answer`, `by_hops`, `by_type`; train: `optimizer_steps`, `examples_seen`, `target_tokens`
  (what the student trained on, whole numbers; absent in older cards);
- `where.history` (train: Lightning's csv/metrics.csv) and `where.predictions`, relative to the card's
  folder; of a finished run's predictions file, each row's `qid` and its `em`, `f1`, `acc` (the
  per-question scores of the CIs and paired tests, `steper.report.paired`).

A value of the wrong kind (a metric that is text, a list, NaN, or outside 0-100) is left out and
named in a problem line: file, key and value.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from steper.constants import METRICS
from steper.errors import SteperError
from steper.report.records import (
    BASELINE_STEMS,
    STUDENT_TARGETS,
    RunRecord,
    display_path,
)
from steper.report.variants import parse_overrides
from steper.runcard import CARD_FILE, RunCard, read_card

TABLED_JOBS = ("train", "evaluate")
EXTRA_NUMBERS = ("n", "gold_recall", "mean_steps", "failures", "no_answer", "questions_per_s")
EXTRA_BREAKDOWNS = ("by_hops", "by_type")
TRAINING_COUNTS = ("optimizer_steps", "examples_seen", "target_tokens")
# the card's metric and the mean of its predictions' scores agree to the card's rounding (4 decimals)
SCORES_TOLERANCE = 0.01
LATENCY_PARTS = ("mean", "retrieval", "generation")


class Problems(list):
    """The problem lines found reading one card, each starting with where the card is."""

    def __init__(self, src: str) -> None:
        super().__init__()
        self.src = src

    def add(self, text: str) -> None:
        self.append(f"{self.src}: {text}")


# ------------------------------------------------------------------------------------------ values


def text(value: Any) -> str | None:
    """A name (dataset, model, method, …): a string or number as text; None for anything else."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    s = str(value).strip()
    return s or None


def seed_of(value: Any) -> int | str | None:
    """A seed: a whole number as an int (`7`, `7.0`, `"7"`), anything else named as text."""
    s = text(value)
    if s is None:
        return None
    f = _cell(s)
    return int(f) if f is not None and f == int(f) else s


def _shown(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def number(value: Any, key: str, problems: Problems, *, percent: bool = False) -> float | None:
    """A finite number, or None; a present value that is not one is a problem naming `key`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(f"{key} is {_shown(value)}, not a number; left out")
        return None
    if not math.isfinite(value):
        problems.add(f"{key} is {value}, not a finite number; left out")
        return None
    if percent and not 0 <= value <= 100:
        problems.add(f"{key} is {value}, outside 0-100 (answer metrics are percent); left out")
        return None
    return float(value)


def count(value: Any, key: str, problems: Problems) -> int | None:
    """A whole non-negative number (`12`, `12.0`), or None; anything else present is a problem."""
    v = number(value, key, problems)
    if v is None:
        return None
    if v < 0 or v != int(v):
        problems.add(f"{key} is {_shown(value)}, not a whole number >= 0; left out")
        return None
    return int(v)


# ------------------------------------------------------------------------------------------ fields


def _identity(rec: RunRecord, card: RunCard) -> None:
    """Dataset, mode, and who answered: a student (model, method, weighting, seed) or a baseline."""
    rec.dataset = text(card.data.get("dataset"))
    rec.mode = text(card.data.get("mode"))
    model = card.model
    if rec.kind == "evaluate":
        rec.mode = rec.mode or "multistep"
        rec.target = text(model.get("target"))
    if rec.kind == "train" or rec.target in STUDENT_TARGETS:
        rec.model = text(model.get("name"))
        rec.method = text(model.get("method"))
        rec.weighting = text(model.get("weighting"))
        rec.seed = seed_of(model.get("seed"))
        return
    label = text(model.get("label"))
    rec.teacher = "teacher" in (label or "").lower()
    rec.baseline = "Teacher" if rec.teacher else (label or BASELINE_STEMS.get(rec.target or "") or "Baseline")
    rec.model = short_model(model.get("name")) or label or rec.target


def short_model(ref: Any) -> str | None:
    """A model reference as a table label: an HF id as it is, a local folder by its last part."""
    s = text(ref)
    if s is None:
        return None
    s = s.rstrip("/")
    return Path(s).name if s.startswith(("/", "./", "../", "~")) else s


def _metrics(rec: RunRecord, metrics: dict[str, Any], problems: Problems) -> None:
    """Answer metrics, latency and the other evaluation numbers of a card's `metrics`."""
    for m in METRICS:
        v = number(metrics.get(m), f"metrics.{m}", problems, percent=True)
        if v is not None:
            rec.metrics[m] = v
    lat = metrics.get("latency_s")
    if isinstance(lat, dict):
        for part in LATENCY_PARTS:
            v = number(lat.get(part), f"metrics.latency_s.{part}", problems)
            if v is not None:
                rec.latency[part] = v
        rec.latency_s = rec.latency.get("mean")
    else:
        rec.latency_s = number(lat, "metrics.latency_s", problems)
    for k in EXTRA_NUMBERS:
        v = number(metrics.get(k), f"metrics.{k}", problems)
        if v is not None:
            rec.extra[k] = v
    for k in TRAINING_COUNTS:
        v = count(metrics.get(k), f"metrics.{k}", problems)
        if v is not None:
            rec.extra[k] = v
    if rec.latency_s is None and rec.extra.get("questions_per_s"):
        rec.latency_s = 1.0 / rec.extra["questions_per_s"]
    for k in EXTRA_BREAKDOWNS:
        if isinstance(metrics.get(k), dict):
            rec.extra[k] = metrics[k]


def _status(rec: RunRecord, card: RunCard, problems: Problems) -> None:
    if card.status == "failed":
        rec.status = "failed"
        problems.add(f"the job failed ({card.error or 'no error recorded'})")
    elif card.status == "running":
        rec.status = "failed"
        problems.add("status 'running' (killed, or still running?)")
    elif "acc" not in rec.metrics:
        rec.status = "no-test-metrics"
        why = " (evaluation after training did not run?)" if rec.kind == "train" else ""
        problems.add(f"no metrics.acc{why}")


def read_history(path: Path) -> dict[str, list[float | None]]:
    """A CSVLogger `metrics.csv` as columns; empty or non-numeric cells are None."""
    cols: dict[str, list[float | None]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        names = list(reader.fieldnames or [])
        for name in names:
            cols[name] = []
        for row in reader:
            for name in names:
                cols[name].append(_cell(row.get(name)))
    return cols


def _cell(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _files(rec: RunRecord, card: RunCard, folder: Path, problems: Problems) -> None:
    """The training history and the predictions the card's `where` names."""
    history, preds = text(card.where.get("history")), text(card.where.get("predictions"))
    if history:
        path = folder / history
        if not path.is_file():
            problems.add(f"where.history names {display_path(path)}, which is not there")
        else:
            try:
                rec.history = read_history(path)
                rec.history_path = str(path)
            except (OSError, csv.Error, UnicodeDecodeError) as e:
                problems.add(f"unreadable training history {display_path(path)} ({e})")
    if preds and (folder / preds).is_file():
        rec.predictions = folder / preds
        if rec.ok:
            rec.scores = _checked_scores(rec, rec.predictions, problems)


def read_scores(path: Path) -> tuple[dict[str, dict[str, float]], int]:
    """The per-question scores of a predictions file, metric -> qid -> score in [0, 1], and how many
    rows had none (no `qid`, or no valid score). A qid that appears twice keeps its later row, as
    the file's writer does when it resumes."""
    from steper.io import iter_jsonl

    scores: dict[str, dict[str, float]] = {m: {} for m in METRICS}
    unusable: list[int] = []
    for lineno, row in iter_jsonl(path, strict=False, skipped=unusable):
        qid = row.get("qid")
        used = False
        for m in METRICS:
            v = row.get(m)
            if qid is not None and isinstance(v, int | float) and not isinstance(v, bool):
                if math.isfinite(v) and 0 <= v <= 1:
                    scores[m][str(qid)] = float(v)
                    used = True
        if not used:
            unusable.append(lineno)
    return {m: s for m, s in scores.items() if s}, len(unusable)


def _checked_scores(rec: RunRecord, path: Path, problems: Problems) -> dict[str, dict[str, float]]:
    """The predictions' scores of the metrics whose mean matches the card's; a mismatch (the file
    of another evaluation?) is a problem and that metric gets no CI or paired test."""
    shown = display_path(path)
    try:
        scores, unusable = read_scores(path)
    except (OSError, UnicodeDecodeError) as e:
        problems.add(f"unreadable predictions {shown} ({e}); no CIs or paired tests for this run")
        return {}
    if unusable:
        problems.add(f"{shown}: {unusable} rows without a qid and scores; left out")
    for m in list(scores):
        card = rec.metrics.get(m)
        mean = 100 * math.fsum(scores[m].values()) / len(scores[m])
        if card is not None and abs(mean - card) > SCORES_TOLERANCE:
            problems.add(
                f"{shown}: mean {m} {mean:.2f} differs from the card's {card:.2f} (the predictions of "
                f"another evaluation?); no {m} CI or paired test for this run"
            )
            del scores[m]
    return scores


# ------------------------------------------------------------------------------------------- cards


def record_from_card(
    card: RunCard, *, path: str, src: str, folder: Path | None = None, order: int = 0, source: str = "folder"
) -> tuple[RunRecord, list[str]]:
    """The record of a train or evaluate card and the problems found in it. `path` names the record
    (its folder), `src` the card in messages; `folder` (None for a W&B row) anchors `where`."""
    problems = Problems(src)
    when = card.finished if card.finished is not None else card.started
    rec = RunRecord(
        path=path,
        kind=card.job,
        order=order,
        source=source,
        mtime=float(when) if isinstance(when, int | float) else 0.0,
        overrides=parse_overrides(card.overrides),
        config=card.config,
    )
    _identity(rec, card)
    if card.status == "done":
        _metrics(rec, card.metrics, problems)
    _status(rec, card, problems)
    if folder is not None:
        _files(rec, card, folder, problems)
    if rec.ok and rec.dataset is None:
        problems.add("no data.dataset; its numbers are left out of tables")
    return rec, list(problems)


def read_folder(folder: Path, order: int = 0) -> tuple[RunRecord | None, list[str]]:
    """One job folder → its record and problems; None for a generate_data card or an unreadable one
    (then the one problem says why)."""
    shown = Path(display_path(folder))
    try:
        card = read_card(shown)
    except SteperError as e:
        return None, [str(e)]
    except (OSError, UnicodeDecodeError) as e:
        return None, [f"{shown / CARD_FILE}: cannot read the run card ({e})"]
    if card.job not in TABLED_JOBS:
        return None, []
    return record_from_card(card, path=str(folder), src=str(shown / CARD_FILE), folder=folder, order=order)
