"""The paragraph store: one JSON line per paragraph plus the byte offset of each line.

On disk: `corpus.jsonl` (one {pid, title, text} a line) and `corpus.offsets.npy` (the byte offset of
each line, n + 1 entries). `ParagraphStore` reads it back: random access through a memory map, full
passes through ordinary buffered reads (so a pass does not pin the file in RSS). `ParagraphWriter`
appends to a temp file and renames it and its offsets into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from steper.data.schema import Paragraph
from steper.errors import SteperError


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
