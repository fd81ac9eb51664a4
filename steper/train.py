"""The training task behind `train.py`: step-wise distillation of a student (method.md §1–2, §5).

`train(cfg)` checks the inputs (data, task counts vs. weights, model path, max_length) before
anything trains, builds datamodule → student → weighting → LightningModule → callbacks, loggers,
trainer from the composed config, fits (resuming from `ckpt_path`), exports the student to
`<run dir>/student/` and writes `<run dir>/metrics.json`. It returns the metrics; `run(cfg)` (what
train.py calls) returns the `optimized_metric` for a sweeper.

Run folder of a job (`paths.output_dir`):
    .hydra/                 the composed config (Hydra)
    checkpoints/            best-*.ckpt (lowest val/loss_mean), last.ckpt, wandb_run_id.txt
    student/                the exported model (or LoRA adapter) + tokenizer + steper_export.json
    wandb/                  the W&B run (offline: upload with `wandb sync`)
    metrics.json            final metrics of the job
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from steper.config import validate
from steper.errors import SteperError

log = logging.getLogger(__name__)

# What the LightningModule logs as the WEIGHTED total (can be negative under `adaptive`).
TOTAL_LOSS_KEYS = ("train/loss", "loss")


# --------------------------------------------------------------------------- the task wrapper


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


# --------------------------------------------------------------------------- config helpers


def present(node: Any) -> Any:
    """A plain container of `node` resolved, without the keys a schema left missing (`???`)."""
    if node is None:
        return None
    if not OmegaConf.is_config(node):
        return node
    if OmegaConf.is_dict(node):
        return {k: present(node[k]) for k in node if not OmegaConf.is_missing(node, k)}
    return [present(v) for v in node]


def build(node: Any, *, drop: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` of a config node; keys missing in the schema and `drop` left out."""
    from hydra.utils import instantiate

    spec = present(node)
    for key in drop:
        spec.pop(key, None)
    return instantiate(spec, **kwargs)


# --------------------------------------------------------------------------- checks before training


