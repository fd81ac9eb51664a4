"""A bm25s index built in memory bounded by a chunk size, written straight to bm25s's saved layout.

bm25s's `index` holds every document's token ids as Python lists, then three arrays of one entry
per (document, term) pair, then the sort of all of them: ≈ 16 GiB for HotpotQA's 5.2M abstracts.
Here the work goes through disk in two phases:

1. **tokenize** — `chunk_size` paragraphs at a time: token ids (one vocabulary, grown in
   first-seen order, so ids do not depend on the chunking), then the chunk's (term, document,
   term frequency) triples, sorted by term then document, appended to a run file; document
   lengths and document frequencies are kept (4 + 8 bytes per document / term).
2. **index** — with the global document frequencies and average length known, the score matrix
   is assembled one block of terms at a time (≈ `chunk_size * ENTRIES_PER_PARAGRAPH` entries): each
   run contributes its contiguous slice for those terms, the scores are computed, and the block's
   columns are appended to `data.csc.index.npy` / `indices.csc.index.npy`.

Scores are computed with bm25s's own idf and tf functions, in the same float64 expressions and
the same float32 rounding, so the arrays are identical to `bm25s.BM25.index` over the same token
ids (tests/retrieval/test_chunked.py checks it), and `bm25s.BM25.load(..., mmap=True)` reads them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from steper.errors import SteperError
from steper.progress import PhaseProgress

__all__ = ["BM25S_FILES", "DEFAULT_CHUNK_SIZE", "build_bm25s_index"]

# bm25s's own file names (its `save` defaults).
DATA_FILE = "data.csc.index.npy"
INDICES_FILE = "indices.csc.index.npy"
INDPTR_FILE = "indptr.csc.index.npy"
VOCAB_FILE = "vocab.index.json"
PARAMS_FILE = "params.index.json"
NONOCC_FILE = "nonoccurrence_array.index.npy"
BM25S_FILES = (DATA_FILE, INDICES_FILE, INDPTR_FILE, VOCAB_FILE)

DEFAULT_CHUNK_SIZE = 50_000
# Entries of the score matrix assembled per block, per paragraph of chunk size: about one
# paragraph's worth of distinct terms, so the index phase needs about what a tokenize chunk needs.
ENTRIES_PER_PARAGRAPH = 40
_MAX_DOCS = 2**31 - 1  # bm25s stores document indices as int32


def _npy_header(f, dtype: np.dtype, n: int) -> None:
    """The header of a 1-D .npy file of `n` entries (as `np.save` writes it); the data follows."""
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (n,)}
    )


class _Runs:
    """Run files of (term, document, tf) triples, one run per tokenized chunk, each sorted by term."""

    def __init__(self, work: Path):
        self.work = work
        self.sizes: list[int] = []

    def _path(self, k: int, what: str) -> Path:
        return self.work / f"run{k:05d}.{what}"

    def add(self, term: np.ndarray, doc: np.ndarray, tf: np.ndarray) -> None:
        k = len(self.sizes)
        term.astype(np.int32).tofile(self._path(k, "term"))
        doc.astype(np.int32).tofile(self._path(k, "doc"))
        tf.astype(np.int32).tofile(self._path(k, "tf"))
        self.sizes.append(len(term))

    def cuts(self, bounds: np.ndarray) -> list[np.ndarray]:
        """Per run, the positions where each term block starts (its terms are sorted, so one search)."""
        out = []
        for k, size in enumerate(self.sizes):
            if size == 0:
                out.append(np.zeros(len(bounds), dtype=np.int64))
                continue
            # A memory map only for the binary search: it touches ~log2(size) pages.
            terms = np.memmap(self._path(k, "term"), dtype=np.int32, mode="r")
            out.append(np.searchsorted(terms, bounds, side="left").astype(np.int64))
            del terms
        return out

    def read(self, k: int, what: str, lo: int, hi: int) -> np.ndarray:
        # Ordinary reads (not a memory map), so what was read is freed with the block.
        return np.fromfile(self._path(k, what), dtype=np.int32, count=hi - lo, offset=lo * 4)


def _tokenize(
    texts: Iterable[str], tokenizer: Any, runs: _Runs, chunk_size: int, bar: PhaseProgress
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Phase 1: runs on disk; returns (document lengths, document frequencies, vocabulary)."""
    from steper.retrieval.bm25_tokenizer import _chunks

    enc = tokenizer.corpus_encoder()
    doc_lens: list[np.ndarray] = []
    df = np.zeros(0, dtype=np.int64)
    base = 0
    for chunk in _chunks(texts, chunk_size):
        flat, lengths = enc.encode(chunk)
        n = len(chunk)
        if base + n > _MAX_DOCS:
            raise SteperError(f"retriever: more than {_MAX_DOCS:,} paragraphs; bm25s indexes at most that many")
        doc_local = np.repeat(np.arange(n, dtype=np.int64), lengths)
        # One sort of (term, document) keys gives the distinct pairs in run order and their counts.
        key = (flat.astype(np.int64) << 32) | doc_local
        pairs, tf = np.unique(key, return_counts=True)
        term = pairs >> 32
        doc = (pairs & 0xFFFFFFFF) + base
        if len(df) < len(enc.vocab):
            df = np.concatenate([df, np.zeros(len(enc.vocab) - len(df), dtype=np.int64)])
        df += np.bincount(term, minlength=len(df))
        runs.add(term, doc, tf)
        doc_lens.append(lengths)
        base += n
        bar.update(base, base)
    doc_len = np.concatenate(doc_lens) if doc_lens else np.zeros(0, dtype=np.int64)
    return doc_len, df, enc.vocab


