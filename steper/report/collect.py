"""Finished runs → `RunRecord`s: walk job folders, multirun folders and W&B CSV exports.

A job folder is a folder with a run card (`run.json`, see `steper.runcard`); `steper.report.cards`
turns a train or evaluate card into a record (generate_data cards are skipped). A folder that looks
like a job's (Hydra's `.hydra/`, or a numbered job of a multirun) but has no card, a card of another
version, or one that does not parse, is one problem line naming the file; nothing is silently
dropped and nothing crashes.

A multirun folder (Hydra's sweep dir, with `multirun.yaml`) holds numbered job folders: a job that
failed, was killed or is still running has a card that says so and becomes a record with status
`failed` (its table cell shows a gap instead of vanishing); a numbered job folder missing from the
sequence, or fewer jobs than the sweep's parameters imply, is a problem too.

A `.csv` file argument is read as a W&B runs-table export (`steper.report.wandb_csv`).
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

from steper.errors import SteperError
from steper.report.cards import read_folder
from steper.report.records import RunRecord, display_path, mark_teachers, method_label
from steper.report.variants import assign_variants
from steper.report.wandb_csv import read_wandb_csv
from steper.runcard import CARD_FILE

__all__ = ["RunRecord", "collect_runs", "display_path", "mark_teachers", "method_label"]

# files inside a job folder that stand for the folder when given as an argument
_JOB_FILES = (CARD_FILE, "metrics.json", "predictions.jsonl")


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _is_job_folder(here: Path, dirs: list[str]) -> bool:
    """A folder a job made: Hydra's `.hydra/` in it, or a numbered job of a multirun."""
    return ".hydra" in dirs or (here.name.isdigit() and (here.parent / "multirun.yaml").is_file())


def walk(root: Path) -> tuple[list[Path], list[Path]]:
    """(folders with a run card, job folders without one) under `root`; a job folder's own
    subfolders are not searched further."""
    cards: list[Path] = []
    cardless: list[Path] = []
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        if CARD_FILE in files:
            cards.append(here)
            dirs[:] = []
        elif _is_job_folder(here, dirs):
            cardless.append(here)
            dirs[:] = []
        else:
            dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=_natural)
    return cards, cardless


def _no_card(folder: Path) -> str | None:
    """The problem of a job folder without a card; None for a generate_data run folder (its card
    is in the data folder it wrote, `out_dir`)."""
    if _task_name(folder) == "generate_data":
        return None
    return (
        f"{display_path(folder / CARD_FILE)}: no run card (the job stopped before it started, or an "
        "older steper wrote this folder); rerun the job"
    )


def _task_name(folder: Path) -> str | None:
    """The `task_name` line of a Hydra run folder's `.hydra/config.yaml` (only to tell a
    generate_data run folder, whose card lies elsewhere, from a job that lost its card)."""
    try:
        with open(folder / ".hydra" / "config.yaml", encoding="utf-8") as f:
            for line in f:
                if line.startswith("task_name:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _sweep_size(multirun_yaml: Path) -> int | None:
    """Jobs a basic-sweeper multirun should have: the product of its comma-list sizes (None if unsure)."""
    import yaml

    try:
        with open(multirun_yaml, encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return None
    hydra = cfg.get("hydra") if isinstance(cfg, dict) else None
    if not isinstance(hydra, dict):
        return None
    sweeper = hydra.get("sweeper") or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "BasicSweeper")):
        return None  # optuna & co.: the count is theirs to decide
    params = {str(k): str(v) for k, v in (sweeper.get("params") or {}).items()}
    overrides = hydra.get("overrides") if isinstance(hydra.get("overrides"), dict) else {}
    for ov in overrides.get("task") or []:
        if isinstance(ov, str) and "=" in ov:
            k, v = ov.split("=", 1)
            params[k.lstrip("+~")] = v
    size = 1
    for v in params.values():
        if re.search(r"\b(range|choice|interval|glob|sort|shuffle|tag)\(", v) or any(c in v for c in "['\""):
            return None
        size *= len(v.split(","))
    return size


def multirun_problems(root: Path, job_dirs: list[Path]) -> list[str]:
    """Missing numbered jobs and short sweeps in every multirun folder under `root` (`job_dirs`:
    the job folders found, with a card or without)."""
    problems: list[str] = []
    for mr in sorted(root.rglob("multirun.yaml")):
        folder = mr.parent
        jobs = [d for d in job_dirs if d.parent == folder]
        numbers = sorted(int(d.name) for d in jobs if d.name.isdigit())
        expected = _sweep_size(mr)
        if numbers:
            top = max(numbers[-1], (expected or 0) - 1)
            problems += [
                f"{display_path(folder / str(n))}: no job folder (the job never started, or was removed)"
                for n in range(top + 1)
                if n not in numbers
            ]
        elif expected and len(jobs) < expected:
            problems.append(f"{display_path(folder)}: {len(jobs)} job folders, the sweep has {expected} jobs")
    return problems


def _folder_of(path: Path) -> Path:
    """The folder an argument stands for (a job's file → its folder); a SteperError for other files."""
    if path.is_dir():
        return path
    if path.name in _JOB_FILES:
        return path.parent
    if path.name == "config.yaml" and path.parent.name == ".hydra":
        return path.parent.parent
    raise SteperError(f"{path}: not a run folder, multirun folder or W&B CSV export (a .csv file)")


def _read_tree(root: Path, seen: set[Path], counter: itertools.count) -> tuple[list[RunRecord], list[str]]:
    """Every job folder under `root` → records and problems (folders in `seen` are skipped)."""
    cards, cardless = walk(root)
    if not cards and not cardless:
        return [], [f"{display_path(root)}: no runs found here"]
    runs: list[RunRecord] = []
    problems = [p for p in map(_no_card, cardless) if p]
    for folder in cards:
        if folder.resolve() in seen:
            continue  # the same folder reached through two arguments
        seen.add(folder.resolve())
        rec, probs = read_folder(folder, order=next(counter))
        problems += probs
        if rec is not None:
            runs.append(rec)
    return runs, problems + multirun_problems(root, cards + cardless)


def _no_runs(paths: list[Path], problems: list[str]) -> SteperError:
    where = ", ".join(str(p) for p in paths) or "(nothing given)"
    why = ""
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        why = f"; {problems[0]}{more}"
    return SteperError(
        f"no runs found under {where}: pass job folders (with a run.json card) or multirun folders, "
        f"or a W&B runs export (.csv){why}"
    )


def collect_runs(paths: list[Path]) -> tuple[list[RunRecord], list[str]]:
    """Every run under `paths` (job folders, multirun folders, parents of either, W&B CSV files).

    Returns the records (failed runs included, `status="failed"`) and the problems found. Raises a
    SteperError when a path does not exist, or when nothing under any of them is a run.
    """
    runs: list[RunRecord] = []
    problems: list[str] = []
    counter = itertools.count()
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise SteperError(f"no such file or folder: {path}")
        if path.is_file() and path.suffix.lower() == ".csv":
            recs, probs = read_wandb_csv(path, order=next(counter) * 100000)
        else:
            recs, probs = _read_tree(_folder_of(path), seen, counter)
        runs += recs
        problems += probs
    if not runs:
        raise _no_runs(paths, problems)
    assign_variants(runs)
    return runs, list(dict.fromkeys(problems))
