"""The pieces train.py builds from the composed config: the student, loggers (W&B with the run's
name, group and tags), callbacks, and the resolved config logged once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from steper.errors import SteperError
from steper.instantiate import build
from steper.plain import to_plain

log = logging.getLogger(__name__)


def _tiny_texts(data_dir: Path) -> Callable[[], Iterator[str]]:
    """The tiny tokenizer's training texts: every example of the step-wise data, all methods (so
    method=steper and method=vanilla get the same tiny model)."""

    def texts() -> Iterator[str]:
        from steper.distill.datamodule import METHODS, StepwiseDataModule

        for method in METHODS:
            try:
                yield from StepwiseDataModule(str(data_dir), method=method).texts()
            except SteperError:
                continue

    return texts


def load_model(cfg: DictConfig, data_dir: Path):
    from steper.distill.models import load_student

    m = to_plain(cfg.model)
    peft = to_plain(cfg.peft) or {}
    peft_kwargs = {k: v for k, v in peft.items() if k != "enabled"} if peft.get("enabled") else None
    is_tiny = m["name_or_path"] == "tiny"
    return load_student(
        m["name_or_path"],
        dtype=m.get("dtype", "auto"),
        gradient_checkpointing=bool(m.get("gradient_checkpointing", False)),
        peft=peft_kwargs,
        tiny=m.get("tiny") if is_tiny else None,
        texts_fn=_tiny_texts(data_dir) if is_tiny else None,
        cache_dir=str(Path(str(cfg.paths.cache_dir)) / "tiny") if is_tiny else None,
    )


def check_context(model: Any, max_length: int, name: str) -> None:
    """training.max_length must fit the student's context window (longer examples cannot be trained)."""
    config = getattr(getattr(model, "base_model", model), "config", None) or getattr(model, "config", None)
    context = getattr(config, "max_position_embeddings", None)
    if isinstance(context, int) and max_length > context:
        raise SteperError(
            f"training.max_length={max_length} is more than model={name}'s context window of {context} tokens: "
            f"set training.max_length={context} or less"
        )


def build_loggers(cfg: DictConfig, resume_id: str | None, ckpt_path: str | None = None) -> list:
    from steper.tasks.csv_history import keep_history

    loggers = []
    for name, node in (to_plain(cfg.get("logger")) or {}).items():
        if not node:
            continue
        if name == "wandb" or str(node.get("_target_", "")).endswith("WandbLogger"):
            loggers.append(build_wandb_logger(node, cfg, resume_id))
        else:
            Path(str(node.get("save_dir", cfg.paths.output_dir))).mkdir(parents=True, exist_ok=True)
            logger = build(node)
            if ckpt_path and type(logger).__name__.endswith("CSVLogger"):
                keep_history(logger, ckpt_path, Path(str(cfg.paths.output_dir)))
            loggers.append(logger)
    return loggers


def run_tags(cfg: DictConfig) -> list[str]:
    tags = [
        f"dataset:{cfg.dataset.name}",
        f"model:{cfg.model.name}",
        f"weighting:{cfg.weighting.get('name', '?')}",
        f"method:{cfg.method.name}",
    ]
    if cfg.peft.get("enabled"):
        tags.append("peft:lora")
    return tags


def build_wandb_logger(node: dict, cfg: DictConfig, resume_id: str | None):
    from hydra.utils import instantiate

    from steper.distill import wandb_utils

    kw = dict(node)
    kw["offline"] = wandb_utils.resolve_offline(kw.get("offline", "auto"))
    if kw["offline"]:
        kw["log_model"] = False  # WandbLogger refuses log_model in offline mode
    kw["name"] = (
        kw.get("name") or f"{cfg.dataset.name}-{cfg.model.name}-{cfg.method.name}-{cfg.weighting.get('name')}"
    )
    kw["group"] = kw.get("group") or wandb_utils.default_group()
    tags = (
        run_tags(cfg) + [str(t) for t in (cfg.get("tags") or [])] + [str(t) for t in (kw.get("tags") or [])]
    )
    kw["tags"] = list(dict.fromkeys(tags))
    if resume_id:
        kw["id"] = resume_id
        kw["resume"] = "allow"
    Path(str(kw["save_dir"])).mkdir(parents=True, exist_ok=True)
    logger = instantiate(kw)
    # Lightning always passes `anonymous=None` to wandb.init, which wandb >= 0.2x answers with a
    # "no effect, will be removed" warning on every run: leave the key out unless it was set.
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)
    return logger


