"""Who a run is in a table: dataset and weighting order, model sizes, row labels, and which of
two runs claiming the same cell and seed is kept."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from steper.report.records import RunRecord, where

DATASET_ORDER = ("hotpot", "2wiki", "musique")
DATASET_LABELS = {"hotpot": "HotpotQA", "2wiki": "2Wiki", "musique": "MuSiQue", "toy": "Toy"}
WEIGHTING_ORDER = ("uniform", "first", "last", "adaptive")


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
                f"same cell and seed twice ({winner.describe()}): {where(loser)} and {where(winner)}; "
                f"using {where(winner)} ({why})"
            )
    kept.sort(key=lambda r: r.order)
    return kept, warnings
