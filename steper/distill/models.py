"""The student: an HF causal LM (hub id, local directory, or the offline `tiny` model), optionally
with LoRA adapters (base frozen) and gradient checkpointing."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from steper.errors import SteperError

log = logging.getLogger(__name__)

DTYPES = {
    "auto": "auto",
    "float32": "float32",
    "fp32": "float32",
    "32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "16": "float16",
}
LORA_KEYS = {
    "r": "r",
    "alpha": "lora_alpha",
    "lora_alpha": "lora_alpha",
    "dropout": "lora_dropout",
    "lora_dropout": "lora_dropout",
}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _looks_local(name: str) -> bool:
    """A filesystem path rather than a hub id (`org/name`)."""
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or name in (".", "..")
        or name.count("/") > 1
        or "\\" in name
    )


def resolve_dtype(dtype: str | Any):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().replace("torch.", "")
    if key not in DTYPES:
        raise SteperError(f"unknown dtype {dtype!r}; use one of {sorted(set(DTYPES))}")
    value = DTYPES[key]
    return value if value == "auto" else getattr(torch, value)


def load_student(
    name_or_path: str,
    *,
    dtype: str = "auto",
    gradient_checkpointing: bool = False,
    peft: dict | None = None,
    tiny: dict | None = None,
    texts_fn: Callable[[], Iterable[str]] | None = None,
    cache_dir: str | os.PathLike | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
):
    """Load (model, tokenizer).

    `name_or_path`: a hub id (read from the local cache only when HF_HUB_OFFLINE=1), a local
    directory, a registry model fetched by `python -m steper.models fetch` (steper/models/), or
    `tiny` (built from `texts_fn()` into `cache_dir` by `load_or_build_tiny(**tiny)`).
    `dtype`: auto (the checkpoint's) | float32 | bfloat16 | float16. For full fine-tuning under
    `precision=bf16-mixed` load float32 (bf16 weights lose small updates).
    `peft`: `{"r", "alpha", "dropout", "target_modules", ...}` → LoRA (other keys go to
    `peft.LoraConfig`); the base model is frozen. The tokenizer gets a pad token (EOS) if missing.
    """
    if peft is not None and not dict(peft).get("enabled", True):
        peft = None  # `peft: {enabled: false}` (conf/peft/none.yaml) = full fine-tuning
    if name_or_path == "tiny":
        source, kwargs = _tiny_source(tiny, texts_fn, cache_dir), {}
    else:
        from steper.models import resolve_model

        name_or_path = resolve_model(name_or_path)  # a registry model → its fetched folder
        source, kwargs = _source(name_or_path, cache_dir)
    model, tokenizer = _from_pretrained(
        name_or_path,
        source,
        kwargs,
        dtype=dtype,
        attn_implementation=attn_implementation,
        trust_remote_code=trust_remote_code,
    )
    _set_pad_token(model, tokenizer, name_or_path)
    if gradient_checkpointing:
        _enable_checkpointing(model, lora=bool(peft))
    if peft:
        model = apply_lora(model, peft)
    return model, tokenizer


def _tiny_source(tiny: dict | None, texts_fn: Callable[[], Iterable[str]] | None, cache_dir) -> Path:
    from steper.distill.tiny import load_or_build_tiny

    if texts_fn is None:
        raise SteperError("model=tiny needs texts to train its tokenizer on (texts_fn)")
    cache = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "steper" / "tiny"
    return load_or_build_tiny(cache, lambda: list(texts_fn()), **(tiny or {}))


def _source(name_or_path: str, cache_dir) -> tuple[str | Path, dict[str, Any]]:
    """What `from_pretrained` loads (a local folder as a Path, else a hub id) and its extra kwargs."""
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.exists():
        if not (path / "config.json").is_file():
            raise SteperError(f"model directory {path} has no config.json: not a saved HF model")
        return path, {}
    if _looks_local(str(name_or_path)):
        raise SteperError(f"model path {name_or_path} does not exist (a local directory was expected)")
    return str(name_or_path), ({"cache_dir": str(cache_dir)} if cache_dir is not None else {})


def _from_pretrained(
    name_or_path: str, source: str | Path, kwargs: dict, *, dtype, attn_implementation, trust_remote_code
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_only = _offline() or isinstance(source, Path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, local_files_only=local_only, trust_remote_code=trust_remote_code, **kwargs
        )
        model_kwargs: dict[str, Any] = {"dtype": resolve_dtype(dtype), **kwargs}
        if attn_implementation:
            model_kwargs["attn_implementation"] = attn_implementation
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=local_only, trust_remote_code=trust_remote_code, **model_kwargs
        )
    except OSError as e:
        hint = (
            f"HF_HUB_OFFLINE=1 and {name_or_path} is not in the local HF cache: download it first "
            f"(`huggingface-cli download {name_or_path}`) or point the model at a local directory"
            if local_only and not isinstance(source, Path)
            else str(e)
        )
        raise SteperError(f"cannot load model {name_or_path}: {hint}") from None
    return model, tokenizer


def _set_pad_token(model, tokenizer, name_or_path: str) -> None:
    """The tokenizer pads with EOS when it has no pad token; the model's configs learn the pad id."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SteperError(f"tokenizer of {name_or_path} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def _enable_checkpointing(model, lora: bool) -> None:
    ckpt_kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt_kwargs)
    model.config.use_cache = False
    if lora:
        model.enable_input_require_grads()


def apply_lora(model, peft: dict):
    """Wrap `model` with LoRA adapters (peft.get_peft_model); base weights frozen."""
    from peft import LoraConfig, get_peft_model

    cfg: dict[str, Any] = {}
    for key, value in dict(peft).items():
        if key in ("enabled", "name", "_target_"):
            continue
        cfg[LORA_KEYS.get(key, key)] = (
            list(value) if key == "target_modules" and not isinstance(value, str) else value
        )
    cfg.setdefault("r", 16)
    cfg.setdefault("lora_alpha", 32)
    cfg.setdefault("lora_dropout", 0.05)
    if cfg.get("target_modules") in (None, [], "all"):
        cfg["target_modules"] = "all-linear"
    try:
        config = LoraConfig(task_type="CAUSAL_LM", **cfg)
        with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing`
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(model, config)
    except (TypeError, ValueError) as e:
        raise SteperError(f"bad LoRA config {cfg}: {e}") from None
    trainable, total = count_parameters(model)
    log.info(
        "LoRA: %d trainable of %d parameters (%.2f%%)", trainable, total, 100 * trainable / max(total, 1)
    )
    return model


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
