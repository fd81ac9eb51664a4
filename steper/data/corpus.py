"""The retrieval corpus, built as IRCoT builds it, streamed to disk once and read back memory-mapped.

- 2Wiki, MuSiQue (and HotpotQA without an abstracts dump): the union of all context paragraphs of
  the given question files, deduplicated on (title, text), in first-seen order (IRCoT's
  `retriever_server/build_index.py` dedups on a hash of "title text" the same way).
- HotpotQA with `corpus_path`: IRCoT indexes the 2017 Wikipedia abstracts
  (`enwiki-20171001-pages-meta-current-withlinks-abstracts`: folders of `wiki_*.bz2` files, one JSON
  object a line with `title` and `text` = a list of sentences; the paragraph is the sentences
  stripped and joined with " "). A plain JSONL of {title, text} (one paragraph a line, `text` a
  string or a list of sentences) works too, for any dataset.

Every paragraph gets a stable `pid` = f"{dataset}:{n}", n its position.

On disk (a "paragraph store"): `corpus.jsonl` (one {pid, title, text} a line), `corpus.offsets.npy`
(the byte offset of each line, n + 1 entries) and `corpus.meta.json` (the sources it was built
from, the count; written last, so it marks a complete store). The build streams: the whole corpus
is never held as Python objects (HotpotQA's dump is 5.2M paragraphs); duplicates are found through
sorted 64-bit hashes and positions (16 bytes per kept paragraph), each hash hit confirmed against
the stored paragraph so the dedup stays exact. `ParagraphStore` reads it back: random access through a memory
map, full passes through ordinary buffered reads (so a pass does not pin the file in RSS).
"""

from __future__ import annotations

import bz2
import json
import logging
import os
import re
import tempfile
import time
import warnings
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from steper.data.readers import iter_paragraphs
from steper.data.schema import Paragraph, Question
from steper.errors import SteperError
from steper.io import iter_jsonl, read_json, write_json, write_jsonl

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
_LINK = re.compile(r"</?a\b[^>]*>", re.IGNORECASE)
# Paragraphs read and deduplicated per step of the streaming build (bounds its working memory).
DEDUP_BATCH = 50_000
# The dedup's 64-bit hash of a (title, text) key (a module attribute so tests can force collisions).
_key_hash = hash
# A corpus build over at least this many input bytes (or paragraphs, for question files) shows progress.
PROGRESS_MIN_BYTES = 20_000_000


def build_corpus(paragraphs: Iterable[Paragraph], dataset: str) -> list[Paragraph]:
    """Deduplicate on (title, text), keep first-seen order, give each a pid f"{dataset}:{n}" (in memory)."""
    seen: set[tuple[str, str]] = set()
    out: list[Paragraph] = []
    for p in paragraphs:
        key = (p.title, p.text)
        if key in seen:
            continue
        seen.add(key)
        out.append(Paragraph(title=p.title, text=p.text, is_supporting=False, pid=f"{dataset}:{len(out)}"))
    return out


# --------------------------------------------------------------------------------------------------
# the paragraph store: one JSON line per paragraph + byte offsets
# --------------------------------------------------------------------------------------------------


def offsets_path(path: str | Path) -> Path:
    """`corpus.jsonl` → `corpus.offsets.npy` (the line offsets stored beside a paragraph file)."""
    path = Path(path)
    return path.with_name(path.stem + ".offsets.npy")