def check_monitors(cfg: DictConfig) -> None:
    """No callback may monitor the weighted total (it can be negative and is not comparable
    between weightings): monitor val/loss_mean or a per-task loss."""
    for name, node in (present(cfg.get("callbacks")) or {}).items():
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
    data_dir = Path(str(cfg.data.data_dir))
    made_by = " ".join(
        f"{group}={cfg[group].name}"
        for group in ("dataset", "teacher", "framework")
        if cfg.get(group) is not None
    )
    how = (
        f"make it with `python generate_data.py {made_by}` "
        "or point data.data_dir at a folder holding train.jsonl and validation.jsonl"
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
        return str(last)
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise SteperError(f"ckpt_path={value}: no such checkpoint")
    return str(path)


def check_task_counts(counts: dict[str, int], weighting: Any, cfg: DictConfig, data_dir: Path) -> None:
    """Every task with a non-zero weight needs training examples (method=steper); method=vanilla
    trains the final task only."""
    from steper.distill.weighting import TASKS

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


# --------------------------------------------------------------------------- building blocks


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

    m = present(cfg.model)
    peft = present(cfg.peft) or {}
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


def build_loggers(cfg: DictConfig, resume_id: str | None) -> list:
    loggers = []
    for name, node in (present(cfg.get("logger")) or {}).items():
        if not node:
            continue
        if name == "wandb" or str(node.get("_target_", "")).endswith("WandbLogger"):
            loggers.append(build_wandb_logger(node, cfg, resume_id))
        else:
            Path(str(node.get("save_dir", cfg.paths.output_dir))).mkdir(parents=True, exist_ok=True)
            loggers.append(build(node))
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
    trainer_cfg = present(cfg.trainer)
    no_bar = trainer_cfg.get("enable_progress_bar") is False
    out = []
    for node in (present(cfg.get("callbacks")) or {}).values():
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

    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    resolved = wandb_utils.scrub(_drop_missing(resolved))
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


def _scalars(values: Any) -> dict[str, float]:
    out = {}
    for key, value in dict(values or {}).items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


# --------------------------------------------------------------------------- export


def _full_state_dict(trainer, module) -> dict | None:
    """The module's full state dict where the strategy shards it (FSDP, DeepSpeed ZeRO-3; a
    collective: call on every rank), else None (the in-memory weights are complete)."""
    strategy = trainer.strategy
    kind = type(strategy).__name__
    if kind.startswith("FSDP"):
        from lightning.fabric.strategies.fsdp import _get_full_state_dict_context

        with _get_full_state_dict_context(strategy.model, world_size=strategy.world_size):
            return strategy.model.state_dict()
    if kind.startswith("DeepSpeed") and getattr(strategy, "zero_stage_3", False):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            if trainer.is_global_zero:
                return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
            return {}
    return None


def export_student(trainer, module, tokenizer, out_dir: Path, meta: dict) -> Path | None:
    """Save the student with `save_pretrained` (full model, or the LoRA adapter) + tokenizer +
    `steper_export.json`, on rank 0. Gathers sharded weights first (every rank must call this)."""
    from steper.io import write_json

    full = _full_state_dict(trainer, module)
    if not trainer.is_global_zero:
        return None
    state = None
    if full is not None:
        state = {k[len("model.") :]: v for k, v in full.items() if k.startswith("model.")}
    out_dir.mkdir(parents=True, exist_ok=True)
    if state is not None:
        module.model.save_pretrained(str(out_dir), state_dict=state)
    else:
        module.model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    write_json(out_dir / "steper_export.json", meta)
    return out_dir


def _base_model_name(model) -> str:
    peft_cfg = getattr(model, "peft_config", None)
    if peft_cfg:
        first = next(iter(peft_cfg.values()))
        if getattr(first, "base_model_name_or_path", None):
            return str(first.base_model_name_or_path)
    return str(getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", ""))


# --------------------------------------------------------------------------- the task


@task_wrapper
def train(cfg: DictConfig) -> dict[str, Any]:
    """Train a student as configured; returns the final metrics (incl. `optimized_metric`)."""
    # cheap checks first, before the heavy imports: a wrong path or option fails in a second
    validate(cfg)
    if cfg.method.name not in ("steper", "vanilla"):
        raise SteperError(f"method.name={cfg.method.name}: use method=steper or method=vanilla")
    check_data_files(cfg)
    check_monitors(cfg)
    ckpt_path = resolve_ckpt_path(cfg)

    import lightning.pytorch as L

    from steper.cli import quiet_console
    from steper.distill import launch, wandb_utils
    from steper.distill.callbacks import RunIdFile, SamplerEpochSync
    from steper.distill.module import StepwiseDistillationModule
    from steper.io import write_json

    quiet_console()  # again, now that lightning (which adds a terminal handler on import) is loaded
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    rank_zero = wandb_utils.is_rank_zero()
    output_dir = Path(str(cfg.paths.output_dir))

    # ---- data (missing/empty files, task counts vs. weights), before any model is loaded
    dm = build(cfg.data)
    counts = dm.task_counts()
    weighting = build(cfg.weighting, drop=("name",))  # the option's name is metadata (tags, export)
    check_task_counts(counts, weighting, cfg, dm.data_dir)
    log.info("step-wise examples: %s", counts)

    # ---- student (bad path → SteperError), tokenization (max_length too small → SteperError)
    model, tokenizer = load_model(cfg, dm.data_dir)
    dm.set_tokenizer(tokenizer)
    dm.setup("fit")

    mcfg = present(cfg.module)
    module = StepwiseDistillationModule(
        model,
        weighting,
        optimizer=build(mcfg["optimizer"]),
        scheduler=build(mcfg["scheduler"]) if mcfg.get("scheduler") else None,
        warmup_ratio=float(mcfg.get("warmup_ratio", 0.03)),
        weight_decay=float(mcfg.get("weight_decay", 0.0)),
        weighting_lr=mcfg.get("weighting_lr"),
    )
    module.tokenizer = tokenizer
    if cfg.get("eval") is not None and cfg.eval.get("enabled") and int(cfg.eval.get("val_limit") or 0) > 0:
        module.answer_evaluator = ValidationAnswers(cfg, dm, output_dir / "eval" / "validation")
    module.train()  # from_pretrained returns the model in eval mode; Lightning keeps modules' modes

    # ---- loggers (the W&B run is created here, rank 0), callbacks, trainer
    fast_dev_run = bool(present(cfg.trainer).get("fast_dev_run", False))
    resume_id = wandb_utils.read_run_id(Path(ckpt_path).parent) if ckpt_path else None
    loggers = [] if fast_dev_run else build_loggers(cfg, resume_id)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    callbacks.append(SamplerEpochSync())
    if rank_zero and loggers:
        run_id = log_config(cfg, loggers)
        if run_id:
            callbacks.append(RunIdFile(str(cfg.ckpt_dir), run_id))
    launch.install()  # DDP/FSDP/DeepSpeed children join this job's run folder
    trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    # ---- fit
    started = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    elapsed = time.time() - started
    metrics = _scalars(trainer.callback_metrics)
    metrics.update(_scalars(finish_stopped_run(trainer, module, dm, cfg, fast_dev_run)))
    metrics["global_step"] = int(trainer.global_step)
    metrics["epoch"] = int(trainer.current_epoch)
    ckpt_cb = trainer.checkpoint_callback
    if ckpt_cb is not None and getattr(ckpt_cb, "best_model_score", None) is not None:
        metrics[f"best/{ckpt_cb.monitor}"] = float(ckpt_cb.best_model_score)
    weights = module.weighting.log_dict()

    # ---- export (rank 0 writes; sharded strategies gather on every rank)
    export_dir = None
    if cfg.get("export") and not fast_dev_run:
        meta = {
            "base_model": _base_model_name(model),
            "model": cfg.model.name,
            "method": cfg.method.name,
            "weighting": cfg.weighting.get("name"),
            "peft": present(cfg.peft) if cfg.peft.get("enabled") else None,
            "adapter": bool(cfg.peft.get("enabled")),
            "dataset": cfg.dataset.name,
            "teacher": _name_of(cfg.get("teacher")),
            "framework": _name_of(cfg.get("framework")),
            "data_dir": str(dm.data_dir),
            "chat": bool(dm.use_chat),
            "max_length": int(dm.max_length),
            "loss_on_prefix": bool(dm.loss_on_prefix),
            "global_step": metrics["global_step"],
            "weights": weights,
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)},
            "run_dir": str(output_dir),
        }
        export_dir = export_student(trainer, module, tokenizer, output_dir / "student", meta)

    # ---- answer evaluation of the trained student in the loop (rank 0), logged to the same run
    if (
        cfg.get("eval") is not None
        and cfg.eval.get("enabled")
        and not fast_dev_run
        and trainer.is_global_zero
    ):
        test = evaluate_student(cfg, trainer, module, tokenizer, dm, export_dir, output_dir / "eval")
        metrics.update(test)
        for lg in loggers:
            lg.log_metrics(test, step=int(trainer.global_step))
            lg.save()  # the CSV logger buffers rows until saved

    if trainer.is_global_zero:
        result = {
            **metrics,
            "weights": weights,
            "optimized_metric": cfg.get("optimized_metric"),
            "best_model_path": getattr(ckpt_cb, "best_model_path", None) or None,
            "last_model_path": _last_ckpt(ckpt_cb),
            "export_dir": str(export_dir) if export_dir else None,
            "train_seconds": round(elapsed, 2),
        }
        write_json(output_dir / "metrics.json", result)
    return metrics


