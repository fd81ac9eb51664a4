"""The paper's tables from run records, as Markdown, CSV and a rich console rendering.

- **Table 1** (docs/method.md §7): rows = baselines (evaluate runs of a teacher / endpoint, labelled by
  target kind and mode, e.g. `Teacher (multistep)`, model = the target's name), then each student
  model's `Vanilla-KD` and `StepER (<weighting>)` rows; columns = dataset × EM / F1 / Acc.
- **Table 2**: rows = StepER students by model × weighting (uniform, first, last, adaptive);
  columns = dataset; values = Acc.
- **Scaling** (the paper's Figure 4 as a table): rows = models ordered by size (0.5b, 1.5b, 3b,
  7b, 8b, 72b, …; names without a size first); columns = dataset × {StepER, Vanilla-KD} Acc, plus
  a `Teacher` column (filled on the teacher's own row) when a teacher was evaluated. StepER means
  the `adaptive` weighting when it was run, else the one weighting that was (said in the notes).

A cell is the mean over seeds; with more than one seed it reads `58.40 ± 0.52 (n=3)` (sample
standard deviation, ddof=1). In Table 1 and Table 2 a cell adds its 95% CI, `24.00 [12.0, 36.0]`:
one seed's bootstrap CI over the test questions (when its predictions file has per-question
scores), or the t-interval over several seeds (`steper.report.paired`). When any student's card
says what it trained on, both tables add per dataset its optimizer steps, examples seen and target
tokens (`–` for a card without them). A cell without a finished run is `—` and listed under the
table with the reason (no run, or the failed folders); a cell missing some seeds is noted. Two runs claiming
the same cell with the same seed: a warning names both, and the later one (by when its job finished,
the card's `finished`; a finished run beats a failed one) wins.

Vanilla-KD trains one task, so its weighting is irrelevant: its row is `Vanilla-KD` unless one model
has Vanilla-KD runs under several weightings, then each gets its own row `Vanilla-KD (<weighting>)`.

How cells print and the CSV columns: `steper.report.table`. The inventory, training and judge
tables: `steper.report.run_tables`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from steper.constants import METRICS
from steper.report.cards import TRAINING_COUNTS
from steper.report.paired import cell_stat, paired_tables
from steper.report.records import RunRecord, where
from steper.report.rows import (
    baseline_model,
    dataset_label,
    dataset_order,
    model_rank,
    model_size,
    resolve_duplicates,
    size_text,
    student_label,
    vanilla_qualified,
    weighting_rank,
)
from steper.report.run_tables import COUNT_LABELS, has_counts, training_table
from steper.report.table import UNRECORDED, Cell, Stat, Table

METRIC_LABELS = {"em": "EM", "f1": "F1", "acc": "Acc"}


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

    def stat_ci(self, row: tuple, dataset: str, metric: str) -> Stat | None:
        """The cell with its 95% CI (`steper.report.paired.cell_stat`)."""
        return cell_stat(self.done.get((row, dataset), []), metric)

    def counts(self, row: tuple, dataset: str) -> list[Cell]:
        """What the cell's students trained on, one cell per `TRAINING_COUNTS` (`–`: not recorded)."""
        done = self.done.get((row, dataset), [])
        if not done:
            return [None] * len(TRAINING_COUNTS)
        cells: list[Cell] = []
        for k in TRAINING_COUNTS:
            vals = [float(r.extra[k]) for r in done if k in r.extra]
            cells.append(Stat(vals, integer=True) if vals else UNRECORDED)
        return cells

    def explain(
        self, row: tuple, dataset: str, what: str, metrics: Iterable[str]
    ) -> tuple[str | None, str | None]:
        """(a gap line, a note line) for this cell; None when there is nothing to say."""
        done = self.done.get((row, dataset), [])
        missing = self.missing.get((row, dataset), [])
        failed = ", ".join(f"{where(r)} ({_status(r)})" for r in missing)
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


def table1(runs: list[RunRecord], metrics: tuple[str, ...] = METRICS) -> Table:
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
    counts = TRAINING_COUNTS if has_counts(runs) else ()
    table = Table(
        name="table1",
        title="Table 1: answer metrics (%, mean ± std over seeds, [95% CI])",
        key_header=["method", "model"],
        value_header=[
            f"{dataset_label(d)} {label}"
            for d in datasets
            for label in [METRIC_LABELS[m] for m in metrics] + [COUNT_LABELS[k] for k in counts]
        ],
        value_names=[f"{d}/{name}" for d in datasets for name in [*metrics, *counts]],
        with_ci=True,
        no_ci=tuple(f"{d}/{k}" for d in datasets for k in counts),
    )
    for key, (keys, _) in sorted(rows.items(), key=lambda kv: kv[1][1]):
        cells: list[Cell] = []
        for d in datasets:
            cells += [grid.stat_ci(key, d, m) for m in metrics]
            if counts:
                cells += grid.counts(key, d) if key[0] == "student" else [""] * len(counts)
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
    counts = TRAINING_COUNTS if has_counts(runs) else ()
    table = Table(
        name="table2",
        title="Table 2: StepER by loss weighting (Acc %, mean ± std over seeds, [95% CI])",
        key_header=["weighting", "model"],
        value_header=[
            f"{dataset_label(d)} {label}"
            for d in datasets
            for label in ["Acc", *(COUNT_LABELS[k] for k in counts)]
        ],
        value_names=[f"{d}/{name}" for d in datasets for name in ["acc", *counts]],
        with_ci=True,
        no_ci=tuple(f"{d}/{k}" for d in datasets for k in counts),
    )
    for key in sorted(rows):
        keys = rows[key]
        who = f"StepER ({key[3]})" + (f" [{key[4]}]" if key[4] else "") + f" · {keys[1]}"
        cells: list[Cell] = []
        for d in datasets:
            cells.append(grid.stat_ci(key, d, "acc"))
            cells += grid.counts(key, d) if counts else []
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


def build_tables(runs: list[RunRecord]) -> tuple[dict[str, Table], list[str]]:
    """Table 1, Table 2, the scaling table, the paired differences (after resolving duplicate
    cells) and the training table; and the warnings."""
    kept, warnings = resolve_duplicates(runs)
    tables = {"table1": table1(kept), "table2": table2(kept), "scaling": scaling_table(kept)}
    tables["paired"], tables["paired_seeds"] = paired_tables(kept)
    tables["training"] = training_table(runs)
    return tables, warnings
