"""Weights & Biases around a training job: offline detection, names/groups/tags, secret scrubbing,
the run id kept beside the checkpoints (so a resume continues the same run), and the final
`wandb.finish()` that keeps multirun jobs in separate runs.

Only rank 0 may create a run: `WandbLogger.experiment` is rank-zero-only already, and every
function here that touches wandb directly checks `is_rank_zero()`.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from steper.secrets import MASK, is_secret_key, scrub  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id.txt"


def is_rank_zero() -> bool:
    """Rank from the launcher's environment (valid before the Trainer has set up distributed)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


# --------------------------------------------------------------------------- offline mode


def has_api_key() -> bool:
    """An API key is configured: WANDB_API_KEY, or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_offline(setting: Any) -> bool:
    """`offline: auto|true|false` → bool. auto: offline unless WANDB_MODE=online or a key is set
    (WANDB_MODE=offline/dryrun always means offline)."""
    if isinstance(setting, bool):
        return setting
    text = str(setting).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    if text != "auto":
        from steper.errors import SteperError

        raise SteperError(f"logger.wandb.offline must be auto, true or false, got {setting!r}")
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "dryrun"):
        return True
    if mode == "online":
        return False
    return not has_api_key()


# --------------------------------------------------------------------------- names


def default_group() -> str | None:
    """The sweep (its multirun folder name, prefixed by the sweep file's name) or the experiment."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized():
            hc = HydraConfig.get()
            choices = hc.runtime.choices
            if hc.mode == RunMode.MULTIRUN:
                name = Path(str(hc.sweep.dir)).name
                sweep = choices.get("sweep")
                return f"{sweep}-{name}" if sweep else name
            experiment = choices.get("experiment")
            if experiment:
                return str(experiment)
    except Exception:  # pragma: no cover - hydra internals
        pass
    return None


# --------------------------------------------------------------------------- run id


def read_run_id(ckpt_dir: str | os.PathLike) -> str | None:
    path = Path(ckpt_dir) / RUN_ID_FILE
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        return text or None
    return None


def write_run_id(ckpt_dir: str | os.PathLike, run_id: str) -> None:
    from steper.io import atomic_write

    with atomic_write(Path(ckpt_dir) / RUN_ID_FILE) as f:
        f.write(run_id + "\n")


def offline_hint(experiment: Any) -> str | None:
    """The one-line hint for an offline run (its folder and the `wandb sync` command)."""
    run_dir = None
    try:
        files_dir = Path(experiment.dir)  # <save_dir>/wandb/offline-run-<time>-<id>/files
        run_dir = files_dir.parent if files_dir.name == "files" else files_dir
    except Exception:  # pragma: no cover - wandb internals
        return None
    return f"W&B offline: runs saved under {run_dir}; upload later with `wandb sync {run_dir}`"


def finish(exit_code: int | None = None) -> None:
    """End this process's W&B run, if any (the task wrapper's `finally`): multirun jobs in one
    process would otherwise all log into the first job's run."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    try:
        wandb.finish(exit_code=exit_code)
    except Exception as e:  # pragma: no cover - never mask the job's own error
        log.warning("wandb.finish() failed: %s", e)
