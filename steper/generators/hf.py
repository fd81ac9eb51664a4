"""A local transformers causal LM as a generator (teacher or student).

- Loaded from a local directory or an HF id; `local_files_only` follows HF_HUB_OFFLINE /
  TRANSFORMERS_OFFLINE, so offline runs never touch the network. A path that does not exist is a
  SteperError naming it. An already-loaded pair (evaluation right after training) goes in through
  `HFGenerator.from_pretrained_objects(model, tokenizer, **opts)`; that model is left where it
  is (device, dtype) and its train/eval mode is restored after each call.
- Batched: requests are tokenised, sorted by length (less padding), split into micro-batches of
  `batch_size`, and results come back in the request order. The tokenizer is never mutated.
- Greedy (`temperature == 0`, and no logits processor in the model's generation config): a
  hand-written loop over the model's KV cache. Each prompt is prefilled alone (unpadded: exactly
  the computation of a one-prompt run), the caches are stitched, left-padded, into
  preallocated buffers, and the batch decodes one token per step with an attention mask and
  explicit position ids; a row ends at EOS, at the pad token, or as soon as its decoded text holds a
  stop string, and ended rows leave the batch. Otherwise (sampling, repetition penalty, …):
  `model.generate` on a left-padded batch, with `stop_strings` so generation ends early (a stop
  string can then match across the prompt/continuation boundary and end a row a little early).
- In both paths the decoded text is cut at the first stop string.
- The chat template is used when the tokenizer has one (`chat: auto`), or forced on/off. Rendered
  chat text already holds the template's special tokens, so it is tokenised without adding any;
  plain text gets the tokenizer's usual ones (e.g. Llama's BOS). `encode` is that rule.
- `fits(rendered)`: prompt tokens + `max_new_tokens` <= `max_context` (default: the model config's
  `max_position_embeddings`).
"""

from __future__ import annotations

import copy
import inspect
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


