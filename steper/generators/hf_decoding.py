"""How `HFGenerator` turns micro-batches of prompt token ids into new tokens.

- Greedy (`temperature == 0`, and no logits processor in the model's generation config): a
  hand-written loop over the model's KV cache. Each prompt is prefilled alone (unpadded: exactly
  the computation of a one-prompt run), the caches are stitched, left-padded, into preallocated
  buffers (`_KVBuffer`), and the batch decodes one token per step with an attention mask and
  explicit position ids; a row ends at EOS, at the pad token, or as soon as its decoded text holds
  a stop string, and ended rows leave the batch.
- Prompt reuse (`PromptCache`): the loop's prompt for a question's next step repeats the previous
  step's passages before the new ones, so its tokens start with most of the previous prompt. The
  keys and values of that common prefix are kept from the previous call and only the rest of the
  prompt is prefilled (the same positions and causal attention, so the same computation up to
  floating-point rounding; benchmarks/README.md measures how often a greedy token differs).
- Otherwise (sampling, repetition penalty, …): `model.generate` on a left-padded batch, with
  `stop_strings` so generation ends early.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

log = logging.getLogger("steper.generators.hf")

# generation-config settings that leave greedy argmax alone at these values
_NEUTRAL = {
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
# ...and those that must be unset
_UNSET = (
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


class PromptCache:
    """The prefilled keys and values of each question's latest prompt, for the question's next step.

    Entries are keyed by question id and hold the prompt's token ids and its per-layer (keys,
    values), shape [1, heads, tokens, head_dim], on the model's device. After each `generate` call
    only the entries of the questions in that call are kept (`retain`): the loop asks for every
    active question at each step, so a question missing from a call has finished, and the cache
    never holds more than one call's prompts."""

    # a shorter common prefix is not worth a second forward pass's overhead
    MIN_REUSE = 16

    def __init__(self) -> None:
        self.entries: dict[str, tuple[list[int], list[tuple[Any, Any]]]] = {}
        self.reused_tokens = 0

    def lookup(self, key: str | None, ids: list[int]) -> tuple[int, list[tuple[Any, Any]]]:
        """(n, layers): the first n tokens of `ids` are cached (n = 0: nothing to reuse). At least
        the last token is always left to prefill: its logits start the generation."""
        entry = self.entries.get(key) if key is not None else None
        if entry is None:
            return 0, []
        old, layers = entry
        limit = min(len(old), len(ids) - 1)
        n = 0
        while n < limit and old[n] == ids[n]:
            n += 1
        if n < self.MIN_REUSE:
            return 0, []
        self.reused_tokens += n
        return n, layers

    def store(self, key: str | None, ids: list[int], cache: Any) -> None:
        if key is not None:
            self.entries[key] = (list(ids), [(layer.keys, layer.values) for layer in cache.layers])

    def take_reused(self) -> int:
        """Prompt tokens reused since the last call (for the generator's stats)."""
        n, self.reused_tokens = self.reused_tokens, 0
        return n

    def retain(self, keys: Any) -> None:
        keep = set(keys)
        self.entries = {k: v for k, v in self.entries.items() if k in keep}


