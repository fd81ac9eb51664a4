"""Retrieval: BM25 (bm25s + PyStemmer) over a dataset's corpus, built once and reloaded from disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from steper.plain import to_plain
from steper.retrieval.bm25 import FORMAT_VERSION, BM25Retriever, Bm25Tokenizer

__all__ = ["BM25Retriever", "Bm25Tokenizer", "load_retriever", "index_dir", "retriever_params"]

_PARAM_KEYS = ("k1", "b", "method", "stemmer", "stopwords")


def _short_hash(obj: Any, n: int = 10) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:n]


def retriever_params(retriever_cfg: Any) -> dict[str, Any]:
    """The BM25 parameters of a retriever config (what the index depends on; not top_k)."""
    from steper.config import RetrieverConfig

    given = to_plain(retriever_cfg) if retriever_cfg is not None else {}
    if not isinstance(given, dict):
        raise TypeError(f"expected a config (DictConfig, dataclass or dict), got {type(retriever_cfg).__name__}")
    d = {**dataclasses.asdict(RetrieverConfig()), **given}
    params = {key: d[key] for key in _PARAM_KEYS}
    if isinstance(params["stopwords"], (list, tuple)):
        params["stopwords"] = list(params["stopwords"])
    return params


def index_dir(dataset_cfg: Any, retriever_cfg: Any, cache_dir: str | os.PathLike) -> Path:
    """`<the corpus's cache folder>/bm25-<hash of BM25 params>/`: beside the corpus it indexes, so only
    the fields that decide the corpus (not e.g. `strict` or id lists) trigger a rebuild."""
    from steper.data import corpus_cache_path

    params = retriever_params(retriever_cfg)
    return corpus_cache_path(dataset_cfg, cache_dir).parent / f"bm25-{_short_hash([FORMAT_VERSION, params])}"


def load_retriever(dataset_cfg: Any, retriever_cfg: Any, cache_dir: str | os.PathLike) -> BM25Retriever:
    """The BM25 retriever over the dataset's corpus: reloaded from the cache, or built and cached."""
    from steper.data import load_corpus

    return BM25Retriever.load_or_build(
        index_dir(dataset_cfg, retriever_cfg, cache_dir),
        lambda: load_corpus(dataset_cfg, cache_dir),
        **retriever_params(retriever_cfg),
    )
