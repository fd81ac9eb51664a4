"""The paper's figures from run records, as PNGs (matplotlib's Agg renderer, no pyplot state).

- `sigma_<run>.png`: the learned σ_j (first / mid / final) over training steps, and the effective
  task weights, one figure per adaptive run (from the `sigma/*`, `weight/*` columns of its
  `metrics.csv`).
- `scaling.png` (the paper's Figure 4): Acc against student size (billions of parameters, log
  scale), one line for StepER and one for Vanilla-KD (mean over seeds, error bars = std), the
  teacher as a dashed horizontal line; one panel per dataset.
- `latency.png` (Figure 5): Acc against mean latency per question, one labelled point per system;
  one panel per dataset.
- `val_loss_<dataset>.png`: validation loss per task (first / mid / final) over training steps,
  one line per run.
- `acc_ci.png`: Acc of every Table 1 row with its 95% CI as error bars (one seed: bootstrap over
  test questions; several: t-interval over seeds, each seed a small dot); one panel per dataset.

Each function returns (files written, reasons for what it skipped); a plot whose data is absent is
skipped with a reason, never an exception.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from steper.constants import STEP_TASKS
from steper.report.figure import MARKERS, figure, save, series_colors, series_rank, short_label, styled
from steper.report.records import RunRecord
from steper.report.rows import (
    baseline_model,
    dataset_label,
    dataset_order,
    model_size,
    student_label,
    vanilla_qualified,
)
from steper.report.table import Stat
from steper.report.tables import scaling_weighting, table1

TASK_COLORS = {"first": "#1f77b4", "mid": "#ff7f0e", "final": "#2ca02c"}
MAX_RUNS_PER_FIGURE = 10

Result = tuple[list[Path], list[str]]


def _step_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("training step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "run"


def _unique(path: Path, used: set[Path]) -> Path:
    out, i = path, 2
    while out in used:
        out = path.with_name(f"{path.stem}_{i}{path.suffix}")
        i += 1
    used.add(out)
    return out


def series(history: dict[str, list[float | None]], column: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one logged metric: rows where it is empty are skipped; x = `step` (else row)."""
    ys = history.get(column) or []
    steps = history.get("step") or []
    xs_out, ys_out = [], []
    for i, y in enumerate(ys):
        if y is None or not math.isfinite(y):
            continue
        x = steps[i] if i < len(steps) and steps[i] is not None else float(i)
        xs_out.append(x)
        ys_out.append(y)
    return xs_out, ys_out


def _run_title(r: RunRecord) -> str:
    return f"{r.label} · {r.model or '?'} · {dataset_label(r.dataset) if r.dataset else '?'}" + (
        f" · seed {r.seed}" if r.seed is not None else ""
    )


# -------------------------------------------------------------------------------------------- σ_j