def _block_bounds(indptr: np.ndarray, budget: int) -> np.ndarray:
    """Term boundaries [0, ..., V] such that each block has at most `budget` entries (or one term)."""
    n_terms = len(indptr) - 1
    bounds = [0]
    while bounds[-1] < n_terms:
        t0 = bounds[-1]
        t1 = int(np.searchsorted(indptr, indptr[t0] + budget, side="right")) - 1
        bounds.append(min(max(t1, t0 + 1), n_terms))
    return np.asarray(bounds, dtype=np.int64)


def build_bm25s_index(
    texts: Iterable[str],
    out_dir: str | Path,
    *,
    tokenizer: Any,
    k1: float,
    b: float,
    method: str,
    n_paragraphs: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
) -> dict[str, Any]:
    """Index `texts` (each paragraph's "title text", in index order) into bm25s's files in `out_dir`.

    Peak memory grows with `chunk_size` (and the vocabulary), not with the corpus. Temporary run
    files go to `out_dir/.work` and are removed. Returns statistics: paragraphs, terms, entries,
    seconds per phase.
    """
    import bm25s

    if chunk_size < 1:
        raise SteperError(f"retriever: chunk_size must be at least 1, got {chunk_size}")
    out = Path(out_dir)
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    model = bm25s.BM25(k1=k1, b=b, method=method, backend="numpy")  # bm25s's defaults and params file
    seconds: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        runs = _Runs(work)
        with PhaseProgress("tokenize", n_paragraphs, enabled=progress) as bar:
            doc_len, df, vocab = _tokenize(texts, tokenizer, runs, chunk_size, bar)
        seconds["tokenize"] = time.perf_counter() - t0
        n_docs, n_terms = len(doc_len), len(vocab)
        if n_docs == 0:
            raise SteperError("retriever: the corpus is empty, nothing to index. Check the dataset's corpus files.")
        if n_terms == 0:
            raise SteperError("retriever: the corpus has no indexable word (every paragraph is empty or stopwords).")
        t0 = time.perf_counter()
        nnz = _index(model, runs, doc_len, df, out, chunk_size, progress)
        seconds["index"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _save_vocab_and_params(model, vocab, n_docs, out)
        seconds["save"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"paragraphs": n_docs, "terms": n_terms, "entries": nnz, "chunk_size": chunk_size, "seconds": seconds}


def _scorers(model: Any, df: np.ndarray, n_docs: int, avg_doc_len: Any):
    """bm25s's idf array, non-occurrence array (bm25l / bm25+, else None) and tf scorer, from bm25s's
    own functions over the same Python ints, so the float32 idf is the same bits."""
    from bm25s.scoring import (
        _build_idf_array,
        _build_nonoccurrence_array,
        _select_idf_scorer,
        _select_tfc_scorer,
    )

    doc_freqs = dict(enumerate(df.tolist()))
    idf = _build_idf_array(doc_freqs, n_docs, _select_idf_scorer(model.idf_method), dtype=model.dtype)
    nonocc = None
    if model.method in model.methods_requiring_nonoccurrence:
        nonocc = _build_nonoccurrence_array(
            doc_freqs, n_docs, _select_idf_scorer(model.idf_method), _select_tfc_scorer(model.method),
            l_d=avg_doc_len, l_avg=avg_doc_len, k1=model.k1, b=model.b, delta=model.delta,
            dtype=model.dtype,
        )  # fmt: skip
    return idf, nonocc, _select_tfc_scorer(model.method)


def _index(
    model: Any, runs: _Runs, doc_len: np.ndarray, df: np.ndarray, out: Path, chunk_size: int, progress: bool
) -> int:
    """Phase 2: the score matrix, one block of terms at a time, into bm25s's data/indices/indptr
    files (and the non-occurrence array); returns the number of entries."""
    n_docs, n_terms = len(doc_len), len(df)
    avg_doc_len = doc_len.mean()  # np.float64, as bm25s computes it
    idf, nonocc, tfc_fn = _scorers(model, df, n_docs, avg_doc_len)
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    nnz = int(indptr[-1])
    bounds = _block_bounds(indptr, max(1, chunk_size * ENTRIES_PER_PARAGRAPH))
    cuts = runs.cuts(bounds)
    done = 0
    with (
        PhaseProgress("index", nnz, enabled=progress) as bar,
        open(out / DATA_FILE, "wb") as fdata,
        open(out / INDICES_FILE, "wb") as findices,
    ):
        _npy_header(fdata, np.dtype(model.dtype), nnz)
        _npy_header(findices, np.dtype(model.int_dtype), nnz)
        for j in range(len(bounds) - 1):
            parts = [(k, int(c[j]), int(c[j + 1])) for k, c in enumerate(cuts) if c[j + 1] > c[j]]
            term = np.concatenate([runs.read(k, "term", lo, hi) for k, lo, hi in parts])
            doc = np.concatenate([runs.read(k, "doc", lo, hi) for k, lo, hi in parts])
            tf = np.concatenate([runs.read(k, "tf", lo, hi) for k, lo, hi in parts])
            # bm25s: tfc(tf as float32, the document's length, the average) * idf, in float64,
            # minus the non-occurrence score for bm25l / bm25+, stored as float32.
            tfc = tfc_fn(
                tf_array=tf.astype(model.dtype), l_d=doc_len[doc], l_avg=avg_doc_len,
                k1=model.k1, b=model.b, delta=model.delta,
            )  # fmt: skip
            scores = idf[term] * tfc
            if nonocc is not None:
                scores -= nonocc[term]
            # Runs are in document order and each is sorted by (term, document), so a stable
            # sort on the term alone leaves every column's documents ascending, as in bm25s.
            order = np.argsort(term, kind="stable")
            scores.astype(model.dtype)[order].tofile(fdata)
            doc.astype(model.int_dtype)[order].tofile(findices)
            done += len(term)
            bar.update(done, round(n_docs * done / max(nnz, 1)))
        if done != nnz:  # pragma: no cover - an internal accounting error
            raise RuntimeError(f"index: wrote {done} entries, expected {nnz}")
    np.save(out / INDPTR_FILE, indptr)
    if nonocc is not None:
        np.save(out / NONOCC_FILE, nonocc)
    return nnz


def _save_vocab_and_params(model: Any, vocab: dict[str, int], n_docs: int, out: Path) -> None:
    """bm25s's vocab and params files, as its `save` writes them."""
    import bm25s
    from bm25s.utils import json_functions

    (out / VOCAB_FILE).write_text(json_functions.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    params = dict(
        k1=model.k1, b=model.b, delta=model.delta, method=model.method, idf_method=model.idf_method,
        dtype=model.dtype, int_dtype=model.int_dtype, num_docs=n_docs, version=bm25s.__version__,
        backend=model.backend,
    )  # fmt: skip
    with open(out / PARAMS_FILE, "w") as f:
        json.dump(params, f, indent=4)