class ParagraphStore(Sequence[Paragraph]):
    """Paragraphs of a JSONL file (one `Paragraph.to_dict()`-style object a line), read on demand.

    `store[i]` parses one line through a memory map (constant memory, instant open); iterating
    reads the file sequentially with ordinary reads, so a full pass over millions of paragraphs
    leaves nothing resident.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offsets_path = offsets_path(self.path)
        try:
            self.offsets = np.load(self.offsets_path, mmap_mode="r")
            size = self.path.stat().st_size
        except (OSError, ValueError) as e:
            raise SteperError(
                f"paragraph store {self.path}: cannot read it or its offsets ({e}); delete it to rebuild"
            ) from None
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or int(self.offsets[-1]) != size:
            raise SteperError(
                f"paragraph store {self.path} does not match {self.offsets_path.name} "
                "(a partial or foreign file); delete both to rebuild"
            )
        self._mm = _mmap(self.path, size)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> Paragraph: ...
    @overload
    def __getitem__(self, i: slice) -> list[Paragraph]: ...
    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"paragraph {i} out of range (store of {n})")
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return Paragraph.from_dict(json.loads(self._mm[start:end]))

    def __iter__(self) -> Iterator[Paragraph]:
        with open(self.path, "rb") as f:
            for line in f:
                yield Paragraph.from_dict(json.loads(line))

    def files(self) -> tuple[Path, Path]:
        """The paragraph file and its offsets file (to link into an index folder)."""
        return self.path, self.offsets_path


def _mmap(path: Path, size: int):
    import mmap

    if size == 0:
        return b""
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


class ParagraphWriter:
    """Append paragraphs as JSON lines to a temp file; `commit()` renames it and its offsets into place.

    The offsets live in a compact `array('q')` (8 bytes per paragraph) until written.
    """

    def __init__(self, path: str | Path, line: Callable[[Paragraph], dict[str, Any]]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._line = line
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._f = os.fdopen(fd, "w+b")
        self.offsets = array("q", [0])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def add(self, p: Paragraph) -> int:
        """Write one paragraph; returns its position."""
        data = (json.dumps(self._line(p), ensure_ascii=False) + "\n").encode("utf-8")
        self._f.write(data)
        self.offsets.append(self.offsets[-1] + len(data))
        return len(self.offsets) - 2

    def read(self, i: int) -> dict[str, Any]:
        """The i-th written line, parsed (flushes the buffer first)."""
        self._f.flush()
        start, end = self.offsets[i], self.offsets[i + 1]
        return json.loads(os.pread(self._f.fileno(), end - start, start))

    def commit(self) -> int:
        """Flush, fsync, and move the file and its offsets into place (offsets first). Returns the count."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        off_tmp = self._tmp.with_name(self._tmp.name + ".offsets.npy")
        np.save(off_tmp, np.frombuffer(self.offsets, dtype=np.int64))
        os.replace(off_tmp, offsets_path(self.path))
        os.replace(self._tmp, self.path)
        return len(self)

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        for f in (self._tmp, self._tmp.with_name(self._tmp.name + ".offsets.npy")):
            if f.exists():
                f.unlink()


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
    writer = ParagraphWriter(path, lambda p: {"pid": f"{dataset}:{len(writer)}", "title": p.title, "text": p.text})
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


def _line_offsets(path: Path) -> np.ndarray:
    """Byte offsets of the lines of `path` (n + 1 entries), read in 16 MiB blocks."""
    out = [np.zeros(1, dtype=np.int64)]
    pos = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            nl = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            out.append(nl.astype(np.int64) + pos + 1)
            pos += len(block)
    offsets = np.concatenate(out)
    if offsets[-1] != pos:  # a last line without "\n"
        offsets = np.append(offsets, pos)
    return offsets


def open_store(path: str | Path) -> ParagraphStore:
    """The store at `path`; a JSONL written without offsets (an older cache) gets them computed once."""
    path = Path(path)
    if not offsets_path(path).is_file():
        offsets = _line_offsets(path)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as f:
            np.save(f, offsets)
        os.replace(f.name, offsets_path(path))
    return ParagraphStore(path)


# --------------------------------------------------------------------------------------------------
# sources: abstracts dumps and question files
# --------------------------------------------------------------------------------------------------


def _paragraph_text(value) -> str | None:
    if isinstance(value, str):
        return _LINK.sub("", value).strip()
    if isinstance(value, list):  # a list of sentences (or of paragraphs of sentences)
        flat = [s for v in value for s in (v if isinstance(v, list) else [v])]
        return " ".join(_LINK.sub("", str(s)).strip() for s in flat).strip()
    return None


def _dump_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(
            f for f in path.rglob("*") if f.is_file() and (f.suffix == ".bz2" or f.suffix == ".jsonl")
        )
        if not files:
            raise SteperError(
                f"{path}: no .bz2 or .jsonl files in this folder. Give the HotpotQA abstracts dump folder "
                "(enwiki-20171001-pages-meta-current-withlinks-abstracts, with */wiki_*.bz2) or a JSONL of "
                '{title, text} (README section "Real datasets").'
            )
        return files
    if not path.is_file():
        raise SteperError(f'corpus file not found: {path} (see the README section "Real datasets")')
    return [path]


