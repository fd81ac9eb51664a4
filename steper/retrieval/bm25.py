"""BM25 over `title + " " + text`, on bm25s (eager sparse scoring) and PyStemmer.

The tokenizer is in `steper.retrieval.bm25_tokenizer`, the folder's files in
`steper.retrieval.index_files`, the bounded-memory build in `steper.retrieval.chunked`.

One `Bm25Tokenizer` (lower-case, bm25s's word pattern, stopword removal, Snowball stemming) serves
both the index and the queries; its settings and resolved stopword list are saved with the index,
so a reloaded index tokenizes queries exactly as the corpus was tokenized.

Two ways to build: `build` (in memory, bm25s's own `index`; small corpora and tests) and
`build_to_disk` (streamed in chunks, memory bounded by the chunk size, steper.retrieval.chunked;
what `load_or_build`, hence evaluate.py / generate_data.py / train.py, uses). Both give the same
index, bit for bit.

On disk (`save` / `build_to_disk`), one directory, written to a temp dir and renamed into place:

    meta.json              format version, params, resolved stopwords, number of paragraphs
                           (and, from build_to_disk, the build statistics)
    *.index.npy/.json      the bm25s index, in bm25s's saved layout (`bm25s.BM25.load` reads it)
    paragraphs.jsonl       one Paragraph per line, in index order (pid always set); a hard link to
                           the corpus store when built from it
    paragraphs.offsets.npy byte offset of each line (n + 1 entries), so a loaded index reads a
                           paragraph on demand from a memory map instead of parsing the whole file

Retrieval returns only passages that share at least one term with the query (score above the
no-match baseline), like a search engine: fewer than k passages can come back, and a query made
only of stopwords or unknown words returns none.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from steper.data.corpus import ParagraphStore, ParagraphWriter
from steper.data.schema import Paragraph
from steper.errors import SteperError
from steper.retrieval.bm25_tokenizer import (
    _WORD,
    Bm25Tokenizer,
    CorpusEncoder,
    _chunks,
    _make_stemmer,
    _resolve_stopwords,
)
from steper.retrieval.chunked import BM25S_FILES, DEFAULT_CHUNK_SIZE, build_bm25s_index
from steper.retrieval.index_files import (
    FORMAT_VERSION,
    META_FILE,
    METHODS,
    OFFSETS_FILE,
    PARAGRAPHS_FILE,
    _bm25s_version,
    _link_or_copy,
    _paragraph_dict,
    _paragraph_line,
    _params,
    _read_meta,
    _replace_dir,
    temp_dir_beside,
    write_meta,
)

__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "METHODS",
    "OFFSETS_FILE",
    "PARAGRAPHS_FILE",
    "PROGRESS_MIN_PARAGRAPHS",
    "BM25Retriever",
    "Bm25Tokenizer",
    "CorpusEncoder",
    "_WORD",
    "_bm25s_version",
    "_chunks",
    "_make_stemmer",
    "_params",
    "_read_meta",
    "_replace_dir",
    "_resolve_stopwords",
]

log = logging.getLogger(__name__)
# bm25s logs every index build at DEBUG; under Hydra's root DEBUG/INFO handlers that is noise.
logging.getLogger("bm25s").setLevel(logging.WARNING)

# A build over at least this many paragraphs shows a progress message.
PROGRESS_MIN_PARAGRAPHS = 20_000


class BM25Retriever:
    """BM25 retrieval over a list of `Paragraph`s; build once, `save`, and `load` later."""

    def __init__(
        self, bm25, paragraphs, tokenizer: Bm25Tokenizer, params: dict[str, Any], n_threads: int = 0
    ):
        self._bm25 = bm25
        self._paragraphs = paragraphs  # list[Paragraph] or a memory-mapped ParagraphStore, pid always set
        self.tokenizer = tokenizer
        self.params = params
        # Threads for bm25s's batched retrieval: 0 = sequential, -1 = all CPUs.
        self.n_threads = n_threads

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        paragraphs: Sequence[Paragraph],
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | Sequence[str] | None = "en",
    ) -> BM25Retriever:
        """Index `title + " " + text` of each paragraph. A paragraph without a pid gets its position."""
        import bm25s

        params = _params(k1, b, method, stemmer, stopwords)
        paras = [
            p if p.pid is not None else dataclasses.replace(p, pid=str(i)) for i, p in enumerate(paragraphs)
        ]
        if not paras:
            raise SteperError(
                "retriever: the corpus is empty, nothing to index. Check the dataset's corpus files."
            )
        tokenizer = Bm25Tokenizer(stemmer, _resolve_stopwords(params["stopwords"]))
        console = status = None
        if len(paras) >= PROGRESS_MIN_PARAGRAPHS:
            from rich.console import Console

            console = Console(stderr=True)
            console.log(f"Building the BM25 index over {len(paras):,} paragraphs (once; it is cached)")
            status = console.status("Tokenizing and indexing…")
            status.start()
        t0 = time.perf_counter()
        try:
            ids, vocab = tokenizer.encode_corpus([f"{p.title} {p.text}" for p in paras])
            if not vocab:
                raise SteperError(
                    "retriever: the corpus has no indexable word (every paragraph is empty or stopwords)."
                )
            model = bm25s.BM25(k1=params["k1"], b=params["b"], method=method, backend="numpy")
            model.index((ids, vocab), create_empty_token=False, show_progress=False)
        finally:
            if status is not None:
                status.stop()
        if console is not None:
            console.log(f"BM25 index built: {len(vocab):,} terms, {time.perf_counter() - t0:.1f}s")
        return cls(model, paras, tokenizer, params)

    @classmethod
    def build_to_disk(
        cls,
        paragraphs: Iterable[Paragraph],
        path: str | os.PathLike,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: bool | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | Sequence[str] | None = "en",
    ) -> dict[str, Any]:
        """Index `title + " " + text` of each paragraph straight into the index folder `path`, in
        memory bounded by `chunk_size` paragraphs (steper.retrieval.chunked), atomically (temp dir,
        then rename). The same index as `build(...).save(path)`. Returns the build statistics, also
        kept in meta.json under "build".

        A `ParagraphStore` (the corpus cache) is hard-linked into the folder instead of copied; any
        other iterable is written out as it is read (a paragraph without a pid gets its position).
        `progress`: None shows progress bars for corpora of `PROGRESS_MIN_PARAGRAPHS` or more.
        """
        params = _params(k1, b, method, stemmer, stopwords)
        tokenizer = Bm25Tokenizer(stemmer, _resolve_stopwords(params["stopwords"]))
        n = len(paragraphs) if isinstance(paragraphs, Sized) else None
        if progress is None:
            progress = n is None or n >= PROGRESS_MIN_PARAGRAPHS
        out = Path(path)
        tmp = temp_dir_beside(out)
        writer: ParagraphWriter | None = None
        try:
            t0 = time.perf_counter()
            texts, writer = _paragraph_texts(paragraphs, tmp)
            if progress:
                log.info("Building the BM25 index at %s (once; it is cached)", out)
            stats = build_bm25s_index(
                texts, tmp, tokenizer=tokenizer, k1=params["k1"], b=params["b"], method=method,
                n_paragraphs=n, chunk_size=chunk_size, progress=progress,
            )  # fmt: skip
            t_save = time.perf_counter()
            if writer is not None:
                writer.commit()
            stats["seconds"]["save"] += time.perf_counter() - t_save
            stats["seconds"]["total"] = time.perf_counter() - t0
            write_meta(tmp, params, tokenizer.stopwords, stats["paragraphs"], build=stats)
            _replace_dir(tmp, out)
        except BaseException:
            if writer is not None:
                writer.abort()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if progress:
            sec = stats["seconds"]
            log.info(
                "BM25 index built: %s paragraphs, %s terms; tokenize %.1fs, index %.1fs, save %.1fs",
                f"{stats['paragraphs']:,}", f"{stats['terms']:,}", sec["tokenize"], sec["index"], sec["save"],
            )  # fmt: skip
        return stats

    # -------------------------------------------------------------- retrieve
    def __len__(self) -> int:
        return len(self._paragraphs)

    def paragraph(self, i: int) -> Paragraph:
        """The i-th indexed paragraph (a copy)."""
        return dataclasses.replace(self._paragraphs[i])

    def retrieve_with_scores(
        self, queries: Sequence[str], k: int, n_threads: int | None = None
    ) -> tuple[list[list[Paragraph]], list[list[float]]]:
        """Top-k paragraphs (copies, pid set) and their BM25 scores per query, best first.

        One call for all queries (`n_threads` > 0 or -1 spreads them over a thread pool). Only
        paragraphs sharing a term with the query come back (so possibly fewer than k, none for a
        stopword-only query); k is clipped to the corpus size. Equal scores are ordered by corpus
        position, so results are deterministic and do not depend on batching or threads.
        """
        if isinstance(queries, str):
            raise TypeError("retrieve takes a list of queries; wrap a single query in a list")
        n = len(queries)
        docs: list[list[Paragraph]] = [[] for _ in range(n)]
        scores: list[list[float]] = [[] for _ in range(n)]
        k = min(int(k), len(self._paragraphs))
        if k <= 0 or n == 0:
            return docs, scores
        token_ids = self.tokenizer.encode_queries(queries, self._bm25.vocab_dict)
        todo = [i for i, t in enumerate(token_ids) if t]
        n_threads = self.n_threads if n_threads is None else n_threads
        if n_threads < 0:
            n_threads = os.cpu_count() or 1
        topk = partial(self._topk, k=k)
        if n_threads > 1 and len(todo) > 1:
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                results = list(pool.map(topk, (token_ids[i] for i in todo)))
        else:
            results = [topk(token_ids[i]) for i in todo]
        for qi, (idx, sc) in zip(todo, results):
            docs[qi] = [self.paragraph(int(j)) for j in idx]
            scores[qi] = [float(x) for x in sc]
        return docs, scores

    def _topk(self, ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of the k best documents scoring above the no-match baseline.

        bm25s scores the query (`get_scores_from_ids`); the selection is done here, among matching
        documents only: numpy's argpartition over the whole score vector (bm25s's `retrieve`)
        degenerates to ~10 ms per query when most documents tie at 0, the usual case.
        """
        ids_arr = np.asarray(ids, dtype=np.int64)
        s = self._bm25.get_scores_from_ids(ids_arr)
        nonocc = self._bm25.nonoccurrence_array  # bm25l / bm25+: a constant every document gets
        base = nonocc[ids_arr].sum() if nonocc is not None else 0.0
        cand = np.flatnonzero(s > base)  # ascending corpus position
        cs = s[cand]
        if len(cand) > k:
            kth = cs[np.argpartition(-cs, k - 1)[:k]].min()  # the k-th best score
            above = cs > kth
            ties = np.flatnonzero(cs == kth)[: k - int(above.sum())]  # lowest positions first
            keep = np.sort(np.concatenate([np.flatnonzero(above), ties]))
            cand, cs = cand[keep], cs[keep]
        order = np.lexsort((cand, -cs))  # score desc, then corpus position
        return cand[order], cs[order]

    def retrieve(self, queries: Sequence[str], k: int, n_threads: int | None = None) -> list[list[Paragraph]]:
        """Top-k paragraphs per query (see `retrieve_with_scores`)."""
        return self.retrieve_with_scores(queries, k, n_threads=n_threads)[0]

    # ------------------------------------------------------------ save/load
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index and its paragraphs into `path` atomically (temp dir, then rename)."""
        out = Path(path)
        tmp = temp_dir_beside(out)
        try:
            self._bm25.save(tmp, show_progress=False)
            offsets = np.zeros(len(self._paragraphs) + 1, dtype=np.int64)
            with open(tmp / PARAGRAPHS_FILE, "wb") as f:
                pos = 0
                for i, p in enumerate(self._paragraphs):
                    line = _paragraph_line(p)
                    f.write(line)
                    pos += len(line)
                    offsets[i + 1] = pos
            np.save(tmp / OFFSETS_FILE, offsets)
            write_meta(tmp, self.params, self.tokenizer.stopwords, len(self._paragraphs))
            _replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    @classmethod
    def load(cls, path: str | os.PathLike, mmap_index: bool = False) -> BM25Retriever:
        """Load a saved index. `mmap_index=True` memory-maps the score arrays too (less RAM, slower first queries).

        Raises a SteperError naming the directory when it is missing, incomplete or corrupt.
        """
        import bm25s

        path = Path(path)
        meta = _read_meta(path)
        missing = [f for f in (*BM25S_FILES, PARAGRAPHS_FILE, OFFSETS_FILE) if not (path / f).is_file()]
        if missing:
            raise SteperError(
                f"BM25 index at {path} is incomplete (missing {', '.join(missing)}); delete it to rebuild"
            )
        try:
            paragraphs = ParagraphStore(path / PARAGRAPHS_FILE)
            n = int(meta["num_paragraphs"])
            if len(paragraphs) != n:
                raise ValueError(f"{PARAGRAPHS_FILE} has {len(paragraphs)} paragraphs, meta says {n}")
            model = bm25s.BM25.load(path, mmap=mmap_index, show_progress=False)
            if int(model.scores["num_docs"]) != n:
                raise ValueError(f"index has {model.scores['num_docs']} documents, meta says {n}")
            params = meta["params"]
            tokenizer = Bm25Tokenizer(params["stemmer"], meta["stopword_list"])
        except SteperError as e:
            raise SteperError(f"BM25 index at {path} is corrupt ({e}); delete it to rebuild") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SteperError(f"BM25 index at {path} is corrupt ({e}); delete it to rebuild") from None
        return cls(model, paragraphs, tokenizer, params)

    @classmethod
    def load_or_build(
        cls,
        path: str | os.PathLike,
        paragraphs_fn: Callable[[], Iterable[Paragraph]],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        **params: Any,
    ) -> BM25Retriever:
        """Reload the index saved at `path` if it was built with the same params, else build and save it.

        `paragraphs_fn` is only called when building; its paragraphs are streamed (`build_to_disk`),
        never held all at once. The index is loaded memory-mapped (`mmap_index=True`): the page
        cache holds it, shared by every process that loads it. A corrupt or partial directory is
        rebuilt (with a warning), never an error.
        """
        path = Path(path)
        defaults = {"k1": 1.5, "b": 0.75, "method": "lucene", "stemmer": "english", "stopwords": "en"}
        unknown = set(params) - set(defaults)
        if unknown:
            raise TypeError(f"load_or_build: unknown BM25 parameter(s) {sorted(unknown)}")
        want = _params(**{**defaults, **params})
        if path.exists():
            try:
                meta = _read_meta(path)
                if meta.get("params") == want:
                    return cls.load(path, mmap_index=True)
                log.info("BM25 index at %s was built with other parameters; rebuilding", path)
            except SteperError as e:
                log.warning("%s; rebuilding it", e)
        cls.build_to_disk(paragraphs_fn(), path, chunk_size=chunk_size, **want)
        return cls.load(path, mmap_index=True)


def _paragraph_texts(
    paragraphs: Iterable[Paragraph], tmp: Path
) -> tuple[Iterable[str], ParagraphWriter | None]:
    """The "title text" of each paragraph, in order, with the paragraphs going into `tmp`: a
    `ParagraphStore` (the corpus cache) is hard-linked, anything else written out as it is read
    (a paragraph without a pid gets its position; commit the writer when done)."""
    if isinstance(paragraphs, ParagraphStore):
        for src, name in zip(paragraphs.files(), (PARAGRAPHS_FILE, OFFSETS_FILE)):
            _link_or_copy(src, tmp / name)
        return (f"{p.title} {p.text}" for p in paragraphs), None
    writer = ParagraphWriter(tmp / PARAGRAPHS_FILE, _paragraph_dict)

    def texts_writing() -> Iterator[str]:
        for p in paragraphs:
            if p.pid is None:
                p = dataclasses.replace(p, pid=str(len(writer)))
            writer.add(p)
            yield f"{p.title} {p.text}"

    return texts_writing(), writer
