"""Finished runs → the paper's tables and figures (and the reasoning-ability judge).

    python -m steper.report outputs/train/multiruns/<sweep> outputs/evaluate/runs/<teacher run> --out report

`collect_runs` reads job folders (their `run.json` cards), multirun folders and W&B CSV exports
into `RunRecord`s; `steper.report.tables` builds Table 1, Table 2 and the scaling table,
`steper.report.paired` the paired differences (with `steper.report.stats`: bootstrap CIs, exact
McNemar / sign tests, t-intervals over seeds), `steper.report.run_tables` the runs, training and
judge tables; `steper.report.plots` draws σ_j, scaling, latency, validation-loss and Acc-with-CI
figures; `steper.report.judge` scores reasoning traces with an LLM judge. `make_report` does all of
it and writes the report folder:

    report.md                     every table, the problems found, the figures
    table1.csv table2.csv paired.csv [paired_seeds.csv] scaling.csv runs.csv [judge.csv]
    acc_ci.png scaling.png latency.png val_loss_<dataset>.png sigma_<run>.png
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steper.report.collect import collect_runs
from steper.report.records import RunRecord, display_path, mark_teachers

__all__ = ["Report", "RunRecord", "collect_runs", "make_report", "mark_teachers"]

# docs/method.md §7, for the reader's comparison at the end of report.md
PAPER_NUMBERS = """\
The paper's numbers (docs/method.md §7; Llama-3.1-8B student, 70B teacher; Acc unless stated):

| | HotpotQA EM / F1 / Acc | 2Wiki Acc | MuSiQue Acc |
|---|---|---|---|
| Vanilla-KD (8B) | 46.40 / 57.28 / 54.80 | 62.16 | 30.13 |
| StepER (8B) | 51.00 / 62.80 / 61.00 | 63.60 | 34.07 |

