"""What every evaluation target shares: the `Target` record, tokenizer and model loading, the
vocabulary check, an exported student's metadata, and the generation options a target passes on."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steper.errors import SteperError

log = logging.getLogger(__name__)

TARGETS = ("student", "checkpoint", "hf", "openai", "oracle")
EXPORT_META = "steper_export.json"
ADAPTER_CONFIG = "adapter_config.json"
# Generation options every generating target passes to its generator.
GEN_KEYS = ("max_new_tokens", "stop", "temperature", "chat", "max_context", "prompt_cache", "stop_at_unit")
# Target settings that do not change the predictions (left out of the resume check).
RUNTIME_KEYS = frozenset(
    {
        "label",
        "device",
        "batch_size",
        "concurrency",
        "timeout_s",
        "max_retries",
        "backoff_base_s",
        "backoff_max_s",
    }
    | {"base_url", "api_key_env"}
)


@dataclass
class Target:
    """A loaded target: its generator, a short label, and what was loaded (for run.json)."""

    generator: Any
    label: str
    info: dict[str, Any]
    # whether the target gets the framework's few-shot demonstrations by default (ICL models do;
    # a distilled student and the oracle do not)
    demos: bool = False


def _plain(cfg: Any) -> dict[str, Any]:
    """A target section as a dict, keys left `???` dropped."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        full = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        return {k: v for k, v in full.items() if not OmegaConf.is_missing(cfg, k)}
    if isinstance(cfg, dict):
        return dict(cfg)
    raise SteperError(f"target config must be a mapping, got {type(cfg).__name__}")


def _need(opts: dict[str, Any], key: str, hint: str) -> str:
    value = opts.get(key)
    if value in (None, "", "???"):
        raise SteperError(f"target={opts.get('name')} needs target.{key}: {hint}")
    return str(value)


def _gen_opts(opts: dict[str, Any], batch_size: int) -> dict[str, Any]:
    out = {k: opts[k] for k in GEN_KEYS if k in opts}
    out["batch_size"] = int(opts.get("batch_size") or batch_size)
    return out


def _expand(path: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(path)))


def check_vocab(model: Any, tokenizer: Any, model_src: str, tokenizer_src: str) -> None:
    """A tokenizer with more tokens than the model has embedding rows belongs to another model."""
    emb = model.get_input_embeddings()
    rows = int(emb.weight.shape[0]) if emb is not None else None
    n = len(tokenizer)
    if rows is not None and n > rows:
        raise SteperError(
            f"tokenizer {tokenizer_src} has {n} tokens but model {model_src} has only {rows} embedding rows: "
            "the tokenizer belongs to another model. Use the tokenizer saved with the model (target.tokenizer=null) "
            "or the model it was trained with"
        )


def load_tokenizer(src: str | os.PathLike):
    from transformers import AutoTokenizer

    from steper.generators.hf import hub_offline
    from steper.models import resolve_model

    resolved = resolve_model(src)  # a registry model → its fetched folder
    path = _expand(resolved)
    name = str(path) if path.exists() else str(resolved)
    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=hub_offline())
    except (OSError, ValueError) as e:
        raise SteperError(f"cannot load tokenizer {src!r}: {e}") from None


def load_model(src: str | os.PathLike, dtype: str = "auto", device: str = "auto"):
    """(model, tokenizer) from a local directory or an HF id (hf.py's loader: offline-aware, clear errors)."""
    from steper.generators.hf import load_model_and_tokenizer

    return load_model_and_tokenizer(str(src), dtype=dtype, device=device)


def _wrap_hf(model: Any, tokenizer: Any, opts: dict[str, Any], batch_size: int, chat: Any = None):
    from steper.generators import build_generator

    gen = _gen_opts(opts, batch_size)
    if chat is not None:
        gen["chat"] = chat
    generator = build_generator({"name": "hf", **gen}, model=model, tokenizer=tokenizer)
    generator._owns_model = True  # loaded here: `close` may free the GPU memory
    return generator


def _tokenizer_for(opts: dict[str, Any], default_src: str | os.PathLike, default_tok: Any = None):
    """The tokenizer a target uses: `target.tokenizer` if set, else the one loaded with the model."""
    src = opts.get("tokenizer")
    if src:
        return load_tokenizer(src), str(src)
    if default_tok is not None:
        return default_tok, str(default_src)
    return load_tokenizer(default_src), str(default_src)


def _has_tokenizer(d: Path) -> bool:
    return any((d / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def read_export_meta(d: Path) -> dict[str, Any]:
    path = d / EXPORT_META
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise SteperError(f"{path}: malformed JSON ({e})") from None
    return meta if isinstance(meta, dict) else {}


def _resolve_base(base: str, where: str) -> str:
    """A base model reference: an existing local path (expanded) or an HF id; a missing path is an error."""
    from steper.generators.hf import _looks_like_path
    from steper.models import resolve_model

    base = resolve_model(base)  # a registry model → its fetched folder
    path = _expand(base)
    if path.exists():
        return str(path)
    if _looks_like_path(base) or base == "tiny":
        raise SteperError(
            f"base model {base!r} (from {where}) not found. Give it with target.base_model=<model dir or HF id>"
            + (" (the tiny model's folder lies under <paths.cache_dir>/tiny/)" if "tiny" in base else "")
        )
    return base


def _label(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if p not in (None, "", False))
    return text.replace(",", "_").replace("\n", " ")