class _DumpReader:
    """Iterates the paragraphs of a dump; `bytes_read` (of the files as stored, compressed or not)
    and `total_bytes` give the share done, for an ETA."""

    def __init__(self, path: str | Path, strict: bool):
        self.path = path
        self.strict = strict
        self.files = _dump_files(Path(path))
        self.total_bytes = sum(f.stat().st_size for f in self.files)
        self.bytes_read = 0

    def __iter__(self) -> Iterator[Paragraph]:
        skipped: list[str] = []
        total = 0
        done = 0
        for f in self.files:
            with open(f, "rb") as raw:
                fh = bz2.BZ2File(raw) if f.suffix == ".bz2" else raw
                for lineno, line in enumerate(fh, 1):
                    if lineno % 1024 == 0:
                        self.bytes_read = done + raw.tell()
                    if not line.strip():
                        continue
                    total += 1
                    problem = None
                    try:
                        row = json.loads(line)
                    except ValueError as e:
                        row, problem = None, f"malformed JSON line ({e})"
                    if problem is None and not isinstance(row, dict):
                        problem = "expected a JSON object"
                    if problem is None:
                        title = row.get("title")
                        text = _paragraph_text(row.get("text", row.get("paragraph_text")))
                        if not isinstance(title, str):
                            problem = "field 'title': missing or not a string"
                        elif text is None:
                            problem = "field 'text': missing (expected a string or a list of sentences)"
                    if problem is not None:
                        if self.strict:
                            raise SteperError(
                                f"{f}:{lineno}: {problem}. Expected one JSON object a line with title and "
                                "text; fix the line or set dataset.strict=false to skip bad lines."
                            )
                        skipped.append(f"{f.name}:{lineno}: {problem}")
                        continue
                    yield Paragraph(title=title.strip(), text=text)
            done += f.stat().st_size
            self.bytes_read = done
        if skipped:
            msg = f"skipped {len(skipped)} of {total} rows of {self.path}: " + "; ".join(skipped[:3])
            log.warning(msg)
            warnings.warn(msg, stacklevel=3)


def iter_abstracts(path: str | Path, *, strict: bool = True) -> Iterator[Paragraph]:
    """Paragraphs of an abstracts dump folder, a `.bz2` file of JSON lines, or a plain JSONL, streamed.

    Each line: {"title": ..., "text": [sentences] | "..."} (or "paragraph_text"). Hyperlink tags
    (<a href=...>) are removed. A malformed line raises (strict) or is skipped and counted.
    """
    yield from _DumpReader(path, strict)


def _question_paragraphs(question_files: Sequence[tuple[str | Path, str]], strict: bool) -> Iterator[Paragraph]:
    for path, fmt in question_files:
        yield from iter_paragraphs(path, fmt, strict=strict)


def build_corpus_from_sources(
    *,
    dataset: str,
    question_files: Sequence[tuple[str | Path, str]] = (),
    corpus_path: str | Path | None = None,
    strict: bool = True,
) -> list[Paragraph]:
    """The corpus of a paragraph dump (`corpus_path`), else of the question files' contexts, in memory
    (for small corpora; `load_or_build_corpus` streams to disk instead)."""
    if corpus_path is not None:
        return build_corpus(iter_abstracts(corpus_path, strict=strict), dataset)
    if not question_files:
        raise SteperError(f"dataset `{dataset}`: no question files and no corpus_path to build a corpus from")
    return build_corpus(_question_paragraphs(question_files, strict), dataset)


def save_corpus(path: str | Path, corpus: Sequence[Paragraph]) -> int:
    return write_jsonl(path, ({"pid": p.pid, "title": p.title, "text": p.text} for p in corpus))


def read_corpus(path: str | Path) -> list[Paragraph]:
    out = []
    for lineno, row in iter_jsonl(path):
        try:
            out.append(Paragraph(title=row["title"], text=row["text"], pid=row["pid"]))
        except KeyError as e:
            raise SteperError(
                f"{path}:{lineno}: missing field {e.args[0]!r} in a corpus line. Delete the file to rebuild it."
            ) from None
    return out


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
        log.warning("corpus: %s has %d lines, expected %s; rebuilding", cache_path, len(store), meta.get("count"))
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
        reader = _DumpReader(corpus_path, strict)
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


def assign_pids(questions: Iterable[Question], corpus: Sequence[Paragraph]) -> int:
    """Set `pid` on every context paragraph found in the corpus (by title and text); returns how many."""
    index = {(p.title, p.text): p.pid for p in corpus}
    n = 0
    for q in questions:
        for p in q.contexts:
            pid = index.get((p.title, p.text))
            if pid is not None:
                p.pid = pid
                n += 1
    return n


__all__ = [
    "ParagraphStore",
    "ParagraphWriter",
    "assign_pids",
    "build_corpus",
    "build_corpus_from_sources",
    "corpus_fingerprint",
    "iter_abstracts",
    "load_or_build_corpus",
    "offsets_path",
    "open_store",
    "read_corpus",
    "save_corpus",
    "write_corpus_store",
]
