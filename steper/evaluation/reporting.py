"""An evaluation's results for people: rich tables on the terminal, a `CSV:` line for grep, and
one W&B run with the metrics and a table of the predictions."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steper.plain import to_plain

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("qid", "question", "prediction", "golds", "em", "f1", "acc", "steps")


def _fmt(x: Any, nd: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def print_report(metrics: dict[str, Any], title: str = "evaluation") -> None:
    """The metrics as rich tables on stdout (overall, by hops, by type)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=title)
    for col in (
        "n",
        "EM",
        "F1",
        "Acc",
        "gold recall",
        "all gold",
        "steps",
        "no answer",
        "failures",
        "s/question",
    ):
        t.add_column(col, justify="right")
    lat = metrics.get("latency_s") or {}
    t.add_row(
        str(metrics["n"]),
        _fmt(metrics["em"]),
        _fmt(metrics["f1"]),
        _fmt(metrics["acc"]),
        _fmt(metrics.get("gold_recall"), 3),
        _fmt(metrics.get("all_gold_found"), 3),
        _fmt(metrics.get("mean_steps")),
        str(metrics.get("no_answer")),
        str(metrics.get("failures")),
        _fmt(lat.get("mean"), 4),
    )
    console.print(t)
    for key, name in (("by_hops", "hops"), ("by_type", "type")):
        groups = metrics.get(key) or {}
        if not 2 <= len(groups) <= 12:  # one group repeats the overall row; many make a wall of text
            continue
        g = Table(title=f"by {name}")
        for col in (name, "n", "EM", "F1", "Acc"):
            g.add_column(col, justify="right")
        for k, v in groups.items():
            g.add_row(k, str(v["n"]), _fmt(v["em"]), _fmt(v["f1"]), _fmt(v["acc"]))
        console.print(g)


CSV_HEADER = "dataset,split,target,framework,mode,n,em,f1,acc,latency_s"


def csv_line(
    metrics: dict[str, Any], *, dataset: str, split: str, target: str, framework: str, mode: str
) -> str:
    """`CSV: <values>` (header `CSV_HEADER`) for aggregating many runs with `grep '^CSV:'`."""

    def clean(s: Any) -> str:
        return str(s).replace(",", "_").replace("\n", " ")

    lat = (metrics.get("latency_s") or {}).get("mean")
    values = [
        clean(dataset),
        clean(split),
        clean(target),
        clean(framework),
        clean(mode),
        str(metrics["n"]),
        f"{metrics['em']:.2f}",
        f"{metrics['f1']:.2f}",
        f"{metrics['acc']:.2f}",
        f"{lat:.4f}" if isinstance(lat, float) else "",
    ]
    return "CSV: " + ",".join(values)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "/"))
        elif v is not None and not (isinstance(v, float) and not math.isfinite(v)):
            out[name] = v
    return out


def log_to_wandb(
    cfg: Any, metrics: dict[str, Any], rows: Sequence[dict], *, name: str, tags: Sequence[str] = ()
) -> None:
    """One W&B run for this evaluation: the config, the metrics as summary (`eval/…`) and a table
    of the predictions. A no-op unless the `logger` section has a `wandb` entry (`logger=none`).
    Offline automatically when no API key is configured; the run is always finished."""
    node = cfg.get("logger") if cfg is not None else None
    wb = node.get("wandb") if node else None
    if not wb:
        return
    import wandb

    from steper.distill import wandb_utils

    wb = dict(to_plain(wb))
    offline = wandb_utils.resolve_offline(wb.get("offline", "auto"))
    config = wandb_utils.scrub(to_plain(cfg))
    extra_tags = [str(t) for t in (wb.get("tags") or [])] + [str(t) for t in (cfg.get("tags") or [])]
    out_dir = Path(str(cfg.out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = True
    try:
        run = wandb.init(
            project=wb.get("project") or "steper",
            entity=wb.get("entity"),
            name=wb.get("name") or name,
            group=wb.get("group") or wandb_utils.default_group(),
            tags=list(dict.fromkeys([*tags, *extra_tags])),
            job_type="evaluate",
            dir=str(out_dir),
            mode="offline" if offline else "online",
            config=config,
        )
        # by_type can have hundreds of groups (it stays in metrics.json)
        flat = {
            f"eval/{k}": v for k, v in _flatten({k: v for k, v in metrics.items() if k != "by_type"}).items()
        }
        run.summary.update(flat)
        table = wandb.Table(columns=list(TABLE_COLUMNS))
        for r in rows:
            table.add_data(
                r["qid"], r["question"], r.get("prediction"), " | ".join(r.get("golds") or []),
                r["em"], r["f1"], r["acc"], r.get("steps"),
            )  # fmt: skip
        run.log({**flat, "eval/predictions": table})
        if offline:
            hint = wandb_utils.offline_hint(run)
            if hint:
                log.info(hint)
        failed = False
    finally:
        wandb_utils.finish(exit_code=1 if failed else 0)


def log_predictions_to_wandb(cfg: Any, metrics: dict[str, Any], predictions: Path, *, label: str) -> None:
    """`log_to_wandb` for an evaluate.py job: its predictions file, its name and tags."""
    from steper.io import iter_jsonl

    rows = [row for _, row in iter_jsonl(predictions)]
    log_to_wandb(
        cfg,
        metrics,
        rows,
        name=f"eval-{cfg.dataset.name}-{label}-{cfg.mode}",
        tags=[
            f"dataset:{cfg.dataset.name}",
            f"target:{cfg.target.name}",
            f"mode:{cfg.mode}",
            f"framework:{cfg.framework.name}",
        ],
    )