Table 2 (Acc, HotpotQA / MuSiQue): uniform 58.40 / 33.58; first 57.70 / 32.46; last 58.00 / 33.37;
adaptive 61.00 / 34.07. Scaling (Qwen2.5, read off a figure): StepER 0.5B ≈ 42, 1.5B ≈ 45, 3B ≈ 47,
7B ≈ 50; Vanilla-KD ≈ 37 / 40 / 42 / 45; 72B teacher ≈ 47. Judge (share ≥ 4, init / expansion /
aggregation): Vanilla-KD ≈ 45 / 35 / 55, StepER ≈ 70 / 60 / 75. Latency: StepER-7B ≈ 2 s per
question, 72B teacher ≈ 20 s.
"""


@dataclass
class Report:
    """What `make_report` produced: the tables, files, and everything the reader must be told."""

    out: Path
    runs: list[RunRecord]
    tables: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    judge_messages: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    skipped_plots: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _judge_runs(kept: list[RunRecord], judge_cfg: Any, messages: list[str]) -> list[tuple[RunRecord, dict]]:
    """Judge results per run: fresh ones when `judge_cfg` is given, else any judge.json on disk."""
    from steper.errors import SteperError
    from steper.report.judge import judge_predictions, load_judge

    judged: list[tuple[RunRecord, dict]] = []
    stopped = False
    for r in kept:
        if r.predictions is None or not Path(r.predictions).is_file():
            if judge_cfg is not None and r.ok and r.source == "folder":
                messages.append(f"judge: {display_path(r.path)}: no predictions file to judge")
            continue
        res = None
        if judge_cfg is not None and not stopped and r.ok:
            try:
                res = judge_predictions(r.predictions, judge_cfg)
                if res.get("reused"):
                    messages.append(
                        f"judge: {display_path(r.predictions)}: reused its judge.json (--judge-force re-judges)"
                    )
            except SteperError as e:  # unreachable endpoint, refused key, bad rubric: stop judging
                stopped = True
                messages.append(f"judge: {e}; the report is written without fresh judge scores")
        if res is None:
            res = load_judge(Path(r.predictions))
        if res is not None:
            judged.append((r, res))
    return judged


def make_report(
    paths: list[Path],
    out: Path,
    *,
    judge_cfg: Any = None,
    teachers: list[str] | None = None,
    plots: bool = True,
) -> Report:
    """Collect the runs under `paths`, write every table, CSV, plot and report.md into `out`.

    `judge_cfg` (a `steper.report.judge.JudgeConfig`) judges every run's predictions first; without
    it, judge.json files already beside predictions are used. `teachers`: model names or labels of
    baselines to treat as the teacher. Raises a SteperError when there are no runs at all.
    """
    from steper.report.rows import resolve_duplicates
    from steper.report.run_tables import judge_table, runs_table
    from steper.report.tables import build_tables

    out = Path(out)
    runs, problems = collect_runs(paths)
    if teachers:
        if not mark_teachers(runs, teachers):
            problems.append(f"--teacher {', '.join(teachers)}: no baseline run has that model name or label")
    kept, warnings = resolve_duplicates(runs)
    tables, _ = build_tables(kept)
    report = Report(out=out, runs=runs, tables=tables, problems=problems, warnings=warnings)
    judged = _judge_runs(kept, judge_cfg, report.judge_messages)
    if judged:
        tables["judge"] = judge_table(judged)
    tables["runs"] = runs_table(runs, kept)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("table1", "table2", "paired", "paired_seeds", "scaling", "training", "judge", "runs"):
        if name in tables and (tables[name] or name != "paired_seeds"):
            path = out / f"{name}.csv"
            tables[name].write_csv(path)
            report.files.append(path)
    if plots:
        from steper.report.plots import make_plots

        report.plots, report.skipped_plots = make_plots(kept, out)
        report.files += report.plots
    md = out / "report.md"
    from steper.io import atomic_write

    with atomic_write(md) as f:
        f.write(render_markdown(report, paths))
    report.files.insert(0, md)
    return report


PAIRED_INTRO = (
    "The paper's comparisons on the same test questions: StepER (each weighting) − Vanilla-KD on EM / "
    "F1 / Acc, adaptive − uniform / first / last on Acc, within one model, dataset and evaluation. One "
    "seed: the paired bootstrap 95% CI over the questions both runs answered (n) and an exact test "
    "(McNemar for EM / Acc, the sign test for F1). Several seeds: the mean of the per-seed differences, "
    "a bootstrap CI over questions (each question's difference averaged over the seeds), the "
    "t-interval over seeds, and the exact test pooled over question × seed pairs. The verdict names "
    "the higher one only when every CI excludes 0 and p < 0.05; p-values are not corrected for the "
    "number of comparisons."
)


def _paired_section(tables: dict[str, Any]) -> list[str]:
    t, per_seed = tables.get("paired"), tables.get("paired_seeds")
    if t is None:
        return []
    parts = [f"## {t.title}", "", PAIRED_INTRO, ""]
    if t:
        parts += [t.to_markdown(with_title=False), ""]
    else:
        parts += [
            "No paired differences (no two runs that the paper compares, of one model, dataset and "
            "evaluation, with per-question scores).",
            "",
        ]
        parts += [*(f"- {n}" for n in t.notes), ""] if t.notes else []
    if per_seed:
        parts += [f"### {per_seed.title}", "", per_seed.to_markdown(with_title=False), ""]
    return parts


def render_markdown(report: Report, paths: list[Path]) -> str:
    runs = report.runs
    ok = sum(r.ok for r in runs)
    failed = sum(r.status == "failed" for r in runs)
    partial = sum(r.status == "no-test-metrics" for r in runs)
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        "# StepER report",
        "",
        f"Generated {now} by `python -m steper.report` from: " + ", ".join(f"`{p}`" for p in paths),
        "",
        f"{len(runs)} runs: {ok} finished, {failed} failed or unfinished, {partial} without answer metrics.",
        "Cells are mean over seeds (± sample std and n when there are several); `—` marks a gap, listed "
        "under its table; `–` a number the run's card does not record. `[low, high]` is a 95% CI: for one "
        "seed a bootstrap over its test questions, for several the t-interval over seeds.",
        "",
    ]
    if report.problems:
        parts += ["## Problems", "", *(f"- {p}" for p in report.problems), ""]
    if report.warnings:
        parts += ["## Warnings", "", *(f"- {w}" for w in report.warnings), ""]
    sections = [
        ("table1", "Table 1 has no rows (no run with a dataset)."),
        ("table2", "No StepER runs: Table 2 is empty."),
        ("scaling", "No student or teacher runs for the scaling table."),
        ("training", "No training history (csv/metrics.csv) in the train runs."),
    ]
    for name, empty in sections:
        t = report.tables[name]
        parts += [f"## {t.title}", ""]
        parts += [t.to_markdown(with_title=False) if t else empty, ""]
        if name == "table2":
            parts += _paired_section(report.tables)
    parts += ["## Reasoning-ability judge", ""]
    if "judge" in report.tables:
        t = report.tables["judge"]
        parts += [t.title + "; means on the 1–5 scale.", "", t.to_markdown(with_title=False), ""]
    else:
        parts += [
            "Not judged (pass `--judge-base-url` and `--judge-model`, or run `python -m steper.report.judge`).",
            "",
        ]
    if report.judge_messages:
        parts += [*(f"- {m}" for m in report.judge_messages), ""]
    parts += ["## Figures", ""]
    for p in report.plots:
        parts += [f"![{p.stem}]({p.name})", ""]
    if not report.plots:
        parts += ["No figures.", ""]
    if report.skipped_plots:
        parts += ["Skipped:", "", *(f"- {s}" for s in report.skipped_plots), ""]
    parts += ["## Runs", "", report.tables["runs"].to_markdown(with_title=False), ""]
    parts += ["## For comparison", "", PAPER_NUMBERS]
    return "\n".join(parts)
