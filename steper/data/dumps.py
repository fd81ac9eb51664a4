"""Paragraph dumps: HotpotQA's 2017 Wikipedia abstracts, or a plain JSONL of {title, text}.

IRCoT indexes the abstracts (`enwiki-20171001-pages-meta-current-withlinks-abstracts`: folders of
`wiki_*.bz2` files, one JSON object a line with `title` and `text` = a list of sentences; the
paragraph is the sentences stripped and joined with " "). A plain JSONL of {title, text} (one
paragraph a line, `text` a string or a list of sentences) works too, for any dataset. Hyperlink
tags (<a href=...>) are removed.
"""

from __future__ import annotations

import bz2
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from steper.data.schema import Paragraph
from steper.errors import SteperError

log = logging.getLogger(__name__)

_LINK = re.compile(r"</?a\b[^>]*>", re.IGNORECASE)


def _paragraph_text(value: Any) -> str | None:
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


def _parse_line(line: bytes) -> tuple[Paragraph | None, str | None]:
    """One dump line → (its paragraph, None), or (None, what is wrong with it)."""
    try:
        row = json.loads(line)
    except ValueError as e:
        return None, f"malformed JSON line ({e})"
    if not isinstance(row, dict):
        return None, "expected a JSON object"
    title = row.get("title")
    text = _paragraph_text(row.get("text", row.get("paragraph_text")))
    if not isinstance(title, str):
        return None, "field 'title': missing or not a string"
    if text is None:
        return None, "field 'text': missing (expected a string or a list of sentences)"
    return Paragraph(title=title.strip(), text=text), None


class AbstractsDump:
    """The paragraphs of a dump folder, a `.bz2` file of JSON lines, or a plain JSONL, streamed.

    A malformed line raises (strict) or is skipped and counted in one warning. `bytes_read` (of the
    files as stored, compressed or not) and `total_bytes` give the share done, for an ETA.
    """

    def __init__(self, path: str | Path, strict: bool = True):
        self.path = path
        self.strict = strict
        self.files = _dump_files(Path(path))
        self.total_bytes = sum(f.stat().st_size for f in self.files)
        self.bytes_read = 0

    def __iter__(self) -> Iterator[Paragraph]:
        skipped: list[str] = []
        total = done = 0
        for f in self.files:
            with open(f, "rb") as raw:
                fh = bz2.BZ2File(raw) if f.suffix == ".bz2" else raw
                for lineno, line in enumerate(fh, 1):
                    if lineno % 1024 == 0:
                        self.bytes_read = done + raw.tell()
                    if not line.strip():
                        continue
                    total += 1
                    paragraph, problem = _parse_line(line)
                    if problem is None:
                        yield paragraph
                    elif self.strict:
                        raise SteperError(
                            f"{f}:{lineno}: {problem}. Expected one JSON object a line with title and "
                            "text; fix the line or set dataset.strict=false to skip bad lines."
                        )
                    else:
                        skipped.append(f"{f.name}:{lineno}: {problem}")
            done += f.stat().st_size
            self.bytes_read = done
        if skipped:
            msg = f"skipped {len(skipped)} of {total} rows of {self.path}: " + "; ".join(skipped[:3])
            log.warning(msg)
            warnings.warn(msg, stacklevel=2)
