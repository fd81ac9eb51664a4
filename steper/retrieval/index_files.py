"""The files of a BM25 index folder: names, meta.json, atomic writes (see `steper.retrieval.bm25`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from steper.data.schema import Paragraph
from steper.errors import SteperError

FORMAT_VERSION = 1
METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")
META_FILE = "meta.json"
PARAGRAPHS_FILE = "paragraphs.jsonl"
OFFSETS_FILE = "paragraphs.offsets.npy"


def _params(k1: float, b: float, method: str, stemmer: str | None, stopwords: Any) -> dict[str, Any]:
    """The parameters that define an index, validated and in a canonical (JSON-comparable) form."""
    if method not in METHODS:
        raise SteperError(f"retriever: unknown BM25 method {method!r}; use one of {', '.join(METHODS)}")
    if not isinstance(stopwords, (str, type(None))):
        stopwords = sorted({str(w).lower() for w in stopwords})
    return {
        "k1": float(k1),
        "b": float(b),
        "method": method,
        "stemmer": stemmer,
        "stopwords": stopwords if stopwords is not False else None,
    }


def _paragraph_line(p: Paragraph) -> bytes:
    return (json.dumps(p.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")


def write_meta(folder: Path, params: dict[str, Any], stopwords: Any, n: int, **more: Any) -> None:
    """meta.json, written last: its presence marks a complete folder even before the rename."""
    meta = {
        "format_version": FORMAT_VERSION,
        "params": params,
        "stopword_list": sorted(stopwords),
        "num_paragraphs": n,
        "bm25s_version": _bm25s_version(),
        **more,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def temp_dir_beside(out: Path) -> Path:
    """A fresh temporary folder next to `out` (same file system, so it can be renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))


def _paragraph_dict(p: Paragraph) -> dict[str, Any]:
    return p.to_dict()


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (no second copy of a multi-GB corpus; the cache replaces files by rename, so the
    link keeps the content it was made with), or a copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _bm25s_version() -> str:
    import bm25s

    return getattr(bm25s, "__version__", "unknown")


def _read_meta(path: Path) -> dict[str, Any]:
    f = path / META_FILE
    if not f.is_file():
        raise SteperError(f"BM25 index at {path} is missing or incomplete (no {META_FILE}); build it first")
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SteperError(
            f"BM25 index at {path}: unreadable {META_FILE} ({e}); delete it to rebuild"
        ) from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise SteperError(
            f"BM25 index at {path} has format {meta.get('format_version') if isinstance(meta, dict) else '?'}, "
            f"this version reads {FORMAT_VERSION}; delete it to rebuild"
        )
    return meta


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished directory `src` to `dst`, replacing whatever was there (restored if the move fails)."""
    if not (dst.exists() or dst.is_symlink()):
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
    os.replace(dst, old / dst.name)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old / dst.name, dst)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