def generation_options(cfg: DictConfig) -> dict[str, Any]:
    """How the student generates when train.py evaluates it (`eval.*`), as evaluate.py would."""
    ev = cfg.eval
    return {"max_new_tokens": int(ev.max_new_tokens), "stop": list(ev.stop), "batch_size": int(ev.batch_size)}


def loop_settings(cfg: DictConfig) -> dict[str, Any]:
    """The loop the student is evaluated in: the job's framework and retriever, `eval.mode`."""
    return {
        "framework": cfg.framework.name,
        "mode": str(cfg.eval.mode),
        "top_k": int(cfg.retriever.top_k),
        "max_steps": int(cfg.framework.max_steps),
        "max_passages": int(cfg.framework.max_passages),
        "batch_size": int(cfg.eval.batch_size),
    }


class ValidationAnswers:
    """The answer metrics of each validation: the student in the real loop on the first
    `eval.val_limit` dev questions, logged as val/em, val/f1, val/acc (rank 0 evaluates)."""

    def __init__(self, cfg: DictConfig, dm, out_dir: Path):
        self.cfg, self.dm, self.out_dir = cfg, dm, out_dir
        self.questions = None
        self.retriever = None
        self.calls = 0

    def __call__(self, model, tokenizer) -> dict[str, float]:
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank != 0:
            return {}
        from steper.data import load_questions
        from steper.evaluation.run import evaluate_generator
        from steper.generators.hf import HFGenerator
        from steper.retrieval import load_retriever

        cfg, ev = self.cfg, self.cfg.eval
        if self.questions is None:
            self.questions = load_questions(cfg.dataset, "dev")[: int(ev.val_limit)]
            self.retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)
        generator = HFGenerator.from_pretrained_objects(
            model, tokenizer, chat=bool(self.dm.use_chat), **generation_options(cfg)
        )
        self.calls += 1
        result = evaluate_generator(
            self.questions,
            self.retriever,
            generator,
            out_dir=self.out_dir / f"{self.calls:03d}",
            progress=False,
            **loop_settings(cfg),
        )
        return {k: float(result[k]) for k in ("em", "f1", "acc")}


