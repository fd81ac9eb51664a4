"""`python -m steper.report`: finished runs → report.md, the tables as CSV, and the figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from steper.cli import friendly_errors
from steper.errors import SteperError

EPILOG = """\
inputs:
  job folders (any folder with a run.json card: train.py or evaluate.py jobs), multirun folders
  (numbered job folders + multirun.yaml; failed jobs are listed, never dropped), folders above
  either (searched), and W&B runs-table exports (.csv).

writes into --out:
  report.md            all tables, problems, warnings, figures
  table1.csv           method x weighting (+ baselines) by dataset x EM/F1/Acc
  table2.csv           StepER by weighting (uniform/first/last/adaptive) by dataset, Acc
  paired.csv           paired differences on the same questions: StepER - Vanilla-KD, adaptive -
                       uniform/first/last; 95% CI, exact McNemar / sign test p, verdict
  paired_seeds.csv     the per-seed rows behind paired.csv's summaries (several seeds)
  scaling.csv          Acc by model size: StepER / Vanilla-KD (+ teacher)
  runs.csv, judge.csv  every run; the judge's shares of scores >= 4 (when judged)
  *.png                acc_ci (Acc with 95% CIs), scaling, latency, val_loss_<dataset>, sigma_<run>

cells: mean over seeds, "58.40 ± 0.52 (n=3)" with several seeds; "—" = a gap (listed);
  "[low, high]" = 95% CI: bootstrap over test questions (one seed, needs its predictions.jsonl),
  t-interval over seeds (several).
the teacher: evaluate it with target.label=teacher, or name it here with --teacher <model>.

examples:
  python -m steper.report outputs/train/multiruns/2025-01-01_10-00-00-000000
  python -m steper.report outputs/train/multiruns/* outputs/evaluate/runs/* --teacher Llama-3.1-70B-Instruct
  python -m steper.report wandb_export.csv --out report_wandb
  python -m steper.report outputs/evaluate/runs/* --judge-base-url http://127.0.0.1:8000/v1 --judge-model gpt-4o
"""


def build_parser() -> argparse.ArgumentParser:
    from steper.report.judge import add_judge_options

    p = argparse.ArgumentParser(
        prog="python -m steper.report",
        description="Aggregate finished steper runs into the paper's tables (Table 1, Table 2, scaling) "
        "and figures (σ_j, accuracy vs size, accuracy vs latency, validation loss), optionally with "
        "the LLM reasoning-ability judge.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="run / multirun folders, W&B CSV exports"
    )
    p.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: ./report)")
    p.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="NAME",
        help="the model name (or target.label) of the evaluate run that is the teacher; repeatable",
    )
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("--quiet", action="store_true", help="print only problems and where the report went")
    g = p.add_argument_group(
        "judge (off by default)",
        "score every run's predictions for reasoning initialization / expansion / aggregation with an LLM "
        "on an OpenAI-compatible server; judge.json is written beside each predictions file and reused "
        "on the next report (same model, rubric and limit)",
    )
    g.add_argument("--judge-base-url", default=None, metavar="URL", help="e.g. http://127.0.0.1:8000/v1")
    g.add_argument(
        "--judge-model", default=None, metavar="NAME", help="the served model (default: its only one)"
    )
    add_judge_options(g, prefix="judge-")
    return p


def _console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def main(argv: list[str] | None = None) -> int:
    @friendly_errors
    def run() -> int:
        from rich.markup import escape

        from steper.report import make_report
        from steper.report.judge import config_from_args

        args = build_parser().parse_args(argv)
        if args.out.exists() and not args.out.is_dir():
            raise SteperError(f"--out {args.out} is a file, not a folder: give a folder for the report")
        judge_cfg = None
        if args.judge_base_url:
            judge_cfg = config_from_args(args, args.judge_base_url, args.judge_model, prefix="judge-")
        elif args.judge_model:
            print("warning: --judge-model without --judge-base-url: the judge is off", file=sys.stderr)
        report = make_report(
            args.paths, args.out, judge_cfg=judge_cfg, teachers=args.teacher, plots=not args.no_plots
        )
        console = _console()
        if not args.quiet:
            for name in ("table1", "table2", "paired", "scaling", "training", "judge"):
                t = report.tables.get(name)
                if name == "paired" and t is not None and not t:
                    for n in t.notes:  # why there are no paired differences, in one line
                        console.print(f"[dim]paired differences: {escape(n)}[/dim]", highlight=False)
                if t:
                    console.print(t.to_rich())
                    for g in t.gap_lines():
                        console.print(f"  [red]—[/red] {escape(g)}", highlight=False)
                    for n in t.notes:
                        console.print(f"  [dim]note:[/dim] {escape(n)}", highlight=False)
                    console.print()
        for w in report.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
        for pr in report.problems:
            console.print(f"[yellow]problem:[/yellow] {escape(pr)}", highlight=False)
        for m in report.judge_messages:
            console.print(f"[yellow]{escape(m)}[/yellow]", highlight=False)
        for s in report.skipped_plots:
            console.print(f"[dim]skipped {escape(s)}[/dim]", highlight=False)
        n_ok = sum(r.ok for r in report.runs)
        console.print(
            f"wrote {escape(str(report.out / 'report.md'))} ({len(report.runs)} runs, {n_ok} finished; "
            f"{len(report.plots)} figures, {len(report.problems)} problems)",
            highlight=False,
        )
        return 0

    return run()


if __name__ == "__main__":
    sys.exit(main())
