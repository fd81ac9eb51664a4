"""The training job behind `train.py`: step-wise distillation of a student (docs/method.md §1–2, §5).

`train(cfg)` checks the inputs (data, task counts against the weights, the checkpoint or run
folder to resume, model path, max_length) before anything trains; builds datamodule → student →
weighting → LightningModule → loggers, callbacks, trainer from the composed config; fits
(resuming from `ckpt_path`); exports the student; evaluates it in the loop; writes `metrics.json`
and the run card. `run(cfg)` (what train.py calls) returns the `optimized_metric` for a sweeper.

Run folder of a job (`paths.output_dir`):
    .hydra/          the composed config (Hydra)
    run.json         the run card (steper.runcard): who, what config, which data and model, where
    checkpoints/     best-*.ckpt (lowest val/loss_mean), last.ckpt, wandb_run_id.txt
    csv/metrics.csv  the training history (logger=csv; whole across resumes)
    student/         the exported model (or LoRA adapter) + tokenizer + steper_export.json
    eval/            predictions.jsonl and metrics.json of the evaluation after training
    wandb/           the W&B run (offline: upload with `wandb sync`)
    metrics.json     the job's metrics: training scalars and the answer metrics (em, f1, acc, n, ...)
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from steper.config import validate
from steper.errors import SteperError
from steper.io import folder_lock, write_json
from steper.runcard import finish_card, write_card
from steper.tasks.cards import new_card
from steper.tasks.train_checks import check_before_training
from steper.tasks.wrapper import task_wrapper

log = logging.getLogger(__name__)

# the run card's record of what a student trained on (steper.distill.budget.Consumed)
CONSUMED_KEYS = ("optimizer_steps", "examples_seen", "target_tokens")


def run(cfg: DictConfig) -> float | None:
    """train.py's body: train, then hand the `optimized_metric` to the sweeper (None if absent)."""
    metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        log.warning("optimized_metric %r was not logged; logged: %s", name, sorted(metrics))
        return None
    return metrics[name]


@task_wrapper
def train(cfg: DictConfig) -> dict[str, Any]:
    """Train a student as configured; returns the job's metrics (incl. `optimized_metric`)."""
    validate(cfg)
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("RANK", "0") != "0":
        return _train(cfg)  # a DDP child joins its rank-0 job's folder, which holds the lock
    with folder_lock(Path(str(cfg.paths.output_dir)), "train.py"):
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, Any]:
    ckpt_path = check_before_training(cfg)  # cheap checks first: a wrong path fails in a second

    import lightning.pytorch as L

    from steper.cli import quiet_console
    from steper.tasks.train_setup import build_training

    quiet_console()  # again, now that lightning (which adds a terminal handler on import) is loaded
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    job = build_training(cfg, ckpt_path)
    output_dir = Path(str(cfg.paths.output_dir))
    card = new_card("train", cfg, **job.card_fields()) if job.trainer.is_global_zero else None
    if card is not None:
        write_card(output_dir, card)
    try:
        metrics = fit(job, cfg, ckpt_path)
        answers = after_training(job, cfg, metrics)
    except BaseException as e:
        if card is not None:
            finish_card(output_dir, card, error=f"{type(e).__name__}: {e}")
        raise
    if job.trainer.is_global_zero:
        metrics.update(answers)
        write_json(output_dir / "metrics.json", metrics)
        card.metrics = {
            **answers,
            **{k: metrics[k] for k in CONSUMED_KEYS},
            "training": {k: v for k, v in metrics.items() if k not in answers},
        }
        finish_card(output_dir, card)
    return metrics


def fit(job: Any, cfg: DictConfig, ckpt_path: str | None) -> dict[str, Any]:
    """Fit, validate the final weights where training stopped between validations; the metrics."""
    trainer = job.trainer
    started = time.time()
    try:
        trainer.fit(job.module, datamodule=job.dm, ckpt_path=ckpt_path)
    except SystemExit:
        # Lightning answers Ctrl-C / SIGTERM with a graceful stop and exit(1): say where it stopped
        if getattr(trainer, "interrupted", False):
            raise SteperError(interrupted_message(trainer, cfg)) from None
        raise
    except RuntimeError as e:
        if ckpt_path and "size mismatch" in str(e):
            raise SteperError(
                f"ckpt_path={ckpt_path} holds the weights of a model of another shape than model={cfg.model.name} "
                f"({cfg.model.name_or_path}): resume with the model settings it was trained with (its run folder's "
                "run.json, config.model), or train from scratch without ckpt_path"
            ) from None
        raise
    elapsed = time.time() - started
    metrics = _scalars(trainer.callback_metrics)
    metrics.update(_scalars(finish_stopped_run(trainer, job.module, job.dm, cfg, job.fast_dev_run)))
    metrics["global_step"] = int(trainer.global_step)
    metrics["epoch"] = int(trainer.current_epoch)
    # what this student trained on, for comparisons at a matched budget (steper.distill.budget)
    consumed = job.consumed()
    metrics.update({k: consumed[k] for k in CONSUMED_KEYS})
    ckpt_cb = trainer.checkpoint_callback
    if ckpt_cb is not None and getattr(ckpt_cb, "best_model_score", None) is not None:
        metrics[f"best/{ckpt_cb.monitor}"] = float(ckpt_cb.best_model_score)
    metrics["weights"] = job.module.weighting.log_dict()
    metrics.update(
        optimized_metric=cfg.get("optimized_metric"),
        best_model_path=getattr(ckpt_cb, "best_model_path", None) or None,
        last_model_path=_last_ckpt(ckpt_cb),
        train_seconds=round(elapsed, 2),
    )
    return metrics