class HFDecoding:
    """The decoding half of `HFGenerator` (a mixin). It uses the generator's `model`, `tokenizer`,
    `max_new_tokens`, `temperature`, `stop`, `_eos_ids`, `_pad_id`, `_cache_kwarg`, and keeps
    `_fast` (hand-written greedy usable; None = not tried yet) and `_stop_in_generate`."""

    model: Any
    tokenizer: Any
    max_new_tokens: int
    temperature: float
    stop: list[str]
    _eos_ids: list[int]
    _pad_id: int
    _cache_kwarg: str
    _fast: bool | None
    _stop_in_generate: bool | None
    _prompt_cache: PromptCache | None

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
        if any(getattr(gc, key, None) not in ok for key, ok in _NEUTRAL.items()):
            return False
        return not any(getattr(gc, key, None) for key in _UNSET)

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

    def _run(
        self, batch_ids: list[list[int]], gc, keys: list[str | None] | None = None, settled: list | None = None
    ) -> list[list[int]]:
        """Generate for one micro-batch; returns the new tokens of each row. `keys`: each row's
        question id, for the prompt cache (None: no reuse); `settled`: each row's early-end test
        (GenerationRequest.settled), greedy path only."""
        if self._fast is not False and self._plain_greedy(gc) and all(batch_ids):
            none = [None] * len(batch_ids)
            rows = self._greedy(batch_ids, keys or none, settled or none)
            if rows is not None:
                return rows
        return self._run_generate(batch_ids, gc)

    # -- greedy by hand ----------------------------------------------------------------------------
    def _prefill(self, batch_ids: list[list[int]], keys: list[str | None]):
        """Each prompt alone, unpadded: (their caches, the batch's last-position logits), or None
        when the model's cache does not allow the hand-written loop.

        Row by row: a padded batch would need a full attention mask (no causal shortcut, attention
        over the padding), and prompt processing gains nothing from batching here (a prompt is
        already hundreds of tokens wide). Decoding is where batching pays. A prompt that starts
        with its question's previous prompt (the prompt cache) prefills only what follows."""
        import torch

        caches, logits = [], []
        store = self._prompt_cache
        for ids, key in zip(batch_ids, keys):
            # reuse needs a plain dynamic cache, known after the first prompt
            reused, layers = store.lookup(key, ids) if store is not None and self._fast else (0, [])
            x = torch.tensor([ids[reused:]], dtype=torch.long, device=self.model.device)
            extra = {}
            if reused:
                from transformers.cache_utils import DynamicCache

                past = DynamicCache(ddp_cache_data=[(k[..., :reused, :], v[..., :reused, :]) for k, v in layers])
                extra = {self._cache_kwarg: past}
            try:
                out = self.model(input_ids=x, use_cache=True, logits_to_keep=1, **extra)
            except TypeError as e:  # a model without logits_to_keep
                log.info("hf generator: hand-written greedy decoding unavailable (%s); using generate()", e)
                self._fast = False
                return None
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            if self._fast is None:
                from transformers.cache_utils import DynamicLayer

                layers = getattr(cache, "layers", None)
                self._fast = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
                if not self._fast:
                    log.info("hf generator: %s is not a plain dynamic cache; using generate()", type(cache))
                    return None
            if store is not None:
                store.store(key, ids, cache)
            caches.append(cache)
            logits.append(out.logits[:, -1, :])
        return caches, torch.cat(logits)

    def _take(self, tokens: list[int], active: list[int], rows: list[list[int]], settled: list) -> list[int]:
        """Append each batch row's new token to its request's row; the batch rows that go on.

        A row ends at EOS (kept), at the pad token (not kept), as soon as its decoded text holds
        a stop string (checked on the text that is returned, so the cut is the same as after a
        full-length run), or as soon as its `settled(text)` holds on that text cut at the stop
        strings (what the loop keeps of it can no longer change)."""
        eos, keep, check = set(self._eos_ids), [], []
        for j, t in enumerate(tokens):
            r = active[j]
            if t in eos:
                rows[r].append(t)
                continue
            if t == self._pad_id:
                continue
            rows[r].append(t)
            keep.append(j)
            if self.stop or settled[r] is not None:
                check.append(j)
        if check:
            texts = self.tokenizer.batch_decode([rows[active[j]] for j in check], skip_special_tokens=True)
            ended = {
                j
                for j, text in zip(check, texts)
                if any(s in text for s in self.stop) or self._is_settled(settled[active[j]], text)
            }
            keep = [j for j in keep if j not in ended]
        return keep

    @staticmethod
    def _is_settled(settled: Any, text: str) -> bool:
        # a character whose bytes span tokens decodes as U+FFFD until its last token arrives: decide
        # on whole characters only (a partial "é" must not pass for a non-lowercase letter)
        return settled is not None and bool(settled(text.rstrip("\ufffd")))

    def _greedy(self, batch_ids: list[list[int]], keys: list[str | None], settled: list) -> list[list[int]] | None:
        """Greedy decoding by hand with the model's KV cache (None: the model's cache does not allow it).

        What `generate` does for greedy search, minus its per-token machinery: one forward over the
        prompts (logits of the last position only), then one token per step. Ended rows are dropped
        from the batch and from the cache, and cache columns that are padding in every remaining
        row are cut, so later steps only pay for the rows still running.
        """
        import torch

        first_pass = self._prefill(batch_ids, keys)
        if first_pass is None:
            return None
        caches, logits = first_pass
        device = self.model.device
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
        for step in range(self.max_new_tokens):
            nxt = logits.argmax(-1)
            keep = self._take(nxt.tolist(), active, rows, settled)
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
            out = self.model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=lengths[:, None],
                use_cache=True,
                **{self._cache_kwarg: cache},
            )
            lengths = lengths + 1
            logits = out.logits[:, -1, :]
        return rows

    # -- transformers' generate ----------------------------------------------------------------------
    def _run_generate(self, batch_ids: list[list[int]], gc) -> list[list[int]]:
        """`model.generate` for one micro-batch (sampling, or logits processors set by the checkpoint).

        With `stop_strings` where this transformers has them (a stop string can then match across
        the prompt/continuation boundary and end a row a little early)."""
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
        return [self._until_end(row) for row in out[:, width:].tolist()]

    def _until_end(self, row: list[int]) -> list[int]:
        """A generated row up to its first EOS (kept) or pad token (not kept)."""
        kept: list[int] = []
        for t in row:
            if t in self._eos_ids:
                kept.append(t)
                break
            if t == self._pad_id:
                break
            kept.append(t)
        return kept