def evaluate_student(
    cfg: DictConfig, trainer, module, tokenizer, dm, export_dir: Path | None, out_dir: Path
) -> dict:
    """Run the trained student through the multi-step loop on the test questions (eval.*), as
    `evaluate.py target=student target.path=<run dir>/student` would; returns test/em|f1|acc (%).

    The in-memory model is used (greedy, same rendering as the export), except under sharded
    strategies (FSDP, DeepSpeed ZeRO-3), where the gathered export is loaded instead.
    """
    from steper.data import load_questions
    from steper.evaluation.run import evaluate_generator, print_report
    from steper.generators.hf import HFGenerator
    from steper.retrieval import load_retriever, retriever_params

    ev = cfg.eval
    questions = load_questions(cfg.dataset, ev.split)
    if ev.limit is not None:
        questions = questions[: int(ev.limit)]
    opts = generation_options(cfg)
    sharded = type(trainer.strategy).__name__.startswith(("FSDP", "DeepSpeed"))
    if sharded and export_dir is not None:
        from steper.evaluation.targets import build_target

        generator = build_target({"name": "student", "path": str(export_dir), **opts}).generator
    else:
        generator = HFGenerator.from_pretrained_objects(
            module.model, tokenizer, chat=bool(dm.use_chat), **opts
        )
    log.info("evaluating the student on %d %s questions of %s", len(questions), ev.split, cfg.dataset.name)
    try:
        retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)
        result = evaluate_generator(
            questions,
            retriever,
            generator,
            out_dir=out_dir,
            progress=bool(ev.progress),
            **loop_settings(cfg),
            run_key={
                "dataset": cfg.dataset.name,
                "split": ev.split,
                "retriever": retriever_params(cfg.retriever),
            },
            run_info={
                "task": "train-eval",
                "run_dir": str(cfg.paths.output_dir),
                "step": int(trainer.global_step),
            },
        )
    finally:
        generator.close()
    print_report(result, title=f"{cfg.dataset.name} {ev.split} · student · {cfg.framework.name}/{ev.mode}")
    return {f"test/{k}": float(result[k]) for k in ("em", "f1", "acc")}


def _last_ckpt(ckpt_cb) -> str | None:
    if ckpt_cb is None or not getattr(ckpt_cb, "dirpath", None):
        return None
    last = Path(ckpt_cb.dirpath) / f"{ckpt_cb.CHECKPOINT_NAME_LAST}{ckpt_cb.FILE_EXTENSION}"
    return str(last) if last.exists() else None


def _name_of(node: Any) -> Any:
    if OmegaConf.is_config(node):
        return node.get("name")
    return node


def _drop_missing(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_missing(v) for k, v in obj.items() if v != "???"}
    if isinstance(obj, list):
        return [_drop_missing(v) for v in obj]
    return obj
