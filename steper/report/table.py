"""One table: rows of key strings then value cells, rendered as Markdown, CSV and a rich table.

A cell is the mean over seeds; with more than one seed it reads `58.40 ± 0.52 (n=3)` (sample
standard deviation, ddof=1). A cell with a 95% CI adds it: `24.00 [12.0, 36.0]` (one decimal: the
bounds are not known to a hundredth). A count (optimizer steps, …) prints as a whole number. A gap
(no finished run) prints `—`; "" is a cell that does not apply; "–" a number the run did not record.

CSV: the key columns, then for each value column `<name>`, `<name>_std`, `<name>_n` (mean and std
rounded to 4 decimals; empty for a gap or a cell that does not apply), and in a table with CIs
(`with_ci`) `<name>_ci_low`, `<name>_ci_high` (not for a count column). A `FlatTable` (cells of text) has its own CSV rows.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steper.io import atomic_write

GAP = "—"
UNRECORDED = "–"  # a number the run's card does not have (older cards), not a missing run


@dataclass
class Stat:
    """The values of one cell (one per seed) and how they print; `ci`: its 95% CI, when known;
    `integer`: a count, printed whole with thousands separators."""

    values: list[float]
    ci: tuple[float, float] | None = None
    integer: bool = False

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
        if self.integer:
            if len(set(self.values)) == 1:
                return f"{int(self.values[0]):,}"
            return f"{self.mean:,.0f} ± {self.std:,.0f} (n={self.n})"
        out = f"{self.mean:.{digits}f}"
        if self.n > 1:
            out += f" ± {self.std:.{digits}f} (n={self.n})"
        if self.ci is not None:
            out += f" [{self.ci[0]:.1f}, {self.ci[1]:.1f}]"
        return out


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
    with_ci: bool = False  # the CSV has `_ci_low` / `_ci_high` columns ...
    no_ci: tuple[str, ...] = ()  # ... except for these value columns (counts, which have no CI)
    terminal_hide: tuple[str, ...] = ()  # value columns left out of the terminal (still in .md / .csv)

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
        with_ci = [self.with_ci and name not in self.no_ci for name in self.value_names]
        for name, ci in zip(self.value_names, with_ci):
            header += [name, f"{name}_std", f"{name}_n"] + (
                [f"{name}_ci_low", f"{name}_ci_high"] if ci else []
            )
        out = [header]
        for keys, cells in self.rows:
            row = list(keys)
            for c, ci in zip(cells, with_ci):
                if isinstance(c, Stat):
                    std = c.std
                    row += [_num(c.mean), "" if std is None else _num(std), str(c.n)]
                    if ci:
                        row += [_num(c.ci[0]), _num(c.ci[1])] if c.ci else ["", ""]
                else:
                    row += [""] * (5 if ci else 3)
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
        shown = [i for i, h in enumerate(self.value_header) if h not in self.terminal_hide]
        for h in self.key_header:
            t.add_column(h, style="bold", no_wrap=True)
        for i in shown:
            t.add_column(self.value_header[i], justify="right")
        for keys, cells in self.rows:
            t.add_row(
                *(escape(k) for k in keys),
                *(
                    f"[red]{GAP}[/red]" if cells[i] is None else escape(self.cell_text(cells[i]))
                    for i in shown
                ),
            )
        return t


@dataclass
class FlatTable(Table):
    """A table whose value cells are text as printed, and whose CSV rows are given apart
    (`csv_body`: one column per `value_names` entry, numbers unrounded)."""

    csv_body: list[list[str]] = field(default_factory=list)

    def csv_rows(self) -> list[list[str]]:
        return [self.key_header + self.value_names, *self.csv_body]


def _num(x: float) -> str:
    r = round(x, 4)
    return f"{r:.4f}".rstrip("0").rstrip(".") if r != int(r) else str(int(r))
