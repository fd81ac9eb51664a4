"""The task wrapper: a training job leaves the process as it found it (a multirun runs every job
in one process)."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

from omegaconf import DictConfig

log = logging.getLogger(__name__)

# What Lightning's DDP launcher writes into the launching process's environment.
DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_RANK", "RANK", "LOCAL_WORLD_SIZE")


def task_wrapper(fn: Callable[[DictConfig], dict]) -> Callable[[DictConfig], dict]:
    """Leave the process as the job found it, whatever happens (`finally`): in a multirun every job
    runs in one process.

    - end the job's W&B run (marked failed on an exception), else the next job logs into it;
    - destroy the job's torch.distributed process group and restore the distributed environment
      variables, else the next DDP job joins a dead group (or, seeing LOCAL_RANK, starts no
      processes at all).
    """

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> dict:
        from steper.distill import wandb_utils

        env = {k: os.environ.get(k) for k in DIST_ENV}
        failed = True
        try:
            out = fn(cfg)
            failed = False
            return out
        finally:
            wandb_utils.finish(exit_code=1 if failed else 0)
            _teardown_distributed(env)

    return wrapper


def _teardown_distributed(env: dict[str, str | None]) -> None:
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception as e:  # pragma: no cover - never mask the job's own error
            log.warning("destroy_process_group failed: %s", e)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
