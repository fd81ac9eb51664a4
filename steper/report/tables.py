"""The paper's tables from run records, as Markdown, CSV and a rich console rendering.

- **Table 1** (method.md §7): rows = baselines (evaluate runs of a teacher / endpoint, labelled by
  target kind and mode, e.g. `Teacher (multistep)`, model = the target's name), then each student
  model's `Vanilla-KD` and `StepER (<weighting>)` rows; columns = dataset × EM / F1 / Acc.
- **Table 2**: rows = StepER students by model × weighting (uniform, first, last, adaptive);
  columns = dataset; values = Acc.
- **Scaling** (the paper's Figure 4 as a table): rows = models ordered by size (0.5b, 1.5b, 3b,
  7b, 8b, 72b, …; names without a size first); columns = dataset × {StepER, Vanilla-KD} Acc, plus
  a `Teacher` column (filled on the teacher's own row) when a teacher was evaluated. StepER means
  the `adaptive` weighting when it was run, else the one weighting that was (said in the notes).

A cell is the mean over seeds; with more than one seed it reads `58.40 ± 0.52 (n=3)` (sample
standard deviation, ddof=1). A cell without a finished run is `—` and listed under the table with
the reason (no run, or the failed folders); a cell missing some seeds is noted. Two runs claiming
the same cell with the same seed: a warning names both, and the later one (by the time its metrics
were written; a finished run beats a failed one) wins.

Vanilla-KD trains one task, so its weighting is irrelevant: its row is `Vanilla-KD` unless one model
has Vanilla-KD runs under several weightings, then each gets its own row `Vanilla-KD (<weighting>)`.

CSV: the key columns, then for each value column `<name>`, `<name>_std`, `<name>_n` (mean and std
rounded to 4 decimals; empty for a gap or a cell that does not apply).
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steper.io import atomic_write
from steper.report.collect import RunRecord, display_path

DATASET_ORDER = ("hotpot", "2wiki", "musique")
DATASET_LABELS = {"hotpot": "HotpotQA", "2wiki": "2Wiki", "musique": "MuSiQue", "toy": "Toy"}
WEIGHTING_ORDER = ("uniform", "first", "last", "adaptive")
METRIC_LABELS = {"em": "EM", "f1": "F1", "acc": "Acc"}
GAP = "—"


# ------------------------------------------------------------------------------------------ cells


@dataclass
class Stat:
    """The values of one cell (one per seed) and how they print."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if self.n > 1 else None

    def text(self, digits: int = 2) -> str:
        if self.n > 1:
            return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f}"


Cell = Stat | str | None  # None = a gap ("—"); "" = does not apply