def build_callbacks(cfg: DictConfig, has_logger: bool) -> list:
    trainer_cfg = to_plain(cfg.trainer)
    no_bar = trainer_cfg.get("enable_progress_bar") is False
    out = []
    for node in (to_plain(cfg.get("callbacks")) or {}).values():
        if not node:
            continue
        target = str(node.get("_target_", ""))
        if target.endswith("LearningRateMonitor") and not has_logger:
            continue  # Lightning refuses it without a logger
        if no_bar and target.endswith(("ProgressBar", "TQDMProgressBar")):
            continue
        if target.endswith("ModelCheckpoint") and node.get("dirpath"):
            Path(str(node["dirpath"])).mkdir(parents=True, exist_ok=True)
        out.append(build(node))
    return out


def log_config(cfg: DictConfig, loggers: list) -> str | None:
    """Log the resolved config (secrets masked) to every logger; create the W&B run and print the
    offline hint. Rank 0 only. Returns the W&B run id."""
    from steper.distill import wandb_utils

    resolved = wandb_utils.scrub(to_plain(cfg))
    run_id = None
    for lg in loggers:
        lg.log_hyperparams(resolved)
        if type(lg).__name__ == "WandbLogger":
            experiment = lg.experiment  # creates the run
            run_id = getattr(experiment, "id", None) or run_id
            if getattr(lg, "_offline", False):
                hint = wandb_utils.offline_hint(experiment)
                if hint:
                    log.info(hint)
    return str(run_id) if run_id else None


@dataclass
class TrainingJob:
    """What `build_training` made: the data, the student in its LightningModule, the trainer."""

    cfg: DictConfig
    dm: Any
    module: Any
    tokenizer: Any
    trainer: Any
    loggers: list
    fast_dev_run: bool
    output_dir: Path
    budget_plan: Any = None  # steper.distill.budget.BudgetPlan of the training split
    budget: dict[str, Any] | None = None  # training.budget as applied (apply_budget)

    def consumed(self) -> dict[str, Any]:
        """Optimizer steps, examples seen, target tokens and epochs trained so far (all ranks)."""
        return self.budget_plan.consumed(int(self.trainer.global_step)).as_dict()

    def card_fields(self) -> dict[str, Any]:
        """The run card's data / model / where of this job (steper.runcard)."""
        cfg = self.cfg
        where = {"metrics": "metrics.json", "checkpoints": _rel(cfg.ckpt_dir, self.output_dir)}
        for lg in self.loggers:
            if type(lg).__name__.endswith("CSVLogger"):
                where["history"] = _rel(Path(lg.log_dir) / "metrics.csv", self.output_dir)
        if cfg.get("export"):
            where["student"] = "student"
        if cfg.get("eval") is not None and cfg.eval.get("enabled"):
            where["predictions"] = "eval/predictions.jsonl"
        model = {
            "name": cfg.model.name,
            "name_or_path": cfg.model.name_or_path,
            "method": cfg.method.name,
            "weighting": cfg.weighting.get("name"),
            "peft": to_plain(cfg.peft) if cfg.peft.get("enabled") else None,
            "seed": int(cfg.seed),
        }
        data = {
            "dataset": cfg.dataset.name,
            "stepwise_dir": str(self.dm.data_dir),
            "counts": self.dm.task_counts(),
            "budget": self.budget,
            "eval_split": cfg.eval.get("split") if cfg.get("eval") is not None else None,
            "mode": cfg.eval.get("mode") if cfg.get("eval") is not None else None,
        }
        return {"data": data, "model": model, "where": where}


def _rel(path: Any, root: Path) -> str:
    p = Path(str(path))
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


