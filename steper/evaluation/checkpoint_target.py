"""The `checkpoint` target: a Lightning `.ckpt` of train.py put back on its base model (full
weights strictly; LoRA adapters rebuilt from the run's settings and merged)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.evaluation import target_loading as base

log = logging.getLogger(__name__)


def _run_dir_of(ckpt: Path) -> Path:
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.load(path)
        return OmegaConf.to_container(cfg, resolve=False)  # interpolations (hydra:...) left as text
    except Exception as e:  # a broken run config only loses the defaults it would give
        log.warning("cannot read %s: %s", path, e)
        return {}


def read_checkpoint_state(path: Path) -> dict[str, Any]:
    """The `model.` weights of a Lightning checkpoint, prefix removed."""
    import pickle

    import torch

    if path.is_dir():
        raise SteperError(
            f"{path} is a folder (a DeepSpeed checkpoint?): convert it to one file first with "
            "lightning.pytorch.utilities.deepspeed.convert_zero_checkpoint_to_fp32_state_dict, "
            "or evaluate the exported student (target=student)"
        )
    if not path.is_file():
        raise SteperError(f"checkpoint not found: {path}")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # Lightning checkpoints may hold hyper-parameters as Python objects; a file the user
            # points at is trusted as Lightning itself trusts it.
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise SteperError(f"cannot read checkpoint {path}: {e}") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise SteperError(f"checkpoint {path} holds no state_dict")
    model_state = {
        k[len("model.") :]: v for k, v in state.items() if isinstance(k, str) and k.startswith("model.")
    }
    if not model_state:
        some = ", ".join(list(map(str, state))[:5])
        raise SteperError(
            f"checkpoint {path} has no `model.` weights (keys: {some}): not a steper training checkpoint"
        )
    return model_state


def _keys_preview(keys: list[str], n: int = 5) -> str:
    keys = sorted(keys)
    more = f" … ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _mismatch(
    ckpt: Path, model_src: str, missing: list[str], unexpected: list[str], extra: str = ""
) -> SteperError:
    parts = []
    if missing:
        parts.append(f"missing keys {_keys_preview(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_keys_preview(unexpected)}")
    if extra:
        parts.append(extra)
    return SteperError(
        f"checkpoint {ckpt} does not match model {model_src}: {'; '.join(parts)}. "
        "Was it trained from another base model? Set target.base_model to the model it was trained from"
    )


def _load_into(model: Any, state: dict[str, Any], ckpt: Path, model_src: str, lora: bool) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        lines = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
        detail = "; ".join(lines[:3]) + (f" … ({len(lines)} in all)" if len(lines) > 3 else "")
        raise _mismatch(ckpt, model_src, [], [], detail or str(e).splitlines()[0]) from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing:  # a tied weight (lm_head = embed_tokens) is loaded through its twin
        own = model.state_dict()
        loaded = {own[k].data_ptr() for k in state if k in own}
        missing = [k for k in missing if own[k].data_ptr() not in loaded]
    if lora:  # only the trainable weights are saved: every adapter weight must be there
        missing = [k for k in missing if "lora_" in k or "modules_to_save" in k]
    if missing or unexpected:
        raise _mismatch(ckpt, model_src, missing, unexpected)


def _lora_config(opts: dict[str, Any], run_dir: Path, run_cfg: dict[str, Any]) -> tuple[str, Any]:
    """Where the LoRA settings of a checkpoint come from: (source, dict | peft config)."""
    if opts.get("peft"):
        return "target.peft", dict(opts["peft"])
    adapter = run_dir / "student" / base.ADAPTER_CONFIG
    if adapter.is_file():
        from peft import LoraConfig

        return str(adapter), LoraConfig.from_pretrained(str(adapter.parent))
    peft = run_cfg.get("peft") if isinstance(run_cfg.get("peft"), dict) else None
    if peft and peft.get("enabled"):
        return f"{run_dir / '.hydra' / 'config.yaml'}", {k: v for k, v in peft.items() if k != "enabled"}
    raise SteperError(
        "the checkpoint holds LoRA weights but their settings are unknown: give the ones used in training, "
        "e.g. target.peft='{r: 16, lora_alpha: 32, target_modules: all-linear}'"
    )


def _recorded_base(meta: dict, run_cfg: dict, run_dir: Path) -> tuple[str, str] | None:
    """The base model the run says it trained from, and where it says so (None: it does not say)."""
    if meta.get("base_model"):
        return str(meta["base_model"]), str(run_dir / "student" / base.EXPORT_META)
    model = run_cfg.get("model")
    name = model.get("name_or_path") if isinstance(model, dict) else None
    if name and name != "tiny" and "${" not in str(name):
        return str(name), str(run_dir / ".hydra" / "config.yaml")
    return None


def _same_model(a: str, b: str) -> bool:
    pa, pb = Path(os.path.expanduser(a)), Path(os.path.expanduser(b))
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a == b


def load_checkpoint(opts: dict[str, Any], batch_size: int) -> base.Target:
    """A Lightning checkpoint of train.py on its base model (full fine-tuning or LoRA)."""
    ckpt = base._expand(
        base._need(opts, "ckpt_path", "the Lightning checkpoint, e.g. <train run dir>/checkpoints/last.ckpt")
    )
    state = read_checkpoint_state(ckpt)
    run_dir = _run_dir_of(ckpt)
    run_cfg = _run_config(run_dir)
    meta = base.read_export_meta(run_dir / "student")

    base_ref, where = opts.get("base_model"), "target.base_model"
    recorded = _recorded_base(meta, run_cfg, run_dir)
    if not base_ref and recorded is not None:
        base_ref, where = recorded
    if not base_ref:
        raise SteperError(
            f"target=checkpoint needs target.base_model: the model {ckpt.name} was trained from "
            "(an HF id or local directory; for model=tiny the folder under <paths.cache_dir>/tiny/)"
        )
    base_src = base._resolve_base(str(base_ref), where)
    if opts.get("base_model") and recorded is not None and not _same_model(recorded[0], base_src):
        # the checkpoint holds weights trained on the recorded base: another base (or its tokenizer) is
        # another experiment, allowed on purpose, never silently
        log.warning(
            "target.base_model=%s is not the base this run was trained from (%s, recorded in %s): the "
            "checkpoint's weights are evaluated on %s; the run card records both",
            opts["base_model"], recorded[0], recorded[1], base_src,
        )  # fmt: skip
    model, base_tok = base.load_model(base_src, dtype=opts.get("dtype", "auto"), device=opts.get("device", "auto"))
    tokenizer, tok_src = base._tokenizer_for(opts, base_src, base_tok)
    base.check_vocab(model, tokenizer, base_src, tok_src)

    lora = any(".lora_" in k or k.startswith("lora_") for k in state)
    info: dict[str, Any] = {
        "kind": "checkpoint",
        "ckpt_path": str(ckpt),
        "base_model": base_src,
        "adapter": lora,
    }
    if recorded is not None:
        info["recorded_base_model"] = recorded[0]
    if lora:
        from steper.distill.models import apply_lora

        source, lcfg = _lora_config(opts, run_dir, run_cfg)
        if isinstance(lcfg, dict):
            model = apply_lora(model, lcfg)
        else:
            from peft import get_peft_model

            lcfg.inference_mode = False
            model = get_peft_model(model, lcfg)
        info["peft_from"] = source
        _load_into(model, state, ckpt, base_src, lora=True)
        model = model.merge_and_unload()
    else:
        _load_into(model, state, ckpt, base_src, lora=False)
    model.eval()
    generator = base._wrap_hf(model, tokenizer, opts, batch_size)
    label = opts.get("label") or base._label(run_dir.name, ckpt.stem)
    return base.Target(generator, label, info, demos=False)
