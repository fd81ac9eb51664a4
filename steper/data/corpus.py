"""The retrieval corpus, built as IRCoT builds it, streamed to disk once and read back memory-mapped.

- 2Wiki, MuSiQue (and HotpotQA without an abstracts dump): the union of all context paragraphs of
  the given question files, deduplicated on (title, text), in first-seen order (IRCoT's
  `retriever_server/build_index.py` dedups on a hash of "title text" the same way).
- HotpotQA with `corpus_path`: IRCoT indexes the 2017 Wikipedia abstracts (`steper.data.dumps`).

Every paragraph gets a stable `pid` = f"{dataset}:{n}", n its position.

The corpus lives in a paragraph store (`steper.data.store`) beside `corpus.meta.json` (the sources
it was built from, the count; written last, so it marks a complete store). The build streams: the
whole corpus is never held as Python objects (HotpotQA's dump is 5.2M paragraphs); duplicates are
found through sorted 64-bit hashes and positions (16 bytes per kept paragraph), each hash hit
confirmed against the stored paragraph so the dedup stays exact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from steper.data.dumps import AbstractsDump
from steper.data.readers import iter_paragraphs
from steper.data.schema import Paragraph
from steper.data.store import ParagraphStore, ParagraphWriter, offsets_path, open_store
from steper.errors import SteperError
from steper.io import read_json, write_json

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
# Paragraphs read and deduplicated per step of the streaming build (bounds its working memory).
DEDUP_BATCH = 50_000
# The dedup's 64-bit hash of a (title, text) key (a module attribute so tests can force collisions).
_key_hash = hash
# A corpus build over at least this many input bytes (or paragraphs, for question files) shows progress.
PROGRESS_MIN_BYTES = 20_000_000


class _Dedup:
    """Exact (title, text) dedup in 16 bytes per kept paragraph.

    Kept paragraphs' 64-bit hashes stay in one sorted array, with their positions beside; a batch
    is looked up with one `searchsorted`. A hit is confirmed by reading the stored paragraph back
    (rare for a dump; for question files, whose contexts repeat, the corpus is small), so two
    different paragraphs that collide on the hash are both kept. Python's `hash` is salted per
    process, which is fine: the structure lives for one build only.
    """

    def __init__(self, read: Callable[[int], dict[str, Any]]):
        self._read = read
        self.hashes = np.empty(0, dtype=np.int64)
        self.positions = np.empty(0, dtype=np.int64)

    def add_batch(self, batch: list[Paragraph], write: Callable[[Paragraph], int]) -> None:
        """Write the paragraphs of `batch` not seen before (in order) with `write`."""
        keys = [(p.title, p.text) for p in batch]
        hs = list(map(_key_hash, keys))
        h = np.array(hs, dtype=np.int64)
        lo = np.searchsorted(self.hashes, h, "left").tolist()
        hi = np.searchsorted(self.hashes, h, "right").tolist()
        local: dict[int, list[tuple[tuple[str, str], int]]] = {}  # hash → (key, position) kept in this batch
        new_h: list[int] = []
        new_p: list[int] = []
        for p, key, hk, a, b in zip(batch, keys, hs, lo, hi):
            if a < b and any(self._same(int(self.positions[j]), key) for j in range(a, b)):
                continue
            mine = local.get(hk)
            if mine is not None and any(k == key for k, _ in mine):
                continue
            pos = write(p)
            local.setdefault(hk, []).append((key, pos))
            new_h.append(hk)
            new_p.append(pos)
        if new_h:
            nh = np.array(new_h, dtype=np.int64)
            order = np.argsort(nh, kind="stable")
            nh, npos = nh[order], np.array(new_p, dtype=np.int64)[order]
            at = np.searchsorted(self.hashes, nh, "right")
            # np.insert at sorted positions is one O(n + m) copy, so the array never needs a re-sort.
            self.hashes = np.insert(self.hashes, at, nh)
            self.positions = np.insert(self.positions, at, npos)

    def _same(self, pos: int, key: tuple[str, str]) -> bool:
        row = self._read(pos)
        return (row["title"], row["text"]) == key


def write_corpus_store(
    path: str | Path,
    paragraphs: Iterable[Paragraph],
    dataset: str,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Stream `paragraphs` into the store at `path`: deduplicated on (title, text), first-seen order,
    pid f"{dataset}:{n}". Atomic (temp files, then rename). Returns the number kept.

    `on_batch(kept_so_far)` is called after each batch of `DEDUP_BATCH` input paragraphs.
    """
    writer = ParagraphWriter(
        path, lambda p: {"pid": f"{dataset}:{len(writer)}", "title": p.title, "text": p.text}
    )
    dedup = _Dedup(writer.read)
    try:
        batch: list[Paragraph] = []
        for p in paragraphs:
            batch.append(p)
            if len(batch) >= DEDUP_BATCH:
                dedup.add_batch(batch, writer.add)
                batch = []
                if on_batch is not None:
                    on_batch(len(writer))
        if batch:
            dedup.add_batch(batch, writer.add)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def _question_paragraphs(
    question_files: Sequence[tuple[str | Path, str]], strict: bool
) -> Iterator[Paragraph]:
    for path, fmt in question_files:
        yield from iter_paragraphs(path, fmt, strict=strict)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else -1