def build_module(cfg: DictConfig, model: Any, weighting: Any, tokenizer: Any, dm: Any) -> Any:
    """The LightningModule: the student, its weighting, optimizer and schedule (`module.*`, the
    warm-up and weight decay of `training.*`), and
    the answer evaluation at each validation (`eval.val_limit`)."""
    from steper.distill.module import StepwiseDistillationModule
    from steper.tasks.train_eval import ValidationAnswers

    mcfg = to_plain(cfg.module)
    module = StepwiseDistillationModule(
        model,
        weighting,
        optimizer=build(mcfg["optimizer"]),
        scheduler=build(mcfg["scheduler"]) if mcfg.get("scheduler") else None,
        warmup_ratio=float(cfg.training.warmup_ratio),
        weight_decay=float(cfg.training.weight_decay),
        weighting_lr=mcfg.get("weighting_lr"),
    )
    module.tokenizer = tokenizer
    ev = cfg.get("eval")
    if ev is not None and ev.get("enabled") and int(ev.get("val_limit") or 0) > 0:
        module.answer_evaluator = ValidationAnswers(cfg, dm, Path(str(cfg.paths.output_dir)) / "eval" / "validation")
    module.train()  # from_pretrained returns the model in eval mode; Lightning keeps modules' modes
    return module


def build_training(cfg: DictConfig, ckpt_path: str | None) -> TrainingJob:
    """Data (missing/empty files, task counts vs. weights) before any model loads; then the
    student (bad path, max_length too small: SteperError), module, loggers, callbacks, trainer."""
    from steper.distill import launch, wandb_utils
    from steper.distill.budget import BudgetPlan, apply_budget
    from steper.distill.callbacks import RunIdFile, SamplerEpochSync
    from steper.distill.checkpoint_io import install_atomic_checkpoints
    from steper.tasks.csv_history import log_step_sync
    from steper.tasks.train_checks import check_task_counts

    dm = build(cfg.stepwise)
    counts = dm.task_counts()
    weighting = build(cfg.weighting, drop=("name",))  # the option's name is metadata (tags, export)
    check_task_counts(counts, weighting, cfg, dm.data_dir)
    log.info("step-wise examples: %s", counts)
    model, tokenizer = load_model(cfg, dm.data_dir)
    check_context(model, int(cfg.training.max_length), str(cfg.model.name))
    dm.set_tokenizer(tokenizer)
    dm.setup("fit")
    module = build_module(cfg, model, weighting, tokenizer, dm)

    fast_dev_run = bool(to_plain(cfg.trainer).get("fast_dev_run", False))
    resume_id = wandb_utils.read_run_id(Path(ckpt_path).parent) if ckpt_path else None
    loggers = [] if fast_dev_run else build_loggers(cfg, resume_id, ckpt_path)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    callbacks.append(SamplerEpochSync())
    if ckpt_path:  # first: the learning-rate monitor logs in the same hook
        callbacks.insert(0, log_step_sync())
    if wandb_utils.is_rank_zero() and loggers:
        run_id = log_config(cfg, loggers)
        if run_id:
            callbacks.append(RunIdFile(str(cfg.ckpt_dir), run_id))
    launch.install()  # DDP/FSDP/DeepSpeed children join this job's run folder
    trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    install_atomic_checkpoints(trainer)  # a full disk never leaves a truncated last.ckpt
    plan = BudgetPlan.from_datamodule(
        dm, trainer.world_size, trainer.accumulate_grad_batches, trainer.limit_train_batches
    )
    budget = apply_budget(trainer, plan, cfg.training)
    if budget["optimizer_steps"] is not None:
        log.info("training budget: %s=%s -> %d optimizer steps (%d per epoch)", budget["kind"],
                 budget["value"], budget["optimizer_steps"], budget["epoch_steps"])  # fmt: skip
    output_dir = Path(str(cfg.paths.output_dir))
    return TrainingJob(cfg, dm, module, tokenizer, trainer, loggers, fast_dev_run, output_dir, plan, budget)
