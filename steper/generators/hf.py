"""A local transformers causal LM as a generator (teacher or student).

- Loaded from a local directory or an HF id (`steper.generators.hf_loading`); `local_files_only`
  follows HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, so offline runs never touch the network. A path
  that does not exist is a SteperError naming it. An already-loaded pair (evaluation right after
  training) goes in through `HFGenerator.from_pretrained_objects(model, tokenizer, **opts)`; that
  model is left where it is (device, dtype) and its train/eval mode is restored after each call.
- Batched: requests are tokenised, sorted by length (less padding), split into micro-batches of
  `batch_size`, and results come back in the request order. The tokenizer is never mutated.
- Greedy (`temperature == 0`, and no logits processor in the model's generation config): a
  hand-written loop over the model's KV cache; otherwise (sampling, repetition penalty, …)
  `model.generate` (`steper.generators.hf_decoding`).
- In both paths the decoded text is cut at the first stop string. The greedy path also ends a row
  as soon as its request's `settled(text)` holds (the loop's unit is written for good), so the
  tokens the loop would throw away are never generated (`stop_at_unit`, default on; off, the
  traces keep each raw generation up to the stop string).
- `prompt_cache` (greedy path, default on): a question's prompt reuses the keys and values of the
  part it shares with that question's previous prompt (`steper.generators.hf_decoding.PromptCache`).
- The chat template is used when the tokenizer has one (`chat: auto`), or forced on/off. Rendered
  chat text already holds the template's special tokens, so it is tokenised without adding any;
  plain text gets the tokenizer's usual ones (e.g. Llama's BOS). `encode` is that rule.
- `fits(rendered)`: prompt tokens + `max_new_tokens` <= `max_context` (default: the model config's
  `max_position_embeddings`).
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

from steper.errors import SteperError
from steper.generators.base import GenerationRequest, Generator, chat_setting, cut_at_stop, pick
from steper.generators.hf_decoding import HFDecoding, PromptCache, _KVBuffer
from steper.generators.hf_loading import (
    DTYPES,
    _looks_like_path,
    hub_offline,
    load_model_and_tokenizer,
    resolve_device,
    resolve_dtype,
)
from steper.reasoning import prompts

__all__ = [
    "DTYPES",
    "GEN_OPTS",
    "HFGenerator",
    "_KVBuffer",
    "_looks_like_path",
    "hub_offline",
    "load_model_and_tokenizer",
    "resolve_device",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

GEN_OPTS = (
    "max_new_tokens", "stop", "temperature", "chat", "batch_size", "max_context", "prompt_cache", "stop_at_unit"
)


class HFGenerator(HFDecoding, Generator):
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
        prompt_cache: bool = True,
        stop_at_unit: bool = True,
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
        self._fast: bool | None = None  # hand-written greedy decoding usable (None = not tried yet)
        for key, value in (("prompt_cache", prompt_cache), ("stop_at_unit", stop_at_unit)):
            if not isinstance(value, bool):
                raise SteperError(f"{key} must be true or false, got {value!r}")
        self.stop_at_unit = stop_at_unit
        self._prompt_cache = PromptCache() if prompt_cache else None
        # transformers 5.x names the cache argument `cache` (`past_key_values` is deprecated there)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a PeftModel
        forward_params = inspect.signature(type(base).forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"
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
    def generate(self, requests: list[GenerationRequest]) -> list[str | None]:
        import torch

        if not requests:
            return []
        t0 = time.perf_counter()
        ids = [self.encode(self.render(r.prompt, r.prefix)) for r in requests]
        keys = [r.question.qid if r.question is not None else None for r in requests]
        settled = [r.settled if self.stop_at_unit else None for r in requests]
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
                    new = self._run([ids[i] for i in chunk], gc, [keys[i] for i in chunk], [settled[i] for i in chunk])
                    for i, toks in zip(chunk, new):
                        n_new += len(toks)
                        text = self.tokenizer.decode(toks, skip_special_tokens=True)
                        results[i] = cut_at_stop(text, self.stop)
        finally:
            if was_training:
                self.model.train()
            if self._prompt_cache is not None:
                self._prompt_cache.retain(keys)
        self._count(
            requests=len(requests),
            prompt_tokens=sum(len(x) for x in ids),
            generated_tokens=n_new,
            reused_prompt_tokens=self._prompt_cache.take_reused() if self._prompt_cache is not None else 0,
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
