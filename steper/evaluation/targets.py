"""What evaluate.py evaluates (the `target` config group), each made into a `Generator`.

- `student`: an exported student (`<train run>/student/`). A full model loads with
  `from_pretrained(dir)`; a LoRA adapter goes onto its base model (`target.base_model`, else
  `steper_export.json`'s `base_model`, else the adapter's `base_model_name_or_path`) via peft and
  is merged (`merge: true`). Prompts are rendered as in training (`steper_export.json`'s `chat`).
- `checkpoint`: a Lightning `.ckpt` of train.py on its base model (`target.base_model`; null =
  read from the run folder). A full model's `model.` weights load strictly; LoRA adapters
  (checkpoints keep only trainable weights) are rebuilt from `target.peft` (or the run's
  adapter_config.json / .hydra/config.yaml), loaded with `strict=False` with every adapter weight
  required, and merged. Other keys or shapes: "checkpoint … does not match model …".
- `hf`: any HF id or local model directory.
- `openai`: an OpenAI-compatible endpoint (the teacher, untrained baselines).
- `oracle`: the gold-chain generator (the retrieval upper bound; tests).

Every HF-backed target ends in `HFGenerator.from_pretrained_objects` through `build_generator`,
with one check first: a tokenizer whose vocabulary is larger than the model's embedding matrix
(a tokenizer of another model) is a SteperError, not an index error deep inside generation.

`steper.config.GeneratorConfig` is the schema of the `target` section; each target reads its own fields.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.evaluation.checkpoint_target import load_checkpoint
from steper.evaluation.target_loading import (
    ADAPTER_CONFIG,
    EXPORT_META,
    GEN_KEYS,
    RUNTIME_KEYS,
    TARGETS,
    Target,
    _expand,
    _has_tokenizer,
    _label,
    _need,
    _resolve_base,
    _tokenizer_for,
    _wrap_hf,
    check_vocab,
    load_model,
    read_export_meta,
)
from steper.plain import to_plain

log = logging.getLogger(__name__)


def _plain(cfg: Any) -> dict[str, Any]:
    """A target section as a dict, keys left `???` dropped."""
    opts = to_plain(cfg)
    if not isinstance(opts, dict):
        raise SteperError(f"target config must be a mapping, got {type(cfg).__name__}")
    return opts


def load_student(opts: dict[str, Any], batch_size: int) -> Target:
    """An exported student directory: a full model, or a LoRA adapter on its base model."""
    d = _expand(_need(opts, "path", "the exported student folder, e.g. target.path=<train run dir>/student"))
    if not d.is_dir():
        raise SteperError(f"student directory not found: {d} (train.py exports to <run dir>/student/)")
    meta = read_export_meta(d)
    if not meta:
        log.warning("%s has no %s: evaluating it as a plain saved model", d, EXPORT_META)
    dtype, device = opts.get("dtype", "auto"), opts.get("device", "auto")
    info: dict[str, Any] = {"kind": "student", "path": str(d), "export": meta}
    if (d / ADAPTER_CONFIG).is_file():
        from peft import PeftModel

        adapter_cfg = json.loads((d / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        base_ref = (
            opts.get("base_model") or meta.get("base_model") or adapter_cfg.get("base_model_name_or_path")
        )
        if not base_ref:
            raise SteperError(
                f"{d} holds a LoRA adapter but names no base model: set target.base_model=<model>"
            )
        where = "target.base_model" if opts.get("base_model") else f"{d / EXPORT_META}"
        base_src = _resolve_base(str(base_ref), where)
        model, base_tok = load_model(base_src, dtype=dtype, device=device)
        tok_default = d if _has_tokenizer(d) else base_src
        tokenizer, tok_src = _tokenizer_for(opts, tok_default, None if _has_tokenizer(d) else base_tok)
        if not _has_tokenizer(d) and not opts.get("tokenizer"):
            # train.py saves the tokenizer with every export: a folder without one was copied or trimmed
            log.warning(
                "%s has no tokenizer files: using the base model's tokenizer (%s), recorded in the run card; "
                "set target.tokenizer=<folder> if the student was trained with another", d, base_src,
            )  # fmt: skip
        check_vocab(model, tokenizer, base_src, tok_src)
        from safetensors import SafetensorError

        try:
            model = PeftModel.from_pretrained(model, str(d))
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as e:
            raise SteperError(f"cannot load the LoRA adapter in {d} onto {base_src}: {e}") from None
        if opts.get("merge", True):
            model = model.merge_and_unload()
        model.eval()
        info.update(adapter=True, base_model=base_src, merged=bool(opts.get("merge", True)), tokenizer=tok_src)
        model_src = f"{base_src} + {d}"
    elif (d / "config.json").is_file():
        model, own_tok = load_model(d, dtype=dtype, device=device)
        tokenizer, tok_src = _tokenizer_for(opts, d, own_tok)
        check_vocab(model, tokenizer, str(d), tok_src)
        info.update(adapter=False, base_model=meta.get("base_model"), tokenizer=tok_src)
        model_src = str(d)
    else:
        raise SteperError(f"{d} holds neither a model (config.json) nor a LoRA adapter ({ADAPTER_CONFIG})")
    chat = opts.get("chat", "auto")
    if str(chat).lower() == "auto" and isinstance(meta.get("chat"), bool):
        chat = meta["chat"]  # render prompts the way the student was trained
    generator = _wrap_hf(model, tokenizer, opts, batch_size, chat=chat)
    info["model"] = model_src
    label = opts.get("label") or _label(meta.get("model"), meta.get("method"), meta.get("weighting"))
    label = label or _label(d.parent.name if d.name == "student" else d.name) or "student"
    return Target(generator, label, info, demos=False)


def load_hf(opts: dict[str, Any], batch_size: int) -> Target:
    src = _need(opts, "model_name_or_path", "a local model directory or an HF id")
    model, own_tok = load_model(src, dtype=opts.get("dtype", "auto"), device=opts.get("device", "auto"))
    tokenizer, tok_src = _tokenizer_for(opts, src, own_tok)
    check_vocab(model, tokenizer, src, tok_src)
    generator = _wrap_hf(model, tokenizer, opts, batch_size)
    label = opts.get("label") or _label(Path(src.rstrip("/")).name) or "hf"
    return Target(generator, label, {"kind": "hf", "model": src, "tokenizer": tok_src}, demos=True)


def load_openai(opts: dict[str, Any], batch_size: int) -> Target:
    from steper.generators import build_generator
    from steper.generators.openai_compat import OPTS

    teacher = {k: opts[k] for k in OPTS if k in opts}
    generator = build_generator({"name": "openai", **teacher}, section="target")  # errors name target.*
    label = opts.get("label") or _label(opts.get("model") or "openai")
    info = {"kind": "openai", "base_url": opts.get("base_url"), "model": opts.get("model")}
    return Target(generator, label, info, demos=True)


def load_oracle(opts: dict[str, Any], batch_size: int) -> Target:
    from steper.generators import build_generator

    policy = opts.get("policy") or "ideal"
    generator = build_generator({"name": "oracle", "policy": policy})
    return Target(generator, opts.get("label") or "oracle", {"kind": "oracle", "policy": policy}, demos=False)


_LOADERS = {
    "student": load_student,
    "checkpoint": load_checkpoint,
    "hf": load_hf,
    "openai": load_openai,
    "oracle": load_oracle,
}


def build_target(cfg: Any, *, batch_size: int = 32) -> Target:
    """Load the configured target (a `target` section) as a generator. `batch_size` is the
    hf-backed micro-batch when `target.batch_size` is null."""
    opts = _plain(cfg)
    name = opts.get("name")
    if name not in _LOADERS:
        raise SteperError(f"unknown target {name!r}: use target={' | target='.join(TARGETS)}")
    return _LOADERS[name](opts, int(batch_size))


def target_key(cfg: Any) -> dict[str, Any]:
    """The target settings the predictions depend on (the resume check compares them)."""
    opts = _plain(cfg)
    keep = {
        "student": ("path", "merge", "base_model", "tokenizer", "dtype"),
        "checkpoint": ("ckpt_path", "base_model", "peft", "tokenizer", "dtype"),
        "hf": ("model_name_or_path", "tokenizer", "dtype"),
        "openai": ("model", "api", "tokenizer", "extra_body"),
        "oracle": ("policy",),
    }.get(str(opts.get("name")), tuple(opts))
    gen = () if opts.get("name") == "oracle" else GEN_KEYS
    return {"name": opts.get("name"), **{k: opts.get(k) for k in (*keep, *gen) if k not in RUNTIME_KEYS}}
