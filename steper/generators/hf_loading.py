"""Loading a transformers causal LM and its tokenizer for `HFGenerator`.

A local directory or an HF id; `local_files_only` follows HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE,
so offline runs never touch the network. A path that does not exist is a SteperError naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

from steper.errors import SteperError

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _truthy(v: str | None) -> bool:
    return (v or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether the HF hub is off (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set, now or at import)."""
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - huggingface_hub always comes with transformers
        return False


def _looks_like_path(s: str) -> bool:
    """A filesystem path rather than an HF id (`org/name` or `name`)."""
    return os.path.isabs(s) or s.startswith((".", "~")) or s.count("/") > 1 or s.endswith("/") or "\\" in s


def resolve_device(device: str = "auto") -> str:
    import torch

    device = str(device or "auto")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SteperError(f"teacher.device={device} but no CUDA device is available; use device=cpu or auto")
    return device


def resolve_dtype(dtype: str, device: str):
    """auto = bf16 on GPU (fp16 where bf16 is unsupported), fp32 on CPU."""
    import torch

    dtype = str(dtype or "auto")
    if dtype not in DTYPES:
        raise SteperError(f"teacher.dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


def load_model_and_tokenizer(model_name_or_path: str, dtype: str = "auto", device: str = "auto"):
    """Load a causal LM and its tokenizer (local dir or HF id), on `device`, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steper.models import resolve_model

    if not model_name_or_path:
        raise SteperError("teacher.model_name_or_path is not set: give a local model directory or an HF id")
    src = str(resolve_model(model_name_or_path))  # a registry model → its fetched folder
    expanded = os.path.expanduser(src)
    if os.path.exists(expanded):
        src = expanded
        if not Path(src, "config.json").is_file():
            raise SteperError(f"model directory {src} has no config.json: is it a saved transformers model?")
    elif _looks_like_path(src):
        raise SteperError(f"model path does not exist: {src} (fix teacher.model_name_or_path)")
    offline = hub_offline()
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    from safetensors import SafetensorError

    try:
        tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dt, local_files_only=offline)
    except SafetensorError as e:
        raise SteperError(
            f"{src}: a weights file is corrupt or truncated ({e}): re-export the model (train.py writes "
            "<run dir>/student) or copy it again"
        ) from None
    except OSError as e:
        if Path(str(src)).is_dir():
            raise SteperError(f"cannot load the model in {src} ({e}): its files are incomplete or corrupt") from None
        where = (
            "offline mode (HF_HUB_OFFLINE=1) only finds models already in the HF cache"
            if offline
            else "check the name, or download it first"
        )
        raise SteperError(f"cannot load model {src!r}: not a local directory, and {where} ({e})") from None
    model.to(dev)
    model.eval()
    return model, tokenizer