def interrupted_message(trainer: Any, cfg: DictConfig) -> str:
    """Where an interrupted training stopped and how to resume it."""
    last = Path(str(cfg.ckpt_dir)) / "last.ckpt"
    saved = ""
    if last.is_file():
        import torch

        step = torch.load(last, map_location="cpu", weights_only=False, mmap=True).get("global_step")
        saved = f"; its last checkpoint is at step {step}"
    else:
        return (
            f"training interrupted at step {int(trainer.global_step)}, before its first checkpoint: nothing to "
            "resume; train again into a new folder (another hydra.run.dir)"
        )
    return (
        f"training interrupted at step {int(trainer.global_step)}{saved}. Resume with the same command plus "
        f"ckpt_path=last hydra.run.dir={cfg.paths.output_dir}"
    )


def after_training(job: Any, cfg: DictConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    """Export the student (rank 0 writes; sharded strategies gather on every rank), then evaluate
    it in the loop on rank 0 and log the answer metrics to the job's loggers as test/<name>."""
    from steper.tasks.evaluate import failed_requests_error
    from steper.tasks.export import export_meta, export_student
    from steper.tasks.train_eval import evaluate_student

    trainer = job.trainer
    export_dir = None
    if cfg.get("export") and not job.fast_dev_run:
        meta = export_meta(cfg, job, {k: v for k, v in metrics.items() if _finite(v)})
        export_dir = export_student(trainer, job.module, job.tokenizer, job.output_dir / "student", meta)
    metrics["export_dir"] = str(export_dir) if export_dir else None
    ev = cfg.get("eval")
    if ev is None or not ev.get("enabled") or job.fast_dev_run or not trainer.is_global_zero:
        return {}
    answers = evaluate_student(cfg, trainer, job.module, job.tokenizer, job.dm, export_dir, job.output_dir / "eval")
    failed = failed_requests_error(
        answers, float(ev.max_failure_rate), job.output_dir / "eval", key="eval.max_failure_rate",
        rerun="evaluate the exported student again with evaluate.py target=student",
    )
    if failed:  # the card says failed; the student and its predictions are written
        raise SteperError(failed)
    logged = {f"test/{k}": float(answers[k]) for k in ("em", "f1", "acc")}
    for lg in job.loggers:
        lg.log_metrics(logged, step=int(trainer.global_step))
        lg.save()  # the CSV logger buffers rows until saved
    return answers


def finish_stopped_run(trainer, module, dm, cfg: DictConfig, fast_dev_run: bool) -> dict:
    """When `max_steps` stopped training between validations, validate once more (the returned
    `optimized_metric` must describe the final weights) and refresh last.ckpt to the final step."""
    if fast_dev_run or getattr(trainer, "interrupted", False):
        return {}
    name = cfg.get("optimized_metric")
    ckpt_cb = trainer.checkpoint_callback
    last_saved = (
        getattr(ckpt_cb, "_last_global_step_saved", trainer.global_step) if ckpt_cb else trainer.global_step
    )
    if last_saved == trainer.global_step and (not name or name in trainer.callback_metrics):
        return {}
    log.info(
        "training stopped between validations (step %d): validating the final weights", trainer.global_step
    )
    results = trainer.validate(module, datamodule=dm, verbose=False)
    if ckpt_cb is not None and getattr(ckpt_cb, "save_last", False) and ckpt_cb.dirpath:
        last = Path(ckpt_cb.dirpath) / f"{ckpt_cb.CHECKPOINT_NAME_LAST}{ckpt_cb.FILE_EXTENSION}"
        trainer.save_checkpoint(str(last))
    return {**trainer.callback_metrics, **(results[0] if results else {})}


def _finite(v: Any) -> bool:
    return isinstance(v, float) and math.isfinite(v)


def _scalars(values: Any) -> dict[str, float]:
    out = {}
    for key, value in dict(values or {}).items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _last_ckpt(ckpt_cb) -> str | None:
    if ckpt_cb is None or not getattr(ckpt_cb, "dirpath", None):
        return None
    last = Path(ckpt_cb.dirpath) / f"{ckpt_cb.CHECKPOINT_NAME_LAST}{ckpt_cb.FILE_EXTENSION}"
    return str(last) if last.exists() else None

