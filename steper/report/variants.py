"""Sweep variants: runs that share a table cell but differ in an overridden setting (a sweep over
`model.lr`, say) become separate rows, tagged `[model.lr=1e-05]`, instead of duplicates."""

from __future__ import annotations

from typing import Any

from steper.report.records import RunRecord

# Override keys that never make two runs different rows: the cell's own coordinates, where files go,
# logging, and how the evaluated target is found.
_NOT_VARIANT = (
    "dataset", "model", "method", "weighting", "seed", "mode", "task_name", "target", "teacher",
    "sweep", "trainer", "logger", "callbacks", "hydra/launcher", "tags", "out_dir", "ckpt_path",
    "ckpt_dir", "progress", "row_delay_s", "export",
)  # fmt: skip
_NOT_VARIANT_PREFIX = (
    "hydra.",
    "paths.",
    "logger.",
    "callbacks.",
    "dataset.",
    "target.",
    "teacher.",
    "stepwise.data_dir",
)


def parse_overrides(items: Any) -> dict[str, str]:
    """Command-line overrides (`key=value` strings) as {key: value}; `+`/`~` prefixes and `@package`
    suffixes dropped, anything that is not a `key=value` string ignored."""
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str) and "=" in item:
            k, v = item.split("=", 1)
            out[k.lstrip("+~").split("@", 1)[0].strip()] = v.strip()
    return out


def _is_variant_key(key: str) -> bool:
    return key not in _NOT_VARIANT and not key.startswith(_NOT_VARIANT_PREFIX)


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _config_value(r: RunRecord, key: str) -> str:
    if key in r.overrides:
        return r.overrides[key]
    v = _get(r.config, key)
    if isinstance(v, dict):
        v = v.get("name", "default")
    return "default" if v is None else str(v)


def assign_variants(runs: list[RunRecord]) -> None:
    """Give runs a `variant` tag from the overridden settings whose values differ between runs that
    would otherwise share a table cell, so they become separate rows instead of duplicates."""
    keys = sorted({k for r in runs for k in r.overrides if _is_variant_key(k)})
    if not keys:
        return
    groups: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        who = (r.role, r.method, r.weighting, r.model, r.dataset, r.mode, r.teacher, r.baseline)
        groups.setdefault(who, []).append(r)
    for rs in groups.values():
        varying = [k for k in keys if len({_config_value(r, k) for r in rs}) > 1]
        for r in rs:
            r.variant = ", ".join(f"{k}={_config_value(r, k)}" for k in varying)