def _task_panel(
    ax, lines: dict[str, tuple[list[float], list[float]]], label: str, ylabel: str, title: str
) -> None:
    """One line per step task over training steps (`label` formats the task name)."""
    for t, (xs, ys) in lines.items():
        if xs:
            ax.plot(xs, ys, label=label.format(t), color=TASK_COLORS[t], linewidth=1.8)
    _step_axis(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")


@styled
def plot_sigma(runs: Iterable[RunRecord], out: Path) -> Result:
    """One figure per run that logged `sigma/*`: σ_j and the effective weights over steps."""
    files: list[Path] = []
    used: set[Path] = set()
    without = 0
    for r in runs:
        if not r.history:
            continue
        sig = {t: series(r.history, f"sigma/{t}") for t in STEP_TASKS}
        if not any(xs for xs, _ in sig.values()):
            without += 1
            continue
        wts = {t: series(r.history, f"weight/{t}") for t in STEP_TASKS}
        has_w = any(xs for xs, _ in wts.values())
        fig, axes = figure(1, 2 if has_w else 1, 6.0, 4.2)
        _task_panel(
            axes[0][0], sig, r"$\sigma$ {}", r"$\sigma_j$ (learned task uncertainty)", r"$\sigma_j$ per task"
        )
        if has_w:
            _task_panel(
                axes[0][1], wts, "weight {}", r"effective weight $1/(2\sigma_j^2)$", "effective task weights"
            )
        fig.suptitle(_run_title(r), fontsize=12)
        name = slug(f"{r.model}-{r.method}-{r.weighting}-{r.dataset}-seed{r.seed}")
        files.append(save(fig, _unique(out / f"sigma_{name}.png", used)))
    skipped = []
    if not files:
        skipped.append(
            "σ plot: no run logged sigma/* in a metrics.csv (only adaptive runs with a CSV logger do)"
        )
    elif without:
        skipped.append(f"σ plot: {without} run(s) without sigma/* columns (manual weightings) not plotted")
    return files, skipped


# ---------------------------------------------------------------------------------------- scaling


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


Points = dict[str, dict[str, dict[float, list[float]]]]  # dataset -> method -> size -> Acc per seed
_SCALING_STYLES = {"steper": ("StepER", "#d62728", "o"), "vanilla": ("Vanilla-KD", "#1f77b4", "s")}


def _scaling_points(runs: list[RunRecord]) -> tuple[Points, dict[str, dict[str, list[float]]]]:
    """The students' Acc by dataset, method and size, and the teachers' Acc by dataset and model."""
    choice, _ = scaling_weighting(runs)
    points: Points = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    teachers: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if not r.ok or not r.dataset or "acc" not in r.metrics:
            continue
        multistep = r.kind == "train" or r.mode in (None, "multistep")
        if r.role == "student" and multistep:
            size = model_size(r.model)
            if size is None:
                continue
            if r.method == "vanilla" or (
                r.method == "steper" and choice.get((r.model, r.dataset)) == r.weighting
            ):
                points[r.dataset][r.method][size].append(r.metrics["acc"])
        elif r.role == "baseline" and r.teacher and multistep:
            teachers[r.dataset][baseline_model(r)].append(r.metrics["acc"])
    return points, teachers


def _scaling_panel(ax, title: str, by_method: dict[str, dict[float, list[float]]], teachers: dict) -> None:
    all_sizes: set[float] = set()
    for method in ("vanilla", "steper"):
        by_size = by_method.get(method)
        if not by_size:
            continue
        xs = sorted(by_size)
        stats = [_mean_std(by_size[x]) for x in xs]
        label, color, marker = _SCALING_STYLES[method]
        ax.errorbar(
            xs,
            [m for m, _ in stats],
            yerr=[s for _, s in stats],
            label=label,
            color=color,
            marker=marker,
            linewidth=2,
            markersize=7,
            capsize=4,
        )
        all_sizes.update(xs)
    for name, vals in sorted(teachers.items()):
        size = model_size(name)
        ax.axhline(
            statistics.fmean(vals),
            linestyle="--",
            color="#555555",
            linewidth=1.5,
            label=f"Teacher {name}" + (f" ({size:g}B)" if size and f"{size:g}b" not in name.lower() else ""),
        )
    ax.set_xscale("log")
    ticks = sorted(all_sizes)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}B" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("student size (billion parameters, log scale)")
    ax.set_ylabel("Acc (%)")
    ax.set_title(title)
    ax.legend(loc="best")


@styled
def plot_scaling(runs: list[RunRecord], out: Path) -> Result:
    """Figure 4: Acc against student size (log x), StepER vs Vanilla-KD, teacher dashed."""
    points, teachers = _scaling_points(runs)
    datasets = [
        d
        for d in dataset_order(points)
        if len({s for m in points[d].values() for s in m}) >= 2  # a line needs two sizes
    ]
    if not datasets:
        sizes = {s for d in points.values() for m in d.values() for s in m}
        why = (
            "no finished student runs with a size in the model name (e.g. qwen0.5b)"
            if not sizes
            else "fewer than two student sizes per dataset"
        )
        return [], [f"scaling plot: {why}"]
    fig, axes = figure(1, len(datasets), 5.6, 4.4)
    for ax, d in zip(axes[0], datasets):
        _scaling_panel(ax, f"{dataset_label(d)}: accuracy vs student size", points[d], teachers.get(d, {}))
    return [save(fig, out / "scaling.png")], []


