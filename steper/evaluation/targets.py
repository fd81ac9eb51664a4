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
GEN_KEYS = ("max_new_tokens", "stop", "temperature", "chat", "max_context")
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


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------------


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
        check_vocab(model, tokenizer, base_src, tok_src)
        try:
            model = PeftModel.from_pretrained(model, str(d))
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise SteperError(f"cannot load the LoRA adapter in {d} onto {base_src}: {e}") from None
        if opts.get("merge", True):
            model = model.merge_and_unload()
        model.eval()
        info.update(adapter=True, base_model=base_src, merged=bool(opts.get("merge", True)))
        model_src = f"{base_src} + {d}"
    elif (d / "config.json").is_file():
        model, own_tok = load_model(d, dtype=dtype, device=device)
        tokenizer, tok_src = _tokenizer_for(opts, d, own_tok)
        check_vocab(model, tokenizer, str(d), tok_src)
        info.update(adapter=False, base_model=meta.get("base_model"))
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
    adapter = run_dir / "student" / ADAPTER_CONFIG
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


def load_checkpoint(opts: dict[str, Any], batch_size: int) -> Target:
    """A Lightning checkpoint of train.py on its base model (full fine-tuning or LoRA)."""
    ckpt = _expand(
        _need(opts, "ckpt_path", "the Lightning checkpoint, e.g. <train run dir>/checkpoints/last.ckpt")
    )
    state = read_checkpoint_state(ckpt)
    run_dir = _run_dir_of(ckpt)
    run_cfg = _run_config(run_dir)
    meta = read_export_meta(run_dir / "student")

    base_ref, where = opts.get("base_model"), "target.base_model"
    if not base_ref and meta.get("base_model"):
        base_ref, where = meta["base_model"], str(run_dir / "student" / EXPORT_META)
    if not base_ref:
        name = (
            (run_cfg.get("model") or {}).get("name_or_path")
            if isinstance(run_cfg.get("model"), dict)
            else None
        )
        if name and name != "tiny" and "${" not in str(name):
            base_ref, where = name, str(run_dir / ".hydra" / "config.yaml")
    if not base_ref:
        raise SteperError(
            f"target=checkpoint needs target.base_model: the model {ckpt.name} was trained from "
            "(an HF id or local directory; for model=tiny the folder under <paths.cache_dir>/tiny/)"
        )
    base_src = _resolve_base(str(base_ref), where)
    model, base_tok = load_model(base_src, dtype=opts.get("dtype", "auto"), device=opts.get("device", "auto"))
    tokenizer, tok_src = _tokenizer_for(opts, base_src, base_tok)
    check_vocab(model, tokenizer, base_src, tok_src)

    lora = any(".lora_" in k or k.startswith("lora_") for k in state)
    info: dict[str, Any] = {
        "kind": "checkpoint",
        "ckpt_path": str(ckpt),
        "base_model": base_src,
        "adapter": lora,
    }
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
    generator = _wrap_hf(model, tokenizer, opts, batch_size)
    label = opts.get("label") or _label(run_dir.name, ckpt.stem)
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

    return Target(
        build_generator({"name": "oracle"}), opts.get("label") or "oracle", {"kind": "oracle"}, demos=False
    )


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
        "oracle": (),
    }.get(str(opts.get("name")), tuple(opts))
    gen = () if opts.get("name") == "oracle" else GEN_KEYS
    return {"name": opts.get("name"), **{k: opts.get(k) for k in (*keep, *gen) if k not in RUNTIME_KEYS}}