class _KVBuffer:
    """One cache layer's keys and values in preallocated buffers: a decode step writes its column in
    place instead of `DynamicLayer.update`'s `torch.cat` of the whole cache (which dominates a
    large micro-batch's step on CPU). The layer's `keys`/`values` stay views of the filled part, so
    the model and the cache object see an ordinary dynamic layer."""

    def __init__(self, layer, rows: list, capacity: int):
        """`layer` becomes the batch's layer; `rows` are the one-row layers of the prompts, left-padded
        (with zeros, which the attention mask hides) to the longest."""
        k0 = rows[0].keys
        width = max(r.keys.shape[-2] for r in rows)
        shape = (len(rows), k0.shape[1], capacity, k0.shape[-1])
        self.layer, self.n = layer, width
        self.k = k0.new_zeros(shape)
        self.v = rows[0].values.new_zeros(shape[:-1] + (rows[0].values.shape[-1],))
        for i, r in enumerate(rows):
            n = r.keys.shape[-2]
            self.k[i, :, width - n : width] = r.keys[0]
            self.v[i, :, width - n : width] = r.values[0]
        self._expose()
        layer.update = self.update  # this cache object lives for one micro-batch only

    def _expose(self) -> None:
        self.layer.keys = self.k[..., : self.n, :]
        self.layer.values = self.v[..., : self.n, :]

    def update(self, key_states, value_states, *args: Any, **kwargs: Any):
        end = self.n + key_states.shape[-2]
        self.k[..., self.n : end, :] = key_states
        self.v[..., self.n : end, :] = value_states
        self.n = end
        self._expose()
        return self.layer.keys, self.layer.values

    def select(self, rows, first: int) -> None:
        """Keep batch `rows`, drop the first `first` positions (padding in every kept row)."""
        self.k = self.k[rows, :, first:]
        self.v = self.v[rows, :, first:]
        self.n -= first
        self._expose()


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
        self._fast: bool | None = None  # hand-written greedy decoding usable (None = not tried yet)
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

    def _plain_greedy(self, gc) -> bool:
        """Whether `gc` is greedy with nothing that reshapes the logits (so argmax is what generate picks)."""
        if self.temperature > 0 or getattr(self.model.config, "is_encoder_decoder", False):
            return False
        neutral = {
            "repetition_penalty": (None, 1.0),
            "encoder_repetition_penalty": (None, 1.0),
            "no_repeat_ngram_size": (None, 0),
            "encoder_no_repeat_ngram_size": (None, 0),
            "min_length": (None, 0),
            "min_new_tokens": (None, 0),
            "num_beams": (None, 1),
            "num_return_sequences": (None, 1),
            "guidance_scale": (None, 1.0),
        }
        for key, ok in neutral.items():
            if getattr(gc, key, None) not in ok:
                return False
        unset = (
            "bad_words_ids",
            "suppress_tokens",
            "begin_suppress_tokens",
            "forced_bos_token_id",
            "forced_eos_token_id",
            "sequence_bias",
            "exponential_decay_length_penalty",
            "watermarking_config",
            "dola_layers",
            "prompt_lookup_num_tokens",
        )
        return not any(getattr(gc, key, None) for key in unset)

    def _padded(self, batch_ids: list[list[int]]):
        """Left-padded input ids and attention mask of a micro-batch (on CPU)."""
        import torch

        width = max(len(x) for x in batch_ids)
        input_ids = torch.full((len(batch_ids), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
        for i, ids in enumerate(batch_ids):
            if ids:
                input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                mask[i, width - len(ids) :] = 1
        return input_ids, mask

    def _run(self, batch_ids: list[list[int]], gc) -> list[list[int]]:
        """Generate for one left-padded micro-batch; returns the new tokens of each row."""
        if self._fast is not False and self._plain_greedy(gc) and all(batch_ids):
            rows = self._greedy(batch_ids)
            if rows is not None:
                return rows
        return self._run_generate(batch_ids, gc)

    def _greedy(self, batch_ids: list[list[int]]) -> list[list[int]] | None:
        """Greedy decoding by hand with the model's KV cache (None: the model's cache does not allow it).

        What `generate` does for greedy search, minus its per-token machinery: one forward over the
        prompts (logits of the last position only), then one token per step. A row ends at EOS (kept),
        at the pad token (not kept), or as soon as its decoded text holds a stop string (checked on
        the text that is returned, so the cut is the same as after a full-length run). Ended rows are
        dropped from the batch and from the cache, and cache columns that are padding in every
        remaining row are cut, so later steps only pay for the rows still running.
        """
        import torch

        model = self.model
        device = model.device
        # Prefill row by row, unpadded: a padded batch would need a full attention mask (no causal
        # shortcut, attention over the padding), and prompt processing gains nothing from batching
        # here (a prompt is already hundreds of tokens wide). Decoding is where batching pays.
        caches, logits = [], []
        for ids in batch_ids:
            x = torch.tensor([ids], dtype=torch.long, device=device)
            try:
                out = model(input_ids=x, use_cache=True, logits_to_keep=1)
            except TypeError as e:  # a model without logits_to_keep
                log.info("hf generator: hand-written greedy decoding unavailable (%s); using generate()", e)
                self._fast = False
                return None
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            layers = getattr(cache, "layers", None)
            if self._fast is None:
                from transformers.cache_utils import DynamicLayer

                self._fast = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
                if not self._fast:
                    log.info("hf generator: %s is not a plain dynamic cache; using generate()", type(cache))
                    return None
            caches.append(cache)
            logits.append(out.logits[:, -1, :])
        logits = torch.cat(logits)
        lengths = torch.tensor([len(ids) for ids in batch_ids], dtype=torch.long, device=device)
        width = int(lengths.max())
        mask = (torch.arange(width, device=device)[None, :] >= (width - lengths)[:, None]).long()
        cache = caches[0]  # reused for the batch: its layers are rebuilt from all the rows' caches
        kv = [
            _KVBuffer(layer, [c.layers[i] for c in caches], width + self.max_new_tokens)
            for i, layer in enumerate(cache.layers)
        ]
        rows: list[list[int]] = [[] for _ in batch_ids]
        active = list(range(len(batch_ids)))  # request row of each batch row
        eos, pad, stop = set(self._eos_ids), self._pad_id, self.stop
        for step in range(self.max_new_tokens):
            nxt = logits.argmax(-1)
            keep: list[int] = []
            check: list[int] = []
            for j, t in enumerate(nxt.tolist()):
                r = active[j]
                if t in eos:
                    rows[r].append(t)
                    continue
                if t == pad:
                    continue
                rows[r].append(t)
                keep.append(j)
                if stop:
                    check.append(j)
            if check:
                texts = self.tokenizer.batch_decode(
                    [rows[active[j]] for j in check], skip_special_tokens=True
                )
                ended = {j for j, text in zip(check, texts) if any(s in text for s in stop)}
                if ended:
                    keep = [j for j in keep if j not in ended]
            if not keep or step == self.max_new_tokens - 1:
                break
            if len(keep) < len(active):
                idx = torch.tensor(keep, device=device)
                nxt, mask, lengths = nxt[idx], mask[idx], lengths[idx]
                active = [active[j] for j in keep]
                first = int(mask.any(0).nonzero()[0])  # leading columns that are padding in every row
                for buf in kv:
                    buf.select(idx, first)
                mask = mask[:, first:]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            out = model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=lengths[:, None],
                use_cache=True,
                **{self._cache_kwarg: cache},
            )
            lengths = lengths + 1
            logits = out.logits[:, -1, :]
        return rows

    def _run_generate(self, batch_ids: list[list[int]], gc) -> list[list[int]]:
        """`model.generate` for one micro-batch (sampling, or logits processors set by the checkpoint)."""
        input_ids, mask = self._padded(batch_ids)
        width = input_ids.shape[1]
        device = self.model.device
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
