"""The retrieval corpus, built as IRCoT builds it, saved once and reloaded.

- 2Wiki, MuSiQue (and HotpotQA without an abstracts dump): the union of all context paragraphs of
  the given question files, deduplicated on (title, text), in first-seen order (IRCoT's
  `retriever_server/build_index.py` dedups on a hash of "title text" the same way).
- HotpotQA with `corpus_path`: IRCoT indexes the 2017 Wikipedia abstracts
  (`enwiki-20171001-pages-meta-current-withlinks-abstracts`: folders of `wiki_*.bz2` files, one JSON
  object a line with `title` and `text` = a list of sentences; the paragraph is the sentences
  stripped and joined with " "). A plain JSONL of {title, text} (one paragraph a line, `text` a
  string or a list of sentences) works too, for any dataset.

Every paragraph gets a stable `pid` = f"{dataset}:{n}", n its position. The corpus is written once
as JSONL (atomic write) with a small `corpus.meta.json` beside it recording its sources; a later
call with the same sources reloads it instead of rebuilding.
"""

from __future__ import annotations

import bz2
import json
import logging
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from steper.data.readers import iter_paragraphs
from steper.data.schema import Paragraph, Question
from steper.errors import SteperError
from steper.io import iter_jsonl, read_json, write_json, write_jsonl

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
_LINK = re.compile(r"</?a\b[^>]*>", re.IGNORECASE)


def build_corpus(paragraphs: Iterable[Paragraph], dataset: str) -> list[Paragraph]:
    """Deduplicate on (title, text), keep first-seen order, give each a pid f"{dataset}:{n}"."""
    seen: set[tuple[str, str]] = set()
    out: list[Paragraph] = []
    for p in paragraphs:
        key = (p.title, p.text)
        if key in seen:
            continue
        seen.add(key)
        out.append(Paragraph(title=p.title, text=p.text, is_supporting=False, pid=f"{dataset}:{len(out)}"))
    return out


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


def iter_abstracts(path: str | Path, *, strict: bool = True) -> Iterator[Paragraph]:
    """Paragraphs of an abstracts dump folder, a `.bz2` file of JSON lines, or a plain JSONL.

    Each line: {"title": ..., "text": [sentences] | "..."} (or "paragraph_text"). Hyperlink tags
    (<a href=...>) are removed. A malformed line raises (strict) or is skipped and counted.
    """
    skipped: list[str] = []
    total = 0
    for f in _dump_files(Path(path)):
        opener = bz2.open if f.suffix == ".bz2" else open
        with opener(f, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
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
                    if strict:
                        raise SteperError(
                            f"{f}:{lineno}: {problem}. Expected one JSON object a line with title and text; "
                            "fix the line or set dataset.strict=false to skip bad lines."
                        )
                    skipped.append(f"{f.name}:{lineno}: {problem}")
                    continue
                yield Paragraph(title=title.strip(), text=text)
    if skipped:
        msg = f"skipped {len(skipped)} of {total} rows of {path}: " + "; ".join(skipped[:3])
        log.warning(msg)
        warnings.warn(msg, stacklevel=2)


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


def build_corpus_from_sources(
    *,
    dataset: str,
    question_files: Sequence[tuple[str | Path, str]] = (),
    corpus_path: str | Path | None = None,
    strict: bool = True,
) -> list[Paragraph]:
    """The corpus of a paragraph dump (`corpus_path`), else of the question files' contexts."""
    if corpus_path is not None:
        return build_corpus(iter_abstracts(corpus_path, strict=strict), dataset)
    if not question_files:
        raise SteperError(f"dataset `{dataset}`: no question files and no corpus_path to build a corpus from")

    def paragraphs() -> Iterator[Paragraph]:
        for path, fmt in question_files:
            yield from iter_paragraphs(path, fmt, strict=strict)

    return build_corpus(paragraphs(), dataset)


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


def load_or_build_corpus(
    cache_path: str | Path,
    *,
    dataset: str,
    question_files: Sequence[tuple[str | Path, str]] = (),
    corpus_path: str | Path | None = None,
    strict: bool = True,
) -> list[Paragraph]:
    """Reload the corpus at `cache_path` if it was built from the same sources; else build and save it.

    `question_files`: (path, format) pairs whose context paragraphs make the corpus; `corpus_path`:
    a paragraph dump used instead (HotpotQA abstracts, or a JSONL of {title, text}).
    """
    cache_path = Path(cache_path)
    meta_path = cache_path.with_name(cache_path.stem + ".meta.json")
    fingerprint = corpus_fingerprint(dataset=dataset, question_files=question_files, corpus_path=corpus_path)
    if cache_path.is_file() and meta_path.is_file():
        meta = read_json(meta_path)
        if meta.get("fingerprint") == fingerprint:
            corpus = read_corpus(cache_path)
            if len(corpus) == meta.get("count"):
                log.info("corpus: reloaded %d paragraphs from %s", len(corpus), cache_path)
                return corpus
            log.warning(
                "corpus: %s has %d lines, expected %s; rebuilding", cache_path, len(corpus), meta.get("count")
            )
        else:
            log.info("corpus: sources changed since %s was built; rebuilding", cache_path)
    log.info("corpus: building %s", cache_path)
    corpus = build_corpus_from_sources(
        dataset=dataset, question_files=question_files, corpus_path=corpus_path, strict=strict
    )
    save_corpus(cache_path, corpus)
    write_json(meta_path, {"fingerprint": fingerprint, "count": len(corpus)})
    log.info("corpus: %d paragraphs saved to %s", len(corpus), cache_path)
    return corpus


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
    "assign_pids",
    "build_corpus",
    "build_corpus_from_sources",
    "corpus_fingerprint",
    "iter_abstracts",
    "load_or_build_corpus",
    "read_corpus",
    "save_corpus",
]
