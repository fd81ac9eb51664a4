"""The `tiny` student: a random small Qwen2 with a byte-level BPE tokenizer trained locally in milliseconds.

Used by the tests, the offline demo and `model=tiny`: nothing is downloaded. Built once per
(texts, sizes) and cached with `save_pretrained`, so later jobs load it like any HF model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer (any text encodes) trained on `texts`, as a PreTrainedTokenizerFast."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, model_max_length=1 << 16
    )


def build_tiny_model(
    tokenizer,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 384,
    max_position_embeddings: int = 4096,
    seed: int = 0,
):
    """A randomly initialised Qwen2ForCausalLM sized to `tokenizer`'s vocabulary."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def tiny_fingerprint(texts: list[str], **sizes: object) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    h.update(json.dumps(sizes, sort_keys=True).encode())
    return h.hexdigest()[:12]


def load_or_build_tiny(
    cache_dir: str | os.PathLike,
    texts_fn: Callable[[], list[str]],
    vocab_size: int = 2048,
    **model_kwargs: object,
) -> Path:
    """Return a directory holding a saved tiny model + tokenizer, building it on the first call.

    The directory name carries a fingerprint of the training texts and sizes, so a different
    dataset or size gets its own model; the save is atomic (temp dir, then rename).
    """
    texts = list(texts_fn())
    key = tiny_fingerprint(texts, vocab_size=vocab_size, **model_kwargs)
    out = Path(cache_dir) / f"tiny-{key}"
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
        model = build_tiny_model(tokenizer, **model_kwargs)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
