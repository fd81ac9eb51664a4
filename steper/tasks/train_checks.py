"""What train.py checks before anything heavy loads: callbacks' monitors, the step-wise data
files, the checkpoint to resume from (or a used run folder), task counts against the weights."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from steper.distill.budget import check_budget
from steper.errors import SteperError
from steper.plain import to_plain
from steper.runcard import CARD_FILE

log = logging.getLogger(__name__)

# What the LightningModule logs as the WEIGHTED total (can be negative under `adaptive`).
TOTAL_LOSS_KEYS = ("train/loss", "loss")


def check_monitors(cfg: DictConfig) -> None:
    """No callback may monitor the weighted total (it can be negative and is not comparable
    between weightings): monitor val/loss_mean or a per-task loss."""
    for name, node in (to_plain(cfg.get("callbacks")) or {}).items():
        if isinstance(node, dict) and node.get("monitor") in TOTAL_LOSS_KEYS:
            raise SteperError(
                f"callbacks.{name}.monitor={node['monitor']} is the WEIGHTED total loss (negative at times "
                "under weighting=adaptive, not comparable across weightings): monitor val/loss_mean "
                "or a per-task loss such as val/loss_final"
            )
    if cfg.get("optimized_metric") in TOTAL_LOSS_KEYS:
        raise SteperError(
            f"optimized_metric={cfg.optimized_metric} is the weighted total loss: use val/loss_mean"
        )


def check_data_files(cfg: DictConfig) -> None:
    """The step-wise data folder and its two files exist (their content is checked on reading)."""
    data_dir = Path(str(cfg.stepwise.data_dir))
    made_by = " ".join(
        f"{group}={cfg[group].name}"
        for group in ("dataset", "teacher", "framework")
        if cfg.get(group) is not None
    )
    how = (
        f"make it with `python generate_data.py {made_by}` "
        "or point stepwise.data_dir at a folder holding train.jsonl and validation.jsonl"
    )
    if not data_dir.is_dir():
        raise SteperError(f"step-wise data directory {data_dir} not found: {how}")
    for split in ("train", "validation"):
        if not (data_dir / f"{split}.jsonl").is_file():
            raise SteperError(f"step-wise data file {data_dir / f'{split}.jsonl'} not found: {how}")


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """`ckpt_path`: null → None; `last` → <ckpt_dir>/last.ckpt (must exist); else an existing path."""
    value = cfg.get("ckpt_path")
    if value in (None, "", "null"):
        return None
    ckpt_dir = Path(str(cfg.ckpt_dir))
    if str(value) == "last":
        last = ckpt_dir / "last.ckpt"
        if not last.exists():
            raise SteperError(
                f"ckpt_path=last: no last.ckpt in {ckpt_dir}. To resume a run, point at its folder: "
                "`hydra.run.dir=<old run dir>` (its checkpoints/ are used) or `ckpt_dir=<folder holding last.ckpt>`"
            )
        check_archive(last, "ckpt_path=last")
        return str(last)
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise SteperError(f"ckpt_path={value}: no such checkpoint")
    check_archive(path, f"ckpt_path={value}")
    return str(path)


def check_archive(path: Path, shown: str) -> None:
    """A Lightning .ckpt is a torch zip archive (DeepSpeed writes a folder): anything else, or a
    truncated one, would fail deep inside torch.load with an EOFError or a zip-reader error."""
    if not path.is_file():
        return
    if not zipfile.is_zipfile(path):
        raise SteperError(
            f"{shown}: {path} is not a checkpoint written by train.py (not a torch archive; a truncated file "
            "looks the same): point at <run dir>/checkpoints/last.ckpt or best-*.ckpt, or use ckpt_path=last "
            "with that run's ckpt_dir"
        )
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise SteperError(f"{shown}: {path} is a damaged checkpoint ({e}): resume from best-*.ckpt or train again") from None
    if not any(n.endswith("data.pkl") for n in names):
        raise SteperError(f"{shown}: {path} is a zip archive but not a torch checkpoint (no data.pkl)")


def check_fresh_run_folder(cfg: DictConfig) -> None:
    """A job that does not resume must not train into a folder an earlier job used: it would
    start again from step 0 over that job's checkpoints and logs. Resume it, or use a new folder."""
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("RANK", "0") != "0":
        return  # a DDP child joins its rank-0 job's folder (steper.distill.launch)
    last = Path(str(cfg.ckpt_dir)) / "last.ckpt"
    card = Path(str(cfg.paths.output_dir)) / CARD_FILE
    used = [p for p in (last, card) if p.exists()]
    if used:
        raise SteperError(
            f"{used[0]} exists: an earlier training job used this folder. Resume it with ckpt_path=last "
            "(same hydra.run.dir), or train into a new folder (leave hydra.run.dir at its default, or set "
            "a new one; ckpt_dir=... for checkpoints)"
        )


