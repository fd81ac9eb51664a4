"""A resumed run's CSV history stays whole.

Lightning's CSVLogger deletes an existing metrics.csv when it starts writing, so a run resumed
with `ckpt_path=...` kept only the rows logged after the resume. `keep_history` puts back the rows
the checkpointed run had logged up to its checkpoint (from this run folder, or from the folder the
checkpoint came from) and drops the ones logged after it, which the resumed run logs again: the
file then equals an uninterrupted run's.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def checkpoint_step(ckpt_path: str) -> int | None:
    """The global step a checkpoint was saved at (memory-mapped: the weights are not read)."""
    import torch

    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # a DeepSpeed folder, an unreadable file: Lightning reports it when loading
        return None
    return int(state["global_step"]) if isinstance(state, dict) and "global_step" in state else None


def _rows_before(path: Path, step: int) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = list(reader.fieldnames or [])
    return fields, [r for r in rows if r.get("step") not in (None, "") and int(float(r["step"])) < step]


def keep_history(logger: Any, ckpt_path: str, run_dir: Path) -> None:
    """Before `logger` (a CSVLogger) logs anything of the resumed run: write back the history up to
    the checkpoint's step."""
    step = checkpoint_step(ckpt_path)
    if step is None:
        return
    name = "metrics.csv"
    here = Path(logger.log_dir) / name
    origin = Path(ckpt_path).resolve().parent.parent  # <run dir>/checkpoints/last.ckpt
    there = origin / Path(logger.log_dir).resolve().relative_to(run_dir.resolve()) / name
    source = here if here.is_file() else there if there.is_file() else None
    if source is None:
        return
    fields, rows = _rows_before(source, step)
    writer = logger.experiment  # removes the old file
    if not hasattr(writer, "metrics_file_path"):  # not rank 0: nothing is written here
        return
    with open(writer.metrics_file_path, "w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, fieldnames=fields)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = sorted(fields)
    log.info("%s: kept %d history rows up to step %d of %s", writer.metrics_file_path, len(rows), step, source)


def log_step_sync():
    """A callback that puts the logging step back on the optimizer step after a resume.

    Lightning restores the step it logs at (`_batches_that_stepped`) one ahead when last.ckpt
    was saved at the validation that ends a step, so every row a resumed run logged (losses,
    `lr-AdamW/*`) sat one step later than in an uninterrupted run."""
    from lightning.pytorch.callbacks import Callback

    class LogStepSync(Callback):
        done = False

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            loop = trainer.fit_loop.epoch_loop
            if not self.done and getattr(loop, "_batches_that_stepped", None) is not None:
                loop._batches_that_stepped = int(trainer.global_step)
            self.done = True

    return LogStepSync()
