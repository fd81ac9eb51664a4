"""Readers of the official dataset formats → `list[Question]` in the one schema (`steper.data.schema`).

Formats (the `format` of a dataset config), one module each:

- `hotpot`    HotpotQA official JSON (one array of rows with `_id`, `supporting_facts`, `context`, ...).
- `hotpot_hf` the HF `hotpot_qa` distractor layout (`id`, `supporting_facts={title, sent_id}`,
              `context={title, sentences}`), read with `datasets` from LOCAL parquet/JSON files.
- `2wiki`     2WikiMultihopQA official JSON (+ `id_aliases.json` for answer aliases).
- `musique`   MuSiQue v1.0 JSONL (answerable subset).
- `ircot`     IRCoT's processed JSONL (`question_id`, `question_text`, `answers_objects`, `contexts`).

`paragraphs` builds the context paragraphs as IRCoT's processing scripts do (shared with the corpus
builder); `sentences` writes the gold chains' sentences; `rows` holds the field access and the
reading loop.

Errors: a missing file, a malformed line or a row missing a field raises a `SteperError` naming
the file, the row/line and the field. With `strict=False` bad rows are skipped and counted in one
warning ("skipped 2 of 50 rows of FILE: ..."). A JSON Lines file given to a format that expects one
JSON array is named as such, with the format that reads it or how to convert it.
"""

from __future__ import annotations

from pathlib import Path

from steper.data.readers.hotpot import read_hotpot, read_hotpot_hf
from steper.data.readers.ircot import read_ircot
from steper.data.readers.musique import read_musique
from steper.data.readers.paragraphs import iter_paragraphs, iter_rows, row_paragraphs
from steper.data.readers.rows import FORMAT_LABELS, BadRow
from steper.data.readers.sentences import (
    RELATION_TEMPLATES,
    relation_sentence,
    step_sentence,
    substitute_refs,
)
from steper.data.readers.twowiki import ALIASES_FILE, read_2wiki, read_2wiki_aliases
from steper.data.schema import Question
from steper.errors import SteperError

_READERS = {
    "hotpot": read_hotpot,
    "hotpot_hf": read_hotpot_hf,
    "musique": read_musique,
    "ircot": read_ircot,
}


def read_questions(
    path: str | Path,
    fmt: str,
    *,
    strict: bool = True,
    dataset: str | None = None,
    aliases_path: str | Path | None = None,
) -> list[Question]:
    """Read one question file of format `fmt` (one of FORMAT_LABELS)."""
    name = dataset or fmt
    if fmt == "2wiki":
        return read_2wiki(path, aliases_path=aliases_path, strict=strict, dataset=name)
    if fmt not in _READERS:
        raise SteperError(f"unknown dataset format {fmt!r}; valid: {', '.join(FORMAT_LABELS)}")
    return _READERS[fmt](path, strict=strict, dataset=name)


__all__ = [
    "ALIASES_FILE",
    "FORMAT_LABELS",
    "RELATION_TEMPLATES",
    "BadRow",
    "iter_paragraphs",
    "iter_rows",
    "read_2wiki",
    "read_2wiki_aliases",
    "read_hotpot",
    "read_hotpot_hf",
    "read_ircot",
    "read_musique",
    "read_questions",
    "relation_sentence",
    "row_paragraphs",
    "step_sentence",
    "substitute_refs",
]