def check_eval(cfg: DictConfig) -> None:
    """The evaluation after training, checked before any training step (not found after it)."""
    from steper.config import check_at_least
    from steper.reasoning.loop import check_loop_settings

    ev = cfg.get("eval")
    if ev is None:
        return
    check_at_least("eval.val_limit", ev.get("val_limit"), 0, optional=True)
    if not ev.get("enabled"):
        return
    check_at_least("eval.limit", ev.get("limit"), 1, optional=True)
    check_at_least("eval.max_new_tokens", ev.get("max_new_tokens"), 1)
    check_at_least("eval.batch_size", ev.get("batch_size"), 1)
    check_loop_settings(top_k=cfg.retriever.top_k, max_passages=cfg.framework.max_passages)


# Lightning's precision values (lightning.pytorch.trainer.connectors.accelerator_connector)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "transformer-engine",
              "transformer-engine-float16", "32", "16", "bf16", "64")  # fmt: skip


def check_training(cfg: DictConfig) -> None:
    """`training.*` and the trainer's counts, named as the user typed them (library errors named
    neither the key nor the fix, or named the interpolated `stepwise.*` key)."""
    from steper.config import check_at_least

    t = cfg.training
    lr = t.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise SteperError(f"training.lr must be a positive learning rate, got {lr!r}: set e.g. training.lr=1e-4")
    for key, low in (("batch_size", 1), ("max_length", 2)):
        value = t.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SteperError(f"training.{key} must be an integer of at least {low}, got {value!r}")
    if str(t.get("precision")) not in PRECISIONS:
        raise SteperError(
            f"training.precision={t.get('precision')!r} is not a Lightning precision: use 32-true (CPU), "
            f"bf16-mixed (GPU) or one of {', '.join(PRECISIONS[:7])}"
        )
    trainer = cfg.trainer
    for key in ("max_steps", "accumulate_grad_batches", "log_every_n_steps"):
        value = trainer.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise SteperError(f"trainer.{key} must be an integer, got {value!r}")
    check_at_least("trainer.accumulate_grad_batches", trainer.get("accumulate_grad_batches", 1), 1)
    devices = trainer.get("devices")
    if isinstance(devices, int) and not isinstance(devices, bool) and devices == 0:
        raise SteperError("trainer.devices=0 trains on no device: set trainer.devices=1 (or -1 for all, or a list)")


def check_before_training(cfg: DictConfig) -> str | None:
    """Everything that can be checked in a second, before the heavy imports; the checkpoint to
    resume from (None = a fresh run)."""
    if cfg.method.name not in ("steper", "vanilla"):
        raise SteperError(f"method.name={cfg.method.name}: use method=steper or method=vanilla")
    check_data_files(cfg)
    check_monitors(cfg)
    check_training(cfg)
    check_budget(cfg.training, cfg.trainer)
    check_eval(cfg)
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path is None:
        check_fresh_run_folder(cfg)
    return ckpt_path


def check_task_counts(counts: dict[str, int], weighting: Any, cfg: DictConfig, data_dir: Path) -> None:
    """Every task with a non-zero weight needs training examples (method=steper); method=vanilla
    trains the final task only."""
    from steper.constants import STEP_TASKS as TASKS

    method = cfg.method.name
    wname = cfg.weighting.get("name", "?")
    if method == "vanilla":
        if counts.get("train/final", 0) == 0:
            raise SteperError(
                f"method=vanilla but {data_dir / 'train.jsonl'} has no vanilla rows: regenerate the data "
                "with generate_data.py (it writes the vanilla view too)"
            )
        return
    weights = [float(w) for w in weighting.effective_weights().detach().cpu().tolist()]
    for j, task in enumerate(TASKS):
        if counts.get(f"train/{task}", 0) == 0 and weights[j] != 0.0:
            lambdas = ",".join("0.0" if i == j else "1.0" for i in range(len(TASKS)))
            why = (
                "weighting=adaptive learns a weight for every task"
                if wname == "adaptive"
                else f"weighting={wname} gives it λ_{task}={weights[j]:g}"
            )
            raise SteperError(
                f"task `{task}` has no training example in {data_dir / 'train.jsonl'} (method=steper), "
                f"but {why}. Fix: train without it, e.g. `weighting=uniform 'weighting.lambdas=[{lambdas}]'`, "
                f"or regenerate the data so that it holds {task}-step examples"
                + (" (questions that need 3+ reasoning steps)" if task == "mid" else "")
                + " with generate_data.py"
            )
    for task in TASKS:
        if counts.get(f"validation/{task}", 0) == 0 and counts.get(f"train/{task}", 0) > 0:
            log.warning("task %s has no validation example: val/loss_mean averages the other tasks", task)
