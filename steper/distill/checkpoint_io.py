"""Checkpoints written atomically: a temp file beside the target, fsync'd, renamed over it.

Lightning's `TorchCheckpointIO` left a partial file under the final name when the disk filled
mid-write (`last.ckpt` truncated; a later `ckpt_path=last` died inside torch's zip reader). Here a
checkpoint either is complete under its name or is not there; the temp file of a failed write is
removed, and a full disk is one error naming the file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from steper.errors import SteperError


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        target = Path(str(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                why = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                       errno.EROFS: "the file system is read-only"}.get(e.errno, "permission denied")  # fmt: skip
                raise SteperError(
                    f"cannot write the checkpoint {target}: {why}. Nothing partial was left under its name; "
                    "free space (or point ckpt_dir at another disk) and resume with ckpt_path=last"
                ) from None
            raise


def install_atomic_checkpoints(trainer: Any) -> bool:
    """Give the trainer's strategy atomic checkpoint writes where it saves one file per checkpoint
    (single device, DDP); sharded strategies (FSDP, DeepSpeed) keep their own writers. True if set."""
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

    strategy = trainer.strategy
    if not isinstance(strategy, SingleDeviceStrategy | DDPStrategy):
        return False
    if type(strategy.checkpoint_io) is not TorchCheckpointIO:
        return False  # a user's own CheckpointIO plugin: left as configured
    strategy.checkpoint_io = AtomicCheckpointIO()
    return True