# ---------------------------------------------------------------------------------------- latency


@styled
def plot_latency(runs: list[RunRecord], out: Path) -> Result:
    """Figure 5: Acc against mean latency per question; one point per system (colour = method,
    label = model), mean over seeds; one panel per dataset."""
    qualified = vanilla_qualified(runs)
    groups: dict[str, dict[tuple[str, str], tuple[list[float], list[float]]]] = defaultdict(dict)
    for r in runs:
        if not r.ok or not r.dataset or "acc" not in r.metrics or not r.latency_s or r.latency_s <= 0:
            continue
        series_name = student_label(r, qualified) if r.role == "student" else r.label
        model = r.model if r.role == "student" else baseline_model(r)
        lat, acc = groups[r.dataset].setdefault((series_name, model or "?"), ([], []))
        lat.append(r.latency_s)
        acc.append(r.metrics["acc"])
    datasets = dataset_order(groups)
    if not datasets:
        return [], [
            "latency plot: no finished run reports latency (latency_s.mean in its evaluation metrics)"
        ]
    names = sorted({name for d in groups.values() for name, _ in d}, key=series_rank)
    colors = series_colors(names)
    markers = {n: MARKERS.get(n.split(" ")[0], "^") for n in names}
    fig, axes = figure(1, len(datasets), 6.4, 4.8)
    for ax, d in zip(axes[0], datasets):
        pts = groups[d]
        xs_all = []
        for name in names:
            mine = [(model, vals) for (n, model), vals in sorted(pts.items()) if n == name]
            if not mine:
                continue
            xs = [statistics.fmean(lat) for _, (lat, _) in mine]
            ys = [statistics.fmean(acc) for _, (_, acc) in mine]
            xs_all += xs
            ax.scatter(xs, ys, s=70, color=colors[name], marker=markers[name], label=name, zorder=3)
            for (model, _), x, y in zip(mine, xs, ys):
                ax.annotate(short_label(model), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
        if max(xs_all) / min(xs_all) > 10:
            _log_x(ax)
        ax.margins(x=0.2, y=0.15)
        ax.set_xlabel("latency per question (s)" + (", log scale" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel("Acc (%)")
        ax.set_title(f"{dataset_label(d)}: accuracy vs latency")
        ax.legend(loc="best")
    return [save(fig, out / "latency.png")], []


def _log_x(ax) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


# --------------------------------------------------------------------------------- validation loss


@styled
def plot_val_loss(runs: list[RunRecord], out: Path) -> Result:
    """Per dataset: validation loss of each task over steps, one panel per task, one line per run."""
    by_ds: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.history and any(series(r.history, f"val/loss_{t}")[0] for t in STEP_TASKS):
            by_ds[r.dataset or "unknown"].append(r)
    if not by_ds:
        return [], ["validation-loss plot: no run has val/loss_first|mid|final in a metrics.csv"]
    files: list[Path] = []
    qualified = vanilla_qualified(runs)
    for d in dataset_order(by_ds):
        rs = sorted(by_ds[d], key=lambda r: (r.model or "", r.method or "", r.weighting or "", str(r.seed)))
        chunks = [rs[i : i + MAX_RUNS_PER_FIGURE] for i in range(0, len(rs), MAX_RUNS_PER_FIGURE)]
        for k, chunk in enumerate(chunks):
            tasks = [t for t in STEP_TASKS if any(series(r.history, f"val/loss_{t}")[0] for r in chunk)]
            fig, axes = figure(1, len(tasks), 4.8, 4.0)
            for ax, t in zip(axes[0], tasks):
                for i, r in enumerate(chunk):
                    xs, ys = series(r.history, f"val/loss_{t}")
                    if xs:
                        label = f"{student_label(r, qualified)} · {r.model or '?'}" + (
                            f" · s{r.seed}" if r.seed is not None else ""
                        )
                        ax.plot(
                            xs, ys, marker="o", markersize=3, linewidth=1.6, color=f"C{i % 10}", label=label
                        )
                _step_axis(ax)
                ax.set_ylabel("validation loss (token CE)")
                ax.set_title(f"{t} step")
            handles, labels = axes[0][0].get_legend_handles_labels()
            for ax in axes[0][1:]:
                for h, lab in zip(*ax.get_legend_handles_labels()):
                    if lab not in labels:
                        handles.append(h)
                        labels.append(lab)
            fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=9)
            part = f" ({k + 1}/{len(chunks)})" if len(chunks) > 1 else ""
            fig.suptitle(f"{dataset_label(d)}: validation loss per task{part}", fontsize=12)
            suffix = f"_{k + 1}" if len(chunks) > 1 else ""
            files.append(save(fig, out / f"val_loss_{slug(d)}{suffix}.png"))
    return files, []


# ------------------------------------------------------------------------------- Acc with its CI


def _acc_cells(runs: list[RunRecord]) -> dict[str, list[tuple[str, str, Stat]]]:
    """Table 1's Acc cells (the same numbers and CIs the table prints) by dataset: (method, model,
    cell), in the table's row order."""
    t = table1(runs)
    out: dict[str, list[tuple[str, str, Stat]]] = defaultdict(list)
    for keys, cells in t.rows:
        for name, cell in zip(t.value_names, cells):
            dataset, _, metric = name.rpartition("/")
            if metric == "acc" and isinstance(cell, Stat):
                out[dataset].append((keys[0], keys[1], cell))
    return out


@styled
def plot_acc_ci(runs: list[RunRecord], out: Path) -> Result:
    """Acc per Table 1 row with its 95% CI (horizontal error bars, so long labels stay readable)."""
    cells = _acc_cells(runs)
    datasets = [d for d in dataset_order(cells) if any(c.ci for _, _, c in cells[d])]
    if not datasets:
        return [], [
            "Acc CI plot: no Acc cell has a CI (it needs a predictions file with per-question scores, "
            "or several seeds)"
        ]
    names = sorted({method for d in datasets for method, _, _ in cells[d]}, key=series_rank)
    colors = series_colors(names)
    tallest = max(len(cells[d]) for d in datasets)
    fig, axes = figure(1, len(datasets), 6.4, 1.2 + 0.45 * tallest)
    for ax, d in zip(axes[0], datasets):
        rows = cells[d]
        for y, (method, _, c) in enumerate(rows):
            lo, hi = c.ci if c.ci else (c.mean, c.mean)
            ax.errorbar(
                [c.mean],
                [y],
                xerr=[[c.mean - lo], [hi - c.mean]],
                fmt=MARKERS.get(method.split(" ")[0], "^"),
                color=colors[method],
                markersize=7,
                capsize=4,
                linewidth=2,
            )
            if c.n > 1:  # the seeds behind a mean
                ax.scatter(c.values, [y] * c.n, s=14, facecolors="none", edgecolors=colors[method], zorder=3)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([f"{method} · {short_label(model)}" for method, model, _ in rows])
        ax.invert_yaxis()  # the table's first row on top
        ax.margins(y=0.5 / max(1, len(rows)))
        ax.set_xlabel("Acc (%); bars: 95% CI, circles: the seeds")
        ax.set_title(f"{dataset_label(d)}: accuracy with 95% CI")
    return [save(fig, out / "acc_ci.png")], []


def make_plots(runs: list[RunRecord], out: Path) -> Result:
    """Every plot; a plot that fails for an unforeseen reason is skipped with its error, not raised."""
    files: list[Path] = []
    skipped: list[str] = []
    for fn in (plot_acc_ci, plot_scaling, plot_latency, plot_val_loss, plot_sigma):
        try:
            f, s = fn(runs, out)
        except Exception as e:  # a plot must never take the report down
            f, s = [], [f"{fn.__name__}: failed ({type(e).__name__}: {e})"]
        files += f
        skipped += s
    return files, skipped
