"""The Lightning Trainer the training benchmarks time: fit steps only (no validation, checkpoints,
progress bar or model summary), metrics to a throwaway CSV, the timing callback given."""

from __future__ import annotations

import tempfile

import lightning.pytorch as L


def timing_trainer(
    *, accelerator: str, precision: str, max_steps: int, gradient_clip_val: float, callback: L.Callback
) -> L.Trainer:
    return L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=max_steps,
        gradient_clip_val=gradient_clip_val,
        log_every_n_steps=10,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=L.loggers.CSVLogger(tempfile.mkdtemp(prefix="steper-bench-csv-")),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