@dataclass
class Table:
    """Rows of key strings then value cells. `value_names` are the CSV names of the value columns."""

    name: str
    title: str
    key_header: list[str]
    value_header: list[str]
    value_names: list[str]
    rows: list[tuple[list[str], list[Cell]]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digits: int = 2

    def __bool__(self) -> bool:
        return bool(self.rows)

    def gap_lines(self) -> list[str]:
        """The gaps, with the plain "no run" ones of each column group joined into one line."""
        out: list[str] = []
        no_run: dict[str, list[str]] = {}
        for g in self.gaps:
            head, sep, reason = g.rpartition(": ")
            who, _, column = head.rpartition(" · ")
            if sep and reason == "no run" and who:
                if column not in no_run:
                    out.append(column)  # placeholder, keeps the order of first appearance
                    no_run[column] = []
                no_run[column].append(who)
            else:
                out.append(g)
        return [
            (
                f"{g}: no run for {'; '.join(no_run[g])}"
                if len(no_run[g]) > 1
                else f"{no_run[g][0]} · {g}: no run"
            )
            if g in no_run
            else g
            for g in out
        ]

    def cell_text(self, cell: Cell) -> str:
        if cell is None:
            return GAP
        if isinstance(cell, Stat):
            return cell.text(self.digits)
        return cell

    def to_markdown(self, with_title: bool = True) -> str:
        lines = []
        if with_title:
            lines += [f"### {self.title}", ""]
        header = self.key_header + self.value_header
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * len(self.key_header) + ["---:"] * len(self.value_header)) + "|")
        for keys, cells in self.rows:
            lines.append("| " + " | ".join([*keys, *(self.cell_text(c) for c in cells)]) + " |")
        if self.gaps:
            lines += ["", f"Gaps ({GAP}):", *(f"- {g}" for g in self.gap_lines())]
        if self.notes:
            lines += ["", "Notes:", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines) + "\n"

    def csv_rows(self) -> list[list[str]]:
        header = list(self.key_header)
        for name in self.value_names:
            header += [name, f"{name}_std", f"{name}_n"]
        out = [header]
        for keys, cells in self.rows:
            row = list(keys)
            for c in cells:
                if isinstance(c, Stat):
                    std = c.std
                    row += [_num(c.mean), "" if std is None else _num(std), str(c.n)]
                else:
                    row += ["", "", ""]
            out.append(row)
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(self.csv_rows())
        return buf.getvalue()

    def write_csv(self, path: Path) -> None:
        with atomic_write(path) as f:
            f.write(self.to_csv())

    def to_rich(self) -> Any:
        from rich.markup import escape
        from rich.table import Table as RichTable

        t = RichTable(title=escape(self.title), title_justify="left", min_width=len(self.title) + 2)
        for h in self.key_header:
            t.add_column(h, style="bold", no_wrap=True)
        for h in self.value_header:
            t.add_column(h, justify="right")
        for keys, cells in self.rows:
            t.add_row(
                *(escape(k) for k in keys),
                *(f"[red]{GAP}[/red]" if c is None else escape(self.cell_text(c)) for c in cells),
            )
        return t


def _num(x: float) -> str:
    r = round(x, 4)
    return f"{r:.4f}".rstrip("0").rstrip(".") if r != int(r) else str(int(r))


# ---------------------------------------------------------------------------------------- helpers


def dataset_label(name: str) -> str:
    return DATASET_LABELS.get(name, name)


def dataset_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    known = [d for d in DATASET_ORDER if d in names]
    return known + sorted(names - set(known))


def weighting_rank(w: str | None) -> tuple[int, str]:
    return (WEIGHTING_ORDER.index(w), "") if w in WEIGHTING_ORDER else (len(WEIGHTING_ORDER), w or "")


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


def model_size(name: str | None) -> float | None:
    """Billions of parameters read off a model name: qwen0.5b → 0.5, llama8b → 8, Llama-3.1-70B → 70."""
    if not name:
        return None
    hits = _SIZE.findall(name)
    if not hits:
        return None
    num, unit = hits[-1]
    return float(num) / (1000.0 if unit.lower() == "m" else 1.0)


def size_text(size: float | None) -> str:
    if size is None:
        return ""
    return f"{size:g}"


def model_rank(name: str | None) -> tuple[int, float, str]:
    size = model_size(name)
    return (0, 0.0, name or "") if size is None else (1, size, name or "")


def vanilla_qualified(runs: Iterable[RunRecord]) -> set[str | None]:
    """Models whose Vanilla-KD runs span several weightings (their rows then name the weighting)."""
    seen: dict[str | None, set[str | None]] = defaultdict(set)
    for r in runs:
        if r.role == "student" and r.method == "vanilla":
            seen[r.model].add(r.weighting)
    return {m for m, ws in seen.items() if len(ws) > 1}


def student_label(r: RunRecord, qualified: set[str | None]) -> str:
    if r.method == "vanilla" and r.model in qualified and r.weighting:
        return f"Vanilla-KD ({r.weighting})" + r.suffix
    return r.label


def baseline_model(r: RunRecord) -> str:
    return r.model or "?"


def cell_identity(r: RunRecord, qualified: set[str | None]) -> tuple:
    """What makes two runs the same table cell: who (row), on which dataset, with which seed."""
    if r.role == "baseline":
        who: tuple = ("baseline", r.label, baseline_model(r))
    else:
        who = ("student", student_label(r, qualified), r.model)
    return (*who, r.dataset, r.seed)


