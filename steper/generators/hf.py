"""A local transformers causal LM as a generator (teacher or student).

- Loaded from a local directory or an HF id; `local_files_only` follows HF_HUB_OFFLINE /
  TRANSFORMERS_OFFLINE, so offline runs never touch the network. A path that does not exist is a
  SteperError naming it. An already-loaded pair (evaluation right after training) goes in through
  `HFGenerator.from_pretrained_objects(model, tokenizer, **opts)`; that model is left where it
  is (device, dtype) and its train/eval mode is restored after each call.
- Batched: requests are tokenised, sorted by length (less padding), split into micro-batches of
  `batch_size`, LEFT-padded by hand (the tokenizer is never mutated) with an attention mask, and
  generated with the KV cache; results come back in the request order. transformers derives the
  position ids from the attention mask, so a padded batch generates what each prompt would alone.
- Greedy unless `temperature > 0`. Stop strings cut the decoded text at the first occurrence; they
  are also given to `generate(stop_strings=…)` so generation ends early. (A stop string can then
  match across the prompt/continuation boundary and end a row a little early; the cut is exact.)
- The chat template is used when the tokenizer has one (`chat: auto`), or forced on/off. Rendered
  chat text already holds the template's special tokens, so it is tokenised without adding any;
  plain text gets the tokenizer's usual ones (e.g. Llama's BOS). `encode` is that rule.
- `fits(rendered)`: prompt tokens + `max_new_tokens` <= `max_context` (default: the model config's
  `max_position_embeddings`).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.generators.base import GenerationRequest, Generator, chat_setting, cut_at_stop, pick
from steper.reasoning import prompts

log = logging.getLogger(__name__)

GEN_OPTS = ("max_new_tokens", "stop", "temperature", "chat", "batch_size", "max_context")
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

    if not model_name_or_path:
        raise SteperError("teacher.model_name_or_path is not set: give a local model directory or an HF id")
    src = str(model_name_or_path)
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
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dt, local_files_only=offline)
    except OSError as e:
        where = (
            "offline mode (HF_HUB_OFFLINE=1) only finds models already in the HF cache"
            if offline
            else "check the name, or download it first"
        )
        raise SteperError(f"cannot load model {src!r}: not a local directory, and {where} ({e})") from None
    model.to(dev)
    model.eval()
    return model, tokenizer


class HFGenerator(Generator):
    name = "hf"

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_new_tokens: int = 64,
        stop: Any = ("\n",),
        temperature: float = 0.0,
        chat: Any = "auto",
        batch_size: int = 8,
        max_context: int | None = None,
        owns_model: bool = False,
    ):
        super().__init__(max_new_tokens=max_new_tokens, stop=stop, temperature=temperature)
        if int(batch_size) < 1:
            raise SteperError(f"teacher.batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        setting = chat_setting(chat)
        if setting is True and not getattr(tokenizer, "chat_template", None):
            raise SteperError("chat=true but the tokenizer has no chat template; use chat=auto or false")
        self.chat = prompts.uses_chat(tokenizer, setting)
        self.max_context = int(max_context) if max_context else self._model_context()
        self._owns_model = owns_model
        self._stop_in_generate: bool | None = None if self.stop else False  # None = not tried yet
        self._eos_ids = self._eos_token_ids()
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(model.generation_config, "pad_token_id", None)
        if pad is None:
            pad = self._eos_ids[0] if self._eos_ids else 0
        self._pad_id = int(pad[0] if isinstance(pad, list | tuple) else pad)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, opts: dict[str, Any], model=None, tokenizer=None) -> HFGenerator:
        gen_opts = pick(opts, GEN_OPTS)
        if model is not None or tokenizer is not None:
            if model is None or tokenizer is None:
                raise SteperError("an already-loaded hf generator needs both model= and tokenizer=")
            return cls.from_pretrained_objects(model, tokenizer, **gen_opts)
        return cls.from_pretrained(
            opts.get("model_name_or_path"),
            dtype=opts.get("dtype", "auto"),
            device=opts.get("device", "auto"),
            **gen_opts,
        )

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str, dtype: str = "auto", device: str = "auto", **opts: Any
    ) -> HFGenerator:
        model, tokenizer = load_model_and_tokenizer(model_name_or_path, dtype=dtype, device=device)
        log.info("hf generator: %s on %s (%s)", model_name_or_path, model.device, model.dtype)
        return cls(model, tokenizer, owns_model=True, **opts)

    @classmethod
    def from_pretrained_objects(cls, model, tokenizer, **opts: Any) -> HFGenerator:
        """Wrap an already-loaded model + tokenizer (left on their device; not closed by `close`)."""
        return cls(model, tokenizer, owns_model=False, **opts)

    def _model_context(self) -> int:
        cfg = self.model.config
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        n = getattr(text_cfg, "max_position_embeddings", None) or getattr(
            cfg, "max_position_embeddings", None
        )
        return int(n) if n else 1 << 30

    def _eos_token_ids(self) -> list[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is None:
            return []
        return [int(e) for e in eos] if isinstance(eos, list | tuple) else [int(eos)]

    # -- what the model sees ---------------------------------------------------------------------
    def encode(self, rendered: str) -> list[int]:
        """Token ids of a rendered prompt (chat text already holds its special tokens)."""
        return list(self.tokenizer(rendered, add_special_tokens=not self.chat)["input_ids"])

    def fits(self, rendered: str) -> bool:
        return len(self.encode(rendered)) + self.max_new_tokens <= self.max_context

    # -- generation ------------------------------------------------------------------------------
    def _generation_config(self):
        gc = copy.deepcopy(self.model.generation_config)
        gc.max_new_tokens = self.max_new_tokens
        gc.use_cache = True
        gc.pad_token_id = self._pad_id
        if self._eos_ids:
            gc.eos_token_id = self._eos_ids if len(self._eos_ids) > 1 else self._eos_ids[0]
        if self.temperature > 0:
            gc.do_sample = True
            gc.temperature = self.temperature
        else:  # greedy; drop a checkpoint's sampling defaults so they raise no warnings
            gc.do_sample = False
            gc.temperature = None
            gc.top_p = None
            gc.top_k = None
        return gc

    def _run(self, batch_ids: list[list[int]], gc) -> list[list[int]]:
        """Generate for one left-padded micro-batch; returns the new tokens of each row."""
        import torch

        width = max(len(x) for x in batch_ids)
        device = self.model.device
        input_ids = torch.full((len(batch_ids), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
        for i, ids in enumerate(batch_ids):
            if ids:
                input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                mask[i, width - len(ids) :] = 1
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(device),
            "attention_mask": mask.to(device),
            "generation_config": gc,
        }
        out = None
        if self._stop_in_generate is not False:
            with_stop = copy.copy(gc)
            with_stop.stop_strings = list(self.stop)
            try:
                out = self.model.generate(
                    **{**kwargs, "generation_config": with_stop}, tokenizer=self.tokenizer
                )
                self._stop_in_generate = True
            except (TypeError, ValueError) as e:
                if self._stop_in_generate:  # it worked before: a real error
                    raise
                log.warning(
                    "generate(stop_strings=…) unavailable (%s); cutting at stop strings after decoding", e
                )
                self._stop_in_generate = False
        if out is None:
            out = self.model.generate(**kwargs)
        rows: list[list[int]] = []
        for row in out[:, width:].tolist():
            kept: list[int] = []
            for t in row:
                if t in self._eos_ids:
                    kept.append(t)
                    break
                if t == self._pad_id:
                    break
                kept.append(t)
            rows.append(kept)
        return rows

    def generate(self, requests: list[GenerationRequest]) -> list[str | None]:
        import torch

        if not requests:
            return []
        t0 = time.perf_counter()
        ids = [self.encode(self.render(r.prompt, r.prefix)) for r in requests]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        gc = self._generation_config()
        results: list[str | None] = [None] * len(requests)
        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        n_new = 0
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    new = self._run([ids[i] for i in chunk], gc)
                    for i, toks in zip(chunk, new):
                        n_new += len(toks)
                        text = self.tokenizer.decode(toks, skip_special_tokens=True)
                        results[i] = cut_at_stop(text, self.stop)
        finally:
            if was_training:
                self.model.train()
        self._count(
            requests=len(requests),
            prompt_tokens=sum(len(x) for x in ids),
            generated_tokens=n_new,
            seconds=time.perf_counter() - t0,
        )
        return results

    def close(self) -> None:
        if self.model is None:
            return
        cuda = str(getattr(self.model, "device", "cpu")).startswith("cuda")
        self.model = None
        if cuda and self._owns_model:
            import torch

            torch.cuda.empty_cache()

    def __repr__(self) -> str:
        name = (
            getattr(getattr(self.model, "config", None), "_name_or_path", "?")
            if self.model is not None
            else "closed"
        )
        return (
            f"HFGenerator(model={name!r}, chat={self.chat}, batch_size={self.batch_size}, "
            f"max_new_tokens={self.max_new_tokens}, stop={self.stop!r})"
        )
