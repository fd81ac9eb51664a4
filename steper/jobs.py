"""The resumable job runner shared by generate_data (teacher traces) and evaluate (predictions).

A job answers a list of questions and appends one JSON row per question to a rows file as each
finishes (fsynced, so a SIGKILL loses at most the rows in flight). A rerun into the same folder:

- refuses when the rows there were made with other settings (the job's key, kept beside them);
- keeps the valid rows (a torn last line is cut), skips their questions, retries those that ended
  on a failed request (`retry_errors`), appends the rest;
- at the end rewrites the rows file whole, in question order, so it reads like an uninterrupted
  run's.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.io import JsonlAppender, iter_jsonl, read_json, write_json, write_jsonl

log = logging.getLogger(__name__)


def read_rows_by_qid(path: Path) -> dict[str, dict]:
    """qid → row of the valid lines of a rows file (a later line of a qid, a retry, wins)."""
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    skipped: list[int] = []
    for _, row in iter_jsonl(path, strict=False, skipped=skipped):
        if row.get("qid") is not None:
            out[str(row["qid"])] = row
    if skipped:
        log.warning("%s: skipped %d malformed line(s): %s", path, len(skipped), skipped[:10])
    return out


def check_unique_qids(questions: Sequence[Any], where: str) -> list[str]:
    """The questions' ids, in order; a SteperError naming `where` when one repeats."""
    qids = [q.qid for q in questions]
    if len(set(qids)) != len(qids):
        dup = [q for q, c in Counter(qids).items() if c > 1][:5]
        raise SteperError(f"{where} has duplicate question ids, e.g. {dup}")
    return qids


class ResumableRows:
    """One job folder's rows file and its settings key. Use as a context manager:

        with ResumableRows(out_dir, "traces.jsonl", "run_key.json", key, what="traces") as job:
            for row in answer(job.todo(questions)):
                job.write(row)
        rows = job.finish(qids)
    """

    def __init__(self, out_dir: Path, rows_file: str, key_file: str, key: dict[str, Any], *, what: str):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / rows_file
        self.key_path = self.out_dir / key_file
        self.key = json.loads(json.dumps(key, default=str))  # the form it takes on disk
        self.what = what
        self.resumed = 0
        self.new = 0
        self._appender: JsonlAppender | None = None

    def __enter__(self) -> ResumableRows:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._appender = JsonlAppender(self.path)  # cuts a torn last line first
        self.existing = read_rows_by_qid(self.path)
        self._check_key()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None

    def _check_key(self) -> None:
        if self.existing and self.key_path.is_file():
            try:
                old = read_json(self.key_path)
                damaged = None if isinstance(old, dict) else f"{self.key_path}: not a JSON object"
            except SteperError as e:
                damaged = str(e)
            if damaged:
                raise SteperError(
                    f"{damaged}. It records the settings the {self.what} in {self.out_dir} were made with, so they "
                    f"cannot be resumed safely: delete that folder to start over (or choose another out_dir=...), "
                    f"or, if you know the {self.what} were made with these settings, delete only {self.key_path} "
                    "and rerun (it is written again)"
                )
            if old != self.key:
                diff = sorted(k for k in set(old) | set(self.key) if old.get(k) != self.key.get(k))
                raise SteperError(
                    f"{self.out_dir} holds {self.what} made with different settings ({', '.join(diff)} "
                    "differ). Choose another folder (out_dir=...) or delete that one to start over"
                )
        write_json(self.key_path, self.key)

    def todo(self, questions: Sequence[Any], *, retry_errors: bool) -> list[Any]:
        """The questions still to answer: those without a row, and (`retry_errors`) those whose
        row ended on a failed request."""
        todo = [
            q
            for q in questions
            if q.qid not in self.existing or (retry_errors and self.existing[q.qid].get("finish") == "error")
        ]
        self.resumed = len(questions) - len(todo)
        self.new = len(todo)
        if self.resumed:
            log.info("resuming: %d of %d questions already in %s", self.resumed, len(questions), self.path)
        return todo

    def write(self, row: dict) -> None:
        assert self._appender is not None, "ResumableRows.write outside its `with` block"
        self._appender.write(row)

    def finish(self, qids: Sequence[str], *, keep_others: bool = False) -> list[dict]:
        """Every question's row in question order; the rows file rewritten so (rows of other
        questions, e.g. after a lower `limit`, kept at the end with `keep_others`, else dropped)."""
        by_qid = read_rows_by_qid(self.path)
        missing = [q for q in qids if q not in by_qid]
        if missing:
            raise SteperError(
                f"{self.path}: no row for {len(missing)} question(s), e.g. {missing[:3]}; rerun to resume"
            )
        wanted = set(qids)
        others = [r for q, r in by_qid.items() if q not in wanted]
        if others and not keep_others:
            log.warning(
                "%s: dropping %d row(s) of questions not in this run, e.g. %s",
                self.path,
                len(others),
                [r["qid"] for r in others[:3]],
            )
        rows = [by_qid[q] for q in qids]
        write_jsonl(self.path, rows + (others if keep_others else []))
        return rows


class JobProgress:
    """A rich progress bar on stderr: questions done, questions/s, running accuracy."""

    def __init__(self, label: str, total: int, done: int, enabled: bool = True, qps_digits: int = 1):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.t0 = time.perf_counter()
        self.new = 0
        self.correct = 0.0
        self.bar = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"{{task.fields[qps]:.{qps_digits}f}} q/s"),
            TextColumn("acc {task.fields[acc]:.1f}%"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not (enabled and total > done),
        )
        self.task = self.bar.add_task(label, total=total, completed=done, qps=0.0, acc=0.0)

    def add(self, acc: float) -> None:
        """One more question done, answered with accuracy `acc` (0 or 1)."""
        self.new += 1
        self.correct += float(acc)
        dt = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, advance=1, qps=self.new / dt, acc=100.0 * self.correct / self.new)

    def __enter__(self) -> JobProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
