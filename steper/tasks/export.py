"""The trained student as a folder `evaluate.py target=student` loads: `save_pretrained` (full
model or LoRA adapter) + tokenizer + `steper_export.json` (how it was trained)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXPORT_META = "steper_export.json"


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
    write_json(out_dir / EXPORT_META, meta)
    return out_dir


def _base_model_name(model) -> str:
    peft_cfg = getattr(model, "peft_config", None)
    if peft_cfg:
        first = next(iter(peft_cfg.values()))
        if getattr(first, "base_model_name_or_path", None):
            return str(first.base_model_name_or_path)
    return str(getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", ""))


def export_meta(cfg: Any, job: Any, metrics: dict[str, float]) -> dict[str, Any]:
    """`steper_export.json`: how the student was trained (what `target=student` needs to load and
    label it)."""
    from steper.plain import to_plain

    dm = job.dm
    peft = to_plain(cfg.peft) if cfg.peft.get("enabled") else None
    return {
        "base_model": _base_model_name(job.module.model),
        "model": cfg.model.name,
        "method": cfg.method.name,
        "weighting": cfg.weighting.get("name"),
        "peft": peft,
        "adapter": peft is not None,
        "dataset": cfg.dataset.name,
        "teacher": _name_of(cfg.get("teacher")),
        "framework": _name_of(cfg.get("framework")),
        "data_dir": str(dm.data_dir),
        "chat": bool(dm.use_chat),
        "max_length": int(dm.max_length),
        "loss_on_prefix": bool(dm.loss_on_prefix),
        "global_step": int(job.trainer.global_step),
        "weights": job.module.weighting.log_dict(),
        "metrics": metrics,
        "seed": int(cfg.seed),
        "run_dir": str(job.output_dir),
    }


def _name_of(node: Any) -> Any:
    return node.get("name") if hasattr(node, "get") else node
