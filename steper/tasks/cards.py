"""A job's run card (steper.runcard) from its composed config and Hydra's record of the job."""

from __future__ import annotations

from typing import Any

from steper.plain import to_plain
from steper.runcard import RunCard, who


def hydra_job() -> tuple[dict[str, str], list[str]]:
    """The job's group choices (dataset=toy, model=..., without hydra/*) and its command-line
    overrides; empty outside a Hydra job (a test calling a task directly)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return {}, []
        hc = HydraConfig.get()
    except Exception:  # pragma: no cover - hydra internals
        return {}, []
    choices = {
        str(k): str(v)
        for k, v in dict(hc.runtime.choices).items()
        if v is not None and not str(k).startswith("hydra")
    }
    return choices, [str(o) for o in hc.overrides.task]


def new_card(job: str, cfg: Any, **fields: Any) -> RunCard:
    """A `running` card for `job` with the config (secrets masked on writing), choices, overrides
    and who/where it runs."""
    choices, overrides = hydra_job()
    config = to_plain(cfg)
    # outside Hydra (a task called directly), the sections' own names stand for the choices
    named = {k: str(v["name"]) for k, v in config.items() if isinstance(v, dict) and v.get("name") is not None}
    return RunCard(
        job=job, choices={**named, **choices}, overrides=overrides, config=config, who=who(), **fields
    )