def resolve_duplicates(runs: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """Keep one run per (cell, seed): finished beats failed, then the later one wins; warn for each."""
    qualified = vanilla_qualified(runs)
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[cell_identity(r, qualified)].append(r)
    kept: list[RunRecord] = []
    warnings: list[str] = []
    for ident, rs in groups.items():
        if len(rs) == 1 or ident[3] is None:  # no dataset: not in any table, keep all
            kept.extend(rs)
            continue
        rs = sorted(rs, key=lambda r: (r.ok, r.mtime, r.order))
        winner = rs[-1]
        kept.append(winner)
        for loser in rs[:-1]:
            why = "finished" if winner.ok and not loser.ok else "later"
            warnings.append(
                f"same cell and seed twice ({winner.describe()}): {_where(loser)} and {_where(winner)}; "
                f"using {_where(winner)} ({why})"
            )
    kept.sort(key=lambda r: r.order)
    return kept, warnings


def _where(r: RunRecord) -> str:
    return display_path(r.path) if r.source == "folder" else r.path


class _Grid:
    """Runs grouped by (row, dataset): finished values per metric, and the runs that did not finish."""

    def __init__(self) -> None:
        self.done: dict[tuple, list[RunRecord]] = defaultdict(list)
        self.missing: dict[tuple, list[RunRecord]] = defaultdict(list)

    def add(self, row: tuple, dataset: str, r: RunRecord) -> None:
        (self.done if r.ok else self.missing)[(row, dataset)].append(r)

    def stat(self, row: tuple, dataset: str, metric: str) -> Stat | None:
        vals = [r.metrics[metric] for r in self.done.get((row, dataset), []) if metric in r.metrics]
        return Stat(vals) if vals else None

    def explain(
        self, row: tuple, dataset: str, what: str, metrics: Iterable[str]
    ) -> tuple[str | None, str | None]:
        """(a gap line, a note line) for this cell; None when there is nothing to say."""
        done = self.done.get((row, dataset), [])
        missing = self.missing.get((row, dataset), [])
        failed = ", ".join(f"{_where(r)} ({_status(r)})" for r in missing)
        absent = [METRIC_LABELS.get(m, m) for m in metrics if not any(m in r.metrics for r in done)]
        if not done:
            return (f"{what}: {'no finished run: ' + failed if failed else 'no run'}", None)
        gap = f"{what}: {', '.join(absent)} not reported" if absent else None
        note = (
            f"{what}: {len(done)} of {len(done) + len(missing)} seeds finished; missing {failed}"
            if missing
            else None
        )
        return gap, note


def _status(r: RunRecord) -> str:
    return "failed" if r.status == "failed" else "no test metrics"


def _tabulated(runs: Iterable[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.dataset]


# ---------------------------------------------------------------------------------------- Table 1


def table1(runs: list[RunRecord], metrics: tuple[str, ...] = ("em", "f1", "acc")) -> Table:
    runs = _tabulated(runs)
    qualified = vanilla_qualified(runs)
    datasets = dataset_order(r.dataset for r in runs)
    grid = _Grid()
    rows: dict[tuple, tuple[list[str], tuple]] = {}
    for r in runs:
        if r.role == "baseline":
            key = ("baseline", r.label, baseline_model(r))
            sort = (0, r.label, model_rank(baseline_model(r)))
            keys = [r.label, baseline_model(r)]
        else:
            label = student_label(r, qualified)
            key = ("student", label, r.model)
            sort = (1, model_rank(r.model), r.method != "vanilla", weighting_rank(r.weighting), label)
            keys = [label, r.model or "?"]
        rows.setdefault(key, (keys, sort))
        grid.add(key, r.dataset, r)
    table = Table(
        name="table1",
        title="Table 1: answer metrics (%, mean ± std over seeds)",
        key_header=["method", "model"],
        value_header=[f"{dataset_label(d)} {METRIC_LABELS[m]}" for d in datasets for m in metrics],
        value_names=[f"{d}/{m}" for d in datasets for m in metrics],
    )
    for key, (keys, _) in sorted(rows.items(), key=lambda kv: kv[1][1]):
        cells: list[Cell] = []
        for d in datasets:
            cells += [grid.stat(key, d, m) for m in metrics]
            gap, note = grid.explain(key, d, f"{' · '.join(keys)} · {dataset_label(d)}", metrics)
            table.gaps += [gap] if gap else []
            table.notes += [note] if note else []
        table.rows.append((keys, cells))
    return table


# ---------------------------------------------------------------------------------------- Table 2


def table2(runs: list[RunRecord]) -> Table:
    runs = [r for r in _tabulated(runs) if r.role == "student" and r.method == "steper" and _multistep(r)]
    datasets = dataset_order(r.dataset for r in runs)
    grid = _Grid()
    rows: dict[tuple, list[str]] = {}
    for r in runs:
        key = (model_rank(r.model), weighting_rank(r.weighting), r.model, r.weighting, r.variant)
        rows.setdefault(
            key, [(r.weighting or "?") + (f" [{r.variant}]" if r.variant else ""), r.model or "?"]
        )
        grid.add(key, r.dataset, r)
    table = Table(
        name="table2",
        title="Table 2: StepER by loss weighting (Acc %, mean ± std over seeds)",
        key_header=["weighting", "model"],
        value_header=[f"{dataset_label(d)} Acc" for d in datasets],
        value_names=[f"{d}/acc" for d in datasets],
    )
    for key in sorted(rows):
        keys = rows[key]
        who = f"StepER ({key[3]})" + (f" [{key[4]}]" if key[4] else "") + f" · {keys[1]}"
        cells: list[Cell] = []
        for d in datasets:
            cells.append(grid.stat(key, d, "acc"))
            gap, note = grid.explain(key, d, f"{who} · {dataset_label(d)}", ("acc",))
            table.gaps += [gap] if gap else []
            table.notes += [note] if note else []
        table.rows.append((keys, cells))
    return table


def _multistep(r: RunRecord) -> bool:
    return r.kind == "train" or r.mode in (None, "multistep")


# ---------------------------------------------------------------------------------------- scaling


def scaling_weighting(runs: list[RunRecord]) -> tuple[dict[tuple, str | None], list[str]]:
    """Which StepER weighting stands for (model, dataset) in the scaling table/plot, and notes."""
    by: dict[tuple, set[str | None]] = defaultdict(set)
    for r in runs:
        if r.role == "student" and r.method == "steper" and _multistep(r) and r.dataset:
            by[(r.model, r.dataset)].add(r.weighting)
    choice: dict[tuple, str | None] = {}
    notes: list[str] = []
    for (model, ds), ws in sorted(by.items(), key=lambda kv: (model_rank(kv[0][0]), kv[0][1])):
        if "adaptive" in ws:
            choice[(model, ds)] = "adaptive"
            continue
        pick = sorted(ws, key=weighting_rank)[0]
        choice[(model, ds)] = pick
        notes.append(
            f"{model} · {dataset_label(ds)}: no adaptive StepER run; StepER = {pick}"
            + (f" (also run: {', '.join(sorted(str(w) for w in ws - {pick}))})" if len(ws) > 1 else "")
        )
    return choice, notes


def scaling_table(runs: list[RunRecord]) -> Table:
    runs = _tabulated(runs)
    choice, notes = scaling_weighting(runs)
    students = [
        r
        for r in runs
        if r.role == "student"
        and _multistep(r)
        and (
            r.method == "vanilla"
            or (r.method == "steper" and choice.get((r.model, r.dataset)) == r.weighting)
        )
    ]
    teachers = [r for r in runs if r.role == "baseline" and r.teacher and _multistep(r)]
    datasets = dataset_order(r.dataset for r in students + teachers)
    teacher_ds = {r.dataset for r in teachers}
    methods = [m for m in ("steper", "vanilla") if any(r.method == m for r in students)]
    cols: list[tuple[str, str]] = []
    for d in datasets:
        cols += [(d, m) for m in methods]
        if d in teacher_ds:
            cols.append((d, "teacher"))
    grid = _Grid()
    models: dict[tuple, str | None] = {}  # (is teacher, row name) -> model name (its size)
    for r in students:
        name = (r.model or "?") + (f" [{r.variant}]" if r.variant else "")
        grid.add((name, r.method), r.dataset, r)
        models[(0, name)] = r.model
    for r in teachers:
        name = baseline_model(r) + (f" [{r.variant}]" if r.variant else "")
        grid.add((name, "teacher"), r.dataset, r)
        models[(1, name)] = r.model
    label = {"steper": "StepER", "vanilla": "Vanilla-KD", "teacher": "Teacher"}
    table = Table(
        name="scaling",
        title="Scaling: Acc (%) by student size",
        key_header=["model", "size (B)"],
        value_header=[f"{dataset_label(d)} {label[c]}" for d, c in cols],
        value_names=[f"{d}/{c}_acc" for d, c in cols],
        notes=notes,
    )
    ordered = sorted(models.items(), key=lambda kv: (model_rank(kv[1]), kv[0][0], kv[0][1]))
    for (is_teacher, name), model in ordered:
        cells: list[Cell] = []
        for d, c in cols:
            if (c == "teacher") != bool(is_teacher):
                cells.append("")
                continue
            row = (name, c)
            cells.append(grid.stat(row, d, "acc"))
            gap, note = grid.explain(row, d, f"{label[c]} · {name} · {dataset_label(d)}", ("acc",))
            table.gaps += [gap] if gap else []
            table.notes += [note] if note else []
        table.rows.append(([name, size_text(model_size(model))], cells))
    return table


# ------------------------------------------------------------------------------------------ judge


ABILITIES = ("initialization", "expansion", "aggregation")


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


def runs_table(runs: list[RunRecord], kept: list[RunRecord] | None = None) -> Table:
    """Every run collected, one line each (the report's inventory); runs left out of `kept` (the
    losers of a same-cell-same-seed duplicate) are marked `superseded`."""
    kept_ids = None if kept is None else {id(r) for r in kept}
    table = Table(
        name="runs",
        title="Runs",
        key_header=["run", "kind", "method", "model", "dataset", "seed", "mode", "status"],
        value_header=["EM", "F1", "Acc", "latency (s/q)"],
        value_names=["em", "f1", "acc", "latency_s"],
    )
    for r in sorted(runs, key=lambda r: r.order):
        keys = [
            _where(r),
            r.kind,
            r.label,
            (r.model if r.role == "student" else baseline_model(r)) or "?",
            r.dataset or "?",
            "" if r.seed is None else str(r.seed),
            r.mode or "",
            r.status + (", superseded" if kept_ids is not None and id(r) not in kept_ids else ""),
        ]
        cells: list[Cell] = [Stat([r.metrics[m]]) if m in r.metrics else "" for m in ("em", "f1", "acc")]
        cells.append(Stat([r.latency_s]) if r.latency_s is not None else "")
        table.rows.append((keys, cells))
    return table


TASK_LOSSES = ("val/loss_first", "val/loss_mid", "val/loss_final")


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
        value_header=[f"{t} {when}" for t in ("first", "mid", "final") for when in ("start", "end")],
        value_names=[f"{t}_{when}" for t in ("first", "mid", "final") for when in ("start", "end")],
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
        keys = [_where(r), r.label, r.model or "?", r.dataset or "?", "" if r.seed is None else str(r.seed)]
        table.rows.append((keys, cells))
    return table


def build_tables(runs: list[RunRecord]) -> tuple[dict[str, Table], list[str]]:
    """Table 1, Table 2, the scaling table (after resolving duplicate cells) and the training
    table; and the warnings."""
    kept, warnings = resolve_duplicates(runs)
    tables = {"table1": table1(kept), "table2": table2(kept), "scaling": scaling_table(kept)}
    tables["training"] = training_table(runs)
    return tables, warnings