def corpus_fingerprint(
    *,
    dataset: str,
    question_files: Sequence[tuple[str | Path, str]] = (),
    corpus_path: str | Path | None = None,
) -> dict:
    """What the cached corpus was built from: files (with sizes), format, dataset name, version."""
    return {
        "version": CORPUS_VERSION,
        "dataset": dataset,
        "question_files": [[str(p), fmt, _size(Path(p))] for p, fmt in question_files]
        if corpus_path is None
        else [],
        "corpus_path": [str(corpus_path), _size(Path(corpus_path))] if corpus_path is not None else None,
    }


def _reload(cache_path: Path, meta_path: Path, fingerprint: dict) -> ParagraphStore | None:
    """The cached store if it is complete and built from the same sources, else None (with a log line)."""
    if not (cache_path.is_file() and meta_path.is_file()):
        return None
    meta = read_json(meta_path)
    if meta.get("fingerprint") != fingerprint:
        log.info("corpus: sources changed since %s was built; rebuilding", cache_path)
        return None
    try:
        store = open_store(cache_path)
    except SteperError as e:
        log.warning("%s; rebuilding", e)
        return None
    if len(store) != meta.get("count"):
        log.warning(
            "corpus: %s has %d lines, expected %s; rebuilding", cache_path, len(store), meta.get("count")
        )
        return None
    return store


def load_or_build_corpus(
    cache_path: str | Path,
    *,
    dataset: str,
    question_files: Sequence[tuple[str | Path, str]] = (),
    corpus_path: str | Path | None = None,
    strict: bool = True,
    progress: bool = True,
) -> ParagraphStore:
    """Reload the corpus store at `cache_path` if it was built from the same sources; else stream-build it.

    `question_files`: (path, format) pairs whose context paragraphs make the corpus; `corpus_path`:
    a paragraph dump used instead (HotpotQA abstracts, or a JSONL of {title, text}). The result is
    a memory-mapped `ParagraphStore` (a read-only sequence of `Paragraph`).
    """
    from steper.progress import PhaseProgress

    cache_path = Path(cache_path)
    meta_path = cache_path.with_name(cache_path.stem + ".meta.json")
    fingerprint = corpus_fingerprint(dataset=dataset, question_files=question_files, corpus_path=corpus_path)
    store = _reload(cache_path, meta_path, fingerprint)
    if store is not None:
        log.info("corpus: reloaded %d paragraphs from %s", len(store), cache_path)
        return store
    if corpus_path is None and not question_files:
        raise SteperError(f"dataset `{dataset}`: no question files and no corpus_path to build a corpus from")
    log.info("corpus: building %s", cache_path)
    if meta_path.exists():
        meta_path.unlink()  # the store is about to change; an old meta must not vouch for it
    t0 = time.perf_counter()
    if corpus_path is not None:
        reader = AbstractsDump(corpus_path, strict)
        source: Iterable[Paragraph] = reader
        total, big = float(reader.total_bytes), reader.total_bytes >= PROGRESS_MIN_BYTES
    else:
        reader, source = None, _question_paragraphs(question_files, strict)
        total, big = None, sum(max(_size(Path(p)), 0) for p, _ in question_files) >= PROGRESS_MIN_BYTES
    with PhaseProgress("corpus", total, enabled=progress and big) as bar:

        def on_batch(kept: int) -> None:
            bar.update(reader.bytes_read if reader is not None else kept, kept)

        count = write_corpus_store(cache_path, source, dataset, on_batch=on_batch)
        bar.update(total or count, count)
    seconds = time.perf_counter() - t0
    write_json(meta_path, {"fingerprint": fingerprint, "count": count, "build_seconds": round(seconds, 3)})
    log.info("corpus: %d paragraphs saved to %s (%.1fs)", count, cache_path, seconds)
    return ParagraphStore(cache_path)


__all__ = [
    "AbstractsDump",
    "ParagraphStore",
    "ParagraphWriter",
    "corpus_fingerprint",
    "load_or_build_corpus",
    "offsets_path",
    "open_store",
    "write_corpus_store",
]
