"""The context paragraphs of each format (shared by the question readers and the corpus builder).

Texts are built as IRCoT's processing scripts build them, so that the retrieval corpus, the question
contexts and IRCoT's processed files agree: HotpotQA joins the sentences with "" (the official
sentences carry their own leading space) then strips; 2Wiki joins them with " " then strips;
MuSiQue and IRCoT texts are stripped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from steper.data.readers.hf import hf_to_official, rows_hf
from steper.data.readers.rows import (
    FORMAT_LABELS,
    BadRow,
    check_file,
    collect,
    get_field,
    get_text,
    rows_json_list,
    rows_jsonl,
)
from steper.data.schema import Paragraph
from steper.errors import SteperError


def pairs_context(row: Any, field: str = "context") -> list[tuple[str, list[str]]]:
    """[[title, [sentences]], ...] → list of (title, sentences), checked."""
    ctx = get_field(row, field, list)
    out = []
    for j, item in enumerate(ctx):
        if not (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], list)
            and all(isinstance(s, str) for s in item[1])
        ):
            raise BadRow(f"{field}[{j}]", "expected [title, [sentence, ...]]")
        out.append((item[0], list(item[1])))
    return out


def hotpot_text(sentences: list[str]) -> str:
    return "".join(sentences).strip()


def twowiki_text(sentences: list[str]) -> str:
    return " ".join(sentences).strip()


def paragraphs_from_pairs(
    pairs: Iterable[tuple[str, list[str]]], join: Callable[[list[str]], str], supporting: set[str]
) -> list[Paragraph]:
    """One paragraph per (title, sentences), duplicates left out; `supporting` titles marked."""
    out, seen = [], set()
    for title, sents in pairs:
        title, text = title.strip(), join(sents)
        if (title, text) in seen:
            continue
        seen.add((title, text))
        out.append(Paragraph(title=title, text=text, is_supporting=title in supporting))
    return out


def absent_titles(supporting: Iterable[str], contexts: list[Paragraph]) -> list[str]:
    """The supporting titles, in order, that no context paragraph has (a fullwiki row's missing gold)."""
    present = {p.title for p in contexts}
    return [t for t in dict.fromkeys(supporting) if t not in present]


def warn_absent_support(path: Path, questions: list, log: Any) -> None:
    """One warning for a file whose rows name supporting paragraphs missing from their contexts."""
    absent = [q for q in questions if q.absent_support]
    if not absent:
        return
    empty = sum(not q.contexts for q in absent)
    log.warning(
        "%s: %d of %d rows name supporting paragraphs that are not in their context (%d with an empty "
        "context), as HotpotQA's fullwiki files do. They are read as they are: those paragraphs count as "
        "gold (recall, the oracle) but are in the corpus only if another row's context or "
        "dataset.corpus_path has them, and their gold-chain steps have no sentence, so the oracle "
        "answers such a question only if retrieval finds every gold paragraph. For teacher data use the "
        "distractor files, or set dataset.corpus_path to the Wikipedia abstracts",
        path, len(absent), len(questions), empty,
    )  # fmt: skip


def supporting_facts(row: Any, *, indexed: bool) -> list[tuple[str, Any]]:
    """`supporting_facts` as (title, sentence index) pairs; `indexed`: the index must be an int."""
    out = []
    for j, sf in enumerate(get_field(row, "supporting_facts", list)):
        if not (
            isinstance(sf, (list, tuple))
            and len(sf) == 2
            and isinstance(sf[0], str)
            and (isinstance(sf[1], int) or not indexed)
        ):
            raise BadRow(f"supporting_facts[{j}]", "expected [title, sentence_index]")
        out.append((sf[0].strip(), sf[1]))
    return out


def titled_paragraphs(row: Any, field: str, *, optional: bool = False) -> list[Paragraph]:
    """[{title, paragraph_text, is_supporting}, ...] (MuSiQue's `paragraphs`, IRCoT's `contexts`)."""
    out = []
    for j, c in enumerate(get_field(row, field, list, optional=optional) or []):
        try:
            title = get_text(c, "title")
            text = get_text(c, "paragraph_text")
        except BadRow as e:
            raise BadRow(f"{field}[{j}].{e.field}", e.problem) from None
        out.append(
            Paragraph(title=title.strip(), text=text.strip(), is_supporting=bool(c.get("is_supporting")))
        )
    return out


def row_paragraphs(row: Any, fmt: str) -> list[Paragraph]:
    """The context paragraphs of one raw row (no answer needed: test files without answers work)."""
    if fmt == "hotpot":
        return paragraphs_from_pairs(pairs_context(row), hotpot_text, set())
    if fmt == "hotpot_hf":
        return paragraphs_from_pairs(pairs_context(hf_to_official(row)), hotpot_text, set())
    if fmt == "2wiki":
        return paragraphs_from_pairs(pairs_context(row), twowiki_text, set())
    if fmt == "musique":
        return titled_paragraphs(row, "paragraphs")
    if fmt == "ircot":
        return titled_paragraphs(row, "pinned_contexts", optional=True) + titled_paragraphs(row, "contexts")
    raise SteperError(f"no paragraph reader for format {fmt!r}; valid: {', '.join(FORMAT_LABELS)}")


def iter_rows(path: str | Path, fmt: str, *, strict: bool = True, malformed: list | None = None):
    """(label, raw row) of a dataset file of format `fmt`; `label` is "row i" / "line n" (+ id)."""
    p = check_file(path)
    if fmt in ("hotpot", "2wiki"):
        return rows_json_list(p, fmt)
    if fmt in ("musique", "ircot"):
        return rows_jsonl(p, strict, malformed if malformed is not None else [])
    if fmt == "hotpot_hf":
        return rows_hf(path)
    raise SteperError(f"unknown dataset format {fmt!r}; valid: {', '.join(FORMAT_LABELS)}")


def iter_paragraphs(path: str | Path, fmt: str, *, strict: bool = True) -> list[Paragraph]:
    """All context paragraphs of a file, in order (duplicates kept; the corpus builder dedups)."""
    malformed: list[int] = []
    per_row = collect(
        Path(path),
        iter_rows(path, fmt, strict=strict, malformed=malformed),
        lambda row: row_paragraphs(row, fmt),
        strict=strict,
        fmt=fmt,
        malformed=malformed,
    )
    return [p for paras in per_row for p in paras]
