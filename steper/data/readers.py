"""Readers of the official dataset formats → `list[Question]` in the one schema (`steper.data.schema`).

Formats (the `format` of a dataset config):

- `hotpot`    HotpotQA official JSON (a list of rows with `_id`, `supporting_facts`, `context`, ...).
- `hotpot_hf` the HF `hotpot_qa` distractor layout (`id`, `supporting_facts={title, sent_id}`,
              `context={title, sentences}`), read with `datasets` from LOCAL parquet/JSON files.
- `2wiki`     2WikiMultihopQA official JSON (+ `id_aliases.json` for answer aliases).
- `musique`   MuSiQue v1.0 JSONL (answerable subset).
- `ircot`     IRCoT's processed JSONL (`question_id`, `question_text`, `answers_objects`, `contexts`).

Paragraph texts are built as IRCoT's processing scripts build them, so that the retrieval corpus,
the question contexts and IRCoT's processed files agree: HotpotQA joins the sentences with "" (the
official sentences carry their own leading space) then strips; 2Wiki joins them with " " then
strips; MuSiQue and IRCoT texts are stripped.

Gold reasoning chains (what the oracle teacher writes), one `ChainStep` per step:
- HotpotQA: one step per supporting-fact sentence, in the order given (sentence text stripped).
- 2Wiki: one step per evidence triple, as a plain sentence (`relation_sentence`).
- MuSiQue: one step per decomposition step, "#k" references substituted (as IRCoT does), the
  sentence made by `step_sentence`.
- IRCoT: from `reasoning_steps` when the row has them (annotated `cot_sent` steps, or MuSiQue-style
  "question >>>> answer" strings); else no chain.
Chain sentences never contain the loop's stop phrase ("answer is"): the final "So the answer is: a."
is added by whoever writes the final step, from `Question.answer`.

Errors: a missing file, a malformed line or a row missing a field raises a `SteperError` naming
the file, the row/line and the field. With `strict=False` bad rows are skipped and counted in one
warning ("skipped 2 of 50 rows of FILE: ...").
"""

from __future__ import annotations

import glob
import logging
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from steper.data.schema import ChainStep, Paragraph, Question
from steper.errors import SteperError
from steper.io import iter_jsonl, read_json

log = logging.getLogger(__name__)

FORMAT_LABELS = {
    "hotpot": "HotpotQA official JSON",
    "hotpot_hf": "HF `hotpot_qa` distractor",
    "2wiki": "2WikiMultihopQA official JSON",
    "musique": "MuSiQue v1.0 JSONL",
    "ircot": "IRCoT processed JSONL",
}

# --------------------------------------------------------------------------------------------------
# Sentences from triples and sub-questions
# --------------------------------------------------------------------------------------------------

# 2WikiMultihopQA (Wikidata) relations → a plain sentence. {s} subject, {o} object.
RELATION_TEMPLATES: dict[str, str] = {
    "director": "The director of {s} is {o}.",
    "composer": "The composer of {s} is {o}.",
    "producer": "The producer of {s} is {o}.",
    "screenwriter": "The screenwriter of {s} is {o}.",
    "editor": "The editor of {s} is {o}.",
    "performer": "{s} is performed by {o}.",
    "cast member": "{o} is a cast member of {s}.",
    "author": "The author of {s} is {o}.",
    "publisher": "The publisher of {s} is {o}.",
    "manufacturer": "{s} is manufactured by {o}.",
    "founded by": "{s} was founded by {o}.",
    "inception": "{s} was founded in {o}.",
    "publication date": "{s} was published in {o}.",
    "date of birth": "{s} was born on {o}.",
    "date of death": "{s} died on {o}.",
    "place of birth": "{s} was born in {o}.",
    "place of death": "{s} died in {o}.",
    "place of burial": "{s} was buried in {o}.",
    "cause of death": "{s} died of {o}.",
    "country of citizenship": "{s} is a citizen of {o}.",
    "country of origin": "{s} is from {o}.",
    "country": "{s} is in {o}.",
    "located in the administrative territorial entity": "{s} is located in {o}.",
    "capital": "The capital of {s} is {o}.",
    "father": "The father of {s} is {o}.",
    "mother": "The mother of {s} is {o}.",
    "spouse": "{s} is married to {o}.",
    "child": "{o} is a child of {s}.",
    "sibling": "{o} is a sibling of {s}.",
    "educated at": "{s} was educated at {o}.",
    "employer": "{s} worked for {o}.",
    "award received": "{s} received the {o}.",
    "occupation": "{s} is a {o}.",
    "doctoral advisor": "The doctoral advisor of {s} is {o}.",
    "student of": "{s} was a student of {o}.",
    "record label": "The record label of {s} is {o}.",
    "original language of film or TV show": "The original language of {s} is {o}.",
    "genre": "The genre of {s} is {o}.",
    "member of sports team": "{s} played for {o}.",
    "position held": "{s} held the position of {o}.",
    "head of government": "The head of government of {s} is {o}.",
    "headquarters location": "The headquarters of {s} are in {o}.",
    "owned by": "{s} is owned by {o}.",
    "parent organization": "The parent organization of {s} is {o}.",
    "religion": "The religion of {s} is {o}.",
    "languages spoken, written or signed": "{s} speaks {o}.",
}
GENERIC_RELATION_TEMPLATE = "The {rel} of {s} is {o}."


def relation_sentence(subj: str, rel: str, obj: str) -> str:
    """A plain sentence for a (subject, relation, object) fact; generic fallback for unknown relations."""
    subj, rel, obj = str(subj).strip(), str(rel).strip(), str(obj).strip()
    template = RELATION_TEMPLATES.get(rel.lower())
    if template is None:
        return GENERIC_RELATION_TEMPLATE.format(rel=rel, s=subj, o=obj)
    return template.format(s=subj, o=obj)


_PREPOSITIONS = {
    "of", "in", "on", "at", "for", "by", "with", "from", "to", "about", "into", "after", "before",
    "under", "over", "during", "since", "as", "than", "between", "through", "against", "among",
}  # fmt: skip
_AUX = {"is", "was", "are", "were", "did", "does", "do", "has", "have", "had", "can", "could", "will"}
_IRREGULAR_PARTICIPLES = {
    "born", "built", "made", "written", "held", "won", "given", "taken", "shown", "drawn", "sold",
    "begun", "done", "seen", "known", "run", "set", "found", "lost", "led", "fought", "bought", "sent",
    "kept", "left", "sung", "shot", "struck", "chosen", "spoken", "broken", "grown", "thrown", "hidden",
    "driven", "laid", "paid", "heard", "met", "read", "fed", "hung", "dug", "shut", "spread",
}  # fmt: skip
_WH_BE = re.compile(r"^(who|what|which)\s+(is|was|are|were)\s+(.+)$", re.IGNORECASE)
_WHEN_WHERE_BE = re.compile(r"^(when|where)\s+(is|was|are|were)\s+(.+)$", re.IGNORECASE)
_WHO_VERB = re.compile(r"^who\s+([A-Za-z]+)\s+(.+)$", re.IGNORECASE)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _is_participle(word: str) -> bool:
    w = word.lower()
    return (w.endswith("ed") and len(w) > 3) or w in _IRREGULAR_PARTICIPLES


def step_sentence(question: str, answer: str) -> str:
    """A reasoning sentence for a (sub-question, answer) pair: deterministic, simple rules.

    - "X >> relation" (MuSiQue's Wikidata-style steps) → `relation_sentence(X, relation, answer)`.
    - "Who/What/Which is|was <phrase>?" → "<Phrase> is|was <answer>."
    - "When/Where is|was <subject> <participle>?" → "<Subject> was <participle> in <answer>."
    - "Who <verb> <rest>?" → "<answer> <verb> <rest>."
    - otherwise → "<question without '?'>: <answer>."
    """
    q = " ".join(str(question).split()).rstrip("?").strip()
    a = str(answer).strip()
    if ">>" in q:
        subj, _, rel = q.partition(">>")
        return relation_sentence(subj, rel, a)
    m = _WH_BE.match(q)
    if m:
        be, rest = m.group(2).lower(), m.group(3)
        words = rest.split()
        if words[0].lower() not in _PREPOSITIONS and words[-1].lower() not in _PREPOSITIONS:
            return f"{_cap(rest)} {be} {a}."
    m = _WHEN_WHERE_BE.match(q)
    if m:
        be, rest = m.group(2).lower(), m.group(3)
        words = rest.split()
        if words[-1].lower() not in _PREPOSITIONS:
            if len(words) > 1 and _is_participle(words[-1]):
                return f"{_cap(' '.join(words[:-1]))} {be} {words[-1]} in {a}."
            return f"{_cap(rest)} {be} in {a}."
    m = _WHO_VERB.match(q)
    if m and m.group(1).lower() not in _AUX:
        return f"{a} {m.group(1)} {m.group(2)}."
    return f"{_cap(q)}: {a}."


def substitute_refs(question: str, answers: dict[int, str]) -> str:
    """Replace "#1", "#2", ... by the answers of the earlier steps (as IRCoT's process_musique.py)."""
    for k in range(9, 0, -1):  # high first, so "#1" never eats the head of a "#12"
        if f"#{k}" in question and k in answers:
            question = question.replace(f"#{k}", answers[k])
    return question


# --------------------------------------------------------------------------------------------------
# Row errors and the reading loop
# --------------------------------------------------------------------------------------------------


class BadRow(Exception):
    """A row of a dataset file that does not have the expected layout."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field {field!r}: {problem}")
        self.field = field
        self.problem = problem


def _get(row: Any, key: str, kind: type | tuple[type, ...] | None = None, *, optional: bool = False) -> Any:
    if not isinstance(row, dict):
        raise BadRow("(row)", f"expected a JSON object, got {type(row).__name__}")
    if key not in row or row[key] is None:
        if optional:
            return None
        raise BadRow(key, "missing")
    value = row[key]
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRow(key, f"expected {names}, got {type(value).__name__}")
    return value


def _text(row: Any, key: str, *, optional: bool = False) -> str | None:
    value = _get(row, key, (str, int, float), optional=optional)
    return None if value is None else str(value)


def _hint(fmt: str) -> str:
    label = FORMAT_LABELS.get(fmt, fmt)
    return (
        f'Expected the {label} layout (README section "Real datasets"): fix or remove the row, '
        "or set dataset.strict=false to skip bad rows."
    )


def _row_id(row: Any) -> str:
    if isinstance(row, dict):
        for k in ("_id", "id", "question_id", "qid"):
            if isinstance(row.get(k), (str, int)):
                return f" (id {row[k]!r})"
    return ""


def _warn_skipped(path: Path | str, skipped: list[str], total: int) -> None:
    if not skipped:
        return
    head = "; ".join(skipped[:3]) + (f"; ... ({len(skipped) - 3} more)" if len(skipped) > 3 else "")
    msg = f"skipped {len(skipped)} of {total} rows of {path}: {head}"
    log.warning(msg)
    warnings.warn(msg, stacklevel=3)


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise SteperError(
            f"file not found: {p}. Put the dataset files there as described in the README section "
            '"Real datasets", or point the dataset config at them (e.g. dataset.dev_path=...).'
        )
    return p


def _rows_json_list(path: Path) -> Iterator[tuple[str, Any]]:
    data = read_json(path)
    if not isinstance(data, list):
        raise SteperError(f"{path}: expected a JSON list of question rows, got a {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"row {i}{_row_id(row)}", row


def _rows_jsonl(path: Path, strict: bool, malformed: list) -> Iterator[tuple[str, Any]]:
    try:
        for lineno, row in iter_jsonl(path, strict=strict, skipped=malformed):
            yield f"line {lineno}{_row_id(row)}", row
    except SteperError as e:
        raise SteperError(
            f"{e} Fix or remove the line, or set dataset.strict=false to skip bad rows."
        ) from None


def _collect(
    path: Path,
    rows: Iterable[tuple[str, Any]],
    parse: Callable[[Any], Any],
    *,
    strict: bool,
    fmt: str,
    malformed: list | None = None,
) -> list:
    """Parse every (label, row); a BadRow raises (strict) or is skipped and counted in one warning."""
    out, skipped, total = [], [], 0
    for label, row in rows:
        total += 1
        try:
            item = parse(row)
        except BadRow as e:
            if strict:
                raise SteperError(f"{path}: {label}: {e}. {_hint(fmt)}") from None
            skipped.append(f"{label}: {e}")
            continue
        if item is not None:
            out.append(item)
    if malformed:
        skipped = [f"line {n}: malformed JSON" for n in malformed] + skipped
        total += len(malformed)
    _warn_skipped(path, skipped, total)
    return out


# --------------------------------------------------------------------------------------------------
# Paragraphs of each format (shared by the question readers and the corpus builder)
# --------------------------------------------------------------------------------------------------


def _pairs_context(row: Any, field: str = "context") -> list[tuple[str, list[str]]]:
    """[[title, [sentences]], ...] → list of (title, sentences), checked."""
    ctx = _get(row, field, list)
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


def _hotpot_text(sentences: list[str]) -> str:
    return "".join(sentences).strip()


def _twowiki_text(sentences: list[str]) -> str:
    return " ".join(sentences).strip()


def _paragraphs_from_pairs(pairs, join: Callable[[list[str]], str], supporting: set[str]) -> list[Paragraph]:
    out, seen = [], set()
    for title, sents in pairs:
        title, text = title.strip(), join(sents)
        if (title, text) in seen:
            continue
        seen.add((title, text))
        out.append(Paragraph(title=title, text=text, is_supporting=title in supporting))
    return out


def _hf_to_official(row: Any) -> dict:
    """One row of the HF `hotpot_qa` layout → the official HotpotQA JSON layout."""
    sf = _get(row, "supporting_facts", dict)
    ctx = _get(row, "context", dict)
    for key, d in (("title", sf), ("sent_id", sf), ("title", ctx), ("sentences", ctx)):
        if not isinstance(d.get(key), list):
            field = ("supporting_facts" if d is sf else "context") + f".{key}"
            raise BadRow(field, "missing or not a list")
    if len(sf["title"]) != len(sf["sent_id"]):
        raise BadRow("supporting_facts", "title and sent_id have different lengths")
    if len(ctx["title"]) != len(ctx["sentences"]):
        raise BadRow("context", "title and sentences have different lengths")
    return {
        "_id": _text(row, "id"),
        "question": row.get("question"),
        "answer": row.get("answer"),
        "type": row.get("type"),
        "level": row.get("level"),
        "supporting_facts": [[t, i] for t, i in zip(sf["title"], sf["sent_id"])],
        "context": [[t, s] for t, s in zip(ctx["title"], ctx["sentences"])],
    }


def _ircot_paragraphs(row: Any, field: str = "contexts", *, optional: bool = False) -> list[Paragraph]:
    ctxs = _get(row, field, list, optional=optional) or []
    out = []
    for j, c in enumerate(ctxs):
        try:
            title = _text(c, "title")
            text = _text(c, "paragraph_text")
        except BadRow as e:
            raise BadRow(f"{field}[{j}].{e.field}", e.problem) from None
        out.append(
            Paragraph(title=title.strip(), text=text.strip(), is_supporting=bool(c.get("is_supporting")))
        )
    return out


def _musique_paragraphs(row: Any) -> list[Paragraph]:
    paras = _get(row, "paragraphs", list)
    out = []
    for j, p in enumerate(paras):
        try:
            title = _text(p, "title")
            text = _text(p, "paragraph_text")
        except BadRow as e:
            raise BadRow(f"paragraphs[{j}].{e.field}", e.problem) from None
        out.append(
            Paragraph(title=title.strip(), text=text.strip(), is_supporting=bool(p.get("is_supporting")))
        )
    return out


def row_paragraphs(row: Any, fmt: str) -> list[Paragraph]:
    """The context paragraphs of one raw row (no answer needed: test files without answers work)."""
    if fmt == "hotpot":
        return _paragraphs_from_pairs(_pairs_context(row), _hotpot_text, set())
    if fmt == "hotpot_hf":
        return _paragraphs_from_pairs(_pairs_context(_hf_to_official(row)), _hotpot_text, set())
    if fmt == "2wiki":
        return _paragraphs_from_pairs(_pairs_context(row), _twowiki_text, set())
    if fmt == "musique":
        return _musique_paragraphs(row)
    if fmt == "ircot":
        return _ircot_paragraphs(row, "pinned_contexts", optional=True) + _ircot_paragraphs(row)
    raise SteperError(f"no paragraph reader for format {fmt!r}; valid: {', '.join(FORMAT_LABELS)}")


def iter_rows(path: str | Path, fmt: str, *, strict: bool = True, malformed: list | None = None):
    """(label, raw row) of a dataset file of format `fmt`; `label` is "row i" / "line n" (+ id)."""
    p = _check_file(path)
    if fmt in ("hotpot", "2wiki"):
        return _rows_json_list(p)
    if fmt in ("musique", "ircot"):
        return _rows_jsonl(p, strict, malformed if malformed is not None else [])
    if fmt == "hotpot_hf":
        return _rows_hf(path)
    raise SteperError(f"unknown dataset format {fmt!r}; valid: {', '.join(FORMAT_LABELS)}")


def iter_paragraphs(path: str | Path, fmt: str, *, strict: bool = True) -> list[Paragraph]:
    """All context paragraphs of a file, in order (duplicates kept; the corpus builder dedups)."""
    malformed: list[int] = []
    per_row = _collect(
        Path(path),
        iter_rows(path, fmt, strict=strict, malformed=malformed),
        lambda row: row_paragraphs(row, fmt),
        strict=strict,
        fmt=fmt,
        malformed=malformed,
    )
    return [p for paras in per_row for p in paras]


# --------------------------------------------------------------------------------------------------
# HotpotQA
# --------------------------------------------------------------------------------------------------


def _hotpot_question(row: Any, dataset: str) -> Question:
    qid = _text(row, "_id")
    question = _text(row, "question")
    answer = _text(row, "answer")
    pairs = _pairs_context(row)
    sfs = _get(row, "supporting_facts", list)
    facts = []
    for j, sf in enumerate(sfs):
        if not (
            isinstance(sf, (list, tuple))
            and len(sf) == 2
            and isinstance(sf[0], str)
            and isinstance(sf[1], int)
        ):
            raise BadRow(f"supporting_facts[{j}]", "expected [title, sentence_index]")
        facts.append((sf[0].strip(), sf[1]))
    supporting = {t for t, _ in facts}
    sentences: dict[str, list[str]] = {}
    for title, sents in pairs:
        sentences.setdefault(title.strip(), sents)
    chain = []
    for title, idx in facts:
        sents = sentences.get(title)
        # A few official rows point past the paragraph's last sentence: that step is left out.
        if sents is None or not 0 <= idx < len(sents) or not sents[idx].strip():
            log.debug("%s: supporting fact (%r, %d) has no sentence; step left out", qid, title, idx)
            continue
        chain.append(ChainStep(sentence=sents[idx].strip(), title=title))
    return Question(
        qid=qid,
        question=question.strip(),
        answer=answer.strip(),
        contexts=_paragraphs_from_pairs(pairs, _hotpot_text, supporting),
        hops=2,
        qtype=_text(row, "type", optional=True),
        chain=chain,
        dataset=dataset,
    )


def read_hotpot(path: str | Path, *, strict: bool = True, dataset: str = "hotpot") -> list[Question]:
    """HotpotQA official JSON (hotpot_train_v1.1.json, hotpot_dev_distractor_v1.json)."""
    p = _check_file(path)
    return _collect(
        p, _rows_json_list(p), lambda r: _hotpot_question(r, dataset), strict=strict, fmt="hotpot"
    )


def _hf_files(path: str | Path) -> list[str]:
    s = str(path)
    if any(ch in s for ch in "*?["):
        files = sorted(glob.glob(s))
        if not files:
            _check_file(s)
        return files
    p = _check_file(s)
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet"))
        if not files:
            raise SteperError(f"{p}: no .parquet files in this folder; point to the split's file(s) instead")
        return files
    return [str(p)]


def _rows_hf(path: str | Path, cache_dir: str | None = None) -> Iterator[tuple[str, Any]]:
    p = Path(path)
    if p.is_dir() and (p / "dataset_info.json").exists():  # a `save_to_disk` folder
        from datasets import load_from_disk

        ds = load_from_disk(str(p))
    else:
        from datasets import load_dataset

        files = _hf_files(path)
        suffix = Path(files[0]).suffix.lower()
        builder = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}.get(suffix)
        if builder is None:
            raise SteperError(
                f"{files[0]}: unknown file type {suffix!r} for hotpot_hf (use .parquet, .json(l), .arrow)"
            )
        try:
            ds = load_dataset(builder, data_files=files, split="train", cache_dir=cache_dir)
        except Exception as e:  # noqa: BLE001 - the datasets library raises many kinds
            raise SteperError(f"{path}: could not read as the HF hotpot_qa layout: {e}") from None
    for i, row in enumerate(ds):
        yield f"row {i}{_row_id(row)}", row


def read_hotpot_hf(
    path: str | Path, *, strict: bool = True, dataset: str = "hotpot", cache_dir: str | None = None
) -> list[Question]:
    """The HF `hotpot_qa` distractor layout from local files: a .parquet/.json(l)/.arrow file, a glob
    of them, a folder of .parquet files, or a `save_to_disk` folder. Never downloads."""
    return _collect(
        Path(path),
        _rows_hf(path, cache_dir),
        lambda r: _hotpot_question(_hf_to_official(r), dataset),
        strict=strict,
        fmt="hotpot_hf",
    )


# --------------------------------------------------------------------------------------------------
# 2WikiMultihopQA
# --------------------------------------------------------------------------------------------------

_TWOWIKI_DEFAULT_HOPS = {"comparison": 2, "inference": 2, "compositional": 2, "bridge_comparison": 4}


def read_2wiki_aliases(path: str | Path) -> dict[str, list[str]]:
    """`id_aliases.json`: one JSON object a line, {"Q_id", "aliases", "demonyms"} → Q_id → aliases + demonyms
    (the official evaluation script v1.1 treats both as gold answers)."""
    p = _check_file(path)
    out: dict[str, list[str]] = {}
    for lineno, row in iter_jsonl(p):
        try:
            qid = _text(row, "Q_id")
            names = list(_get(row, "aliases", list, optional=True) or [])
            names += list(_get(row, "demonyms", list, optional=True) or [])
        except BadRow as e:
            raise SteperError(f"{p}:{lineno}: {e}. Expected the 2Wiki id_aliases.json layout.") from None
        out[qid] = [str(n) for n in names]
    return out


_PAREN = re.compile(r"\s*\([^)]*\)\s*$")


def _title_for(subject: str, obj: str, paragraphs: list[Paragraph]) -> str | None:
    """The supporting paragraph an evidence triple rests on.

    Its title is the subject (any case), or the subject plus a parenthetical ("Move" → "Move (1970
    film)"); else the one supporting paragraph whose text names the subject, else the object. None
    when no single paragraph fits (the oracle then does not check retrieval for that step).
    """
    s, o = subject.casefold(), obj.casefold()
    support = [p for p in paragraphs if p.is_supporting]
    exact = [p.title for p in support if p.title.casefold() == s]
    if exact:
        return exact[0]
    for match in (
        lambda p: _PAREN.sub("", p.title).casefold() == s,
        lambda p: s in p.text.casefold(),
        lambda p: o in p.text.casefold(),
    ):
        titles = list(dict.fromkeys(p.title for p in support if match(p)))
        if len(titles) == 1:
            return titles[0]
    return None


def _twowiki_question(row: Any, dataset: str, aliases: dict[str, list[str]] | None) -> Question:
    qid = _text(row, "_id")
    question = _text(row, "question")
    answer = _text(row, "answer").strip()
    qtype = _text(row, "type", optional=True)
    pairs = _pairs_context(row)
    sfs = _get(row, "supporting_facts", list)
    supporting = set()
    for j, sf in enumerate(sfs):
        if not (isinstance(sf, (list, tuple)) and len(sf) == 2 and isinstance(sf[0], str)):
            raise BadRow(f"supporting_facts[{j}]", "expected [title, sentence_index]")
        supporting.add(sf[0].strip())
    contexts = _paragraphs_from_pairs(pairs, _twowiki_text, supporting)
    evidences = _get(row, "evidences", list)
    chain = []
    for j, ev in enumerate(evidences):
        if not (
            isinstance(ev, (list, tuple)) and len(ev) == 3 and all(isinstance(x, (str, int)) for x in ev)
        ):
            raise BadRow(f"evidences[{j}]", "expected [subject, relation, object]")
        s, r, o = (str(x).strip() for x in ev)
        chain.append(
            ChainStep(
                sentence=relation_sentence(s, r, o),
                title=_title_for(s, o, contexts),
                answer=o,
                triple=[s, r, o],
            )
        )
    alias_list: list[str] = []
    answer_id = row.get("answer_id")  # present in the data_ids release (IRCoT's raw data); else none
    if aliases and isinstance(answer_id, str) and answer_id in aliases:
        alias_list = [a for a in dict.fromkeys(aliases[answer_id]) if a != answer]
    hops = len(evidences) if evidences else _TWOWIKI_DEFAULT_HOPS.get(qtype or "", 2)
    return Question(
        qid=qid,
        question=question.strip(),
        answer=answer,
        aliases=alias_list,
        contexts=contexts,
        hops=hops,
        qtype=qtype,
        chain=chain,
        dataset=dataset,
    )


def read_2wiki(
    path: str | Path, *, aliases_path: str | Path | None = None, strict: bool = True, dataset: str = "2wiki"
) -> list[Question]:
    """2WikiMultihopQA official JSON. Aliases come from `id_aliases.json` through the row's
    `answer_id` (the `data_ids` release has it; rows without it get no aliases)."""
    p = _check_file(path)
    aliases = read_2wiki_aliases(aliases_path) if aliases_path else None
    return _collect(
        p, _rows_json_list(p), lambda r: _twowiki_question(r, dataset, aliases), strict=strict, fmt="2wiki"
    )


# --------------------------------------------------------------------------------------------------
# MuSiQue
# --------------------------------------------------------------------------------------------------

_HOP_PREFIX = re.compile(r"^(\d+)hop")


def _musique_question(row: Any, dataset: str, answerable_only: bool) -> Question | None:
    qid = _text(row, "id")
    if answerable_only and row.get("answerable") is False:
        return None
    question = _text(row, "question")
    answer = _text(row, "answer").strip()
    paragraphs = _musique_paragraphs(row)
    by_idx = {}
    for j, p in enumerate(row["paragraphs"]):
        by_idx[p.get("idx", j)] = paragraphs[j]
    decomposition = _get(row, "question_decomposition", list)
    answers: dict[int, str] = {}
    chain = []
    for k, step in enumerate(decomposition, 1):
        try:
            sub_q = _text(step, "question")
            sub_a = _text(step, "answer").strip()
        except BadRow as e:
            raise BadRow(f"question_decomposition[{k - 1}].{e.field}", e.problem) from None
        sub_q = substitute_refs(sub_q, answers).strip()
        answers[k] = sub_a
        support = by_idx.get(step.get("paragraph_support_idx"))
        chain.append(
            ChainStep(
                sentence=step_sentence(sub_q, sub_a),
                title=support.title if support else None,
                question=sub_q,
                answer=sub_a,
            )
        )
    prefix = qid.split("__", 1)[0] if "__" in qid else None
    m = _HOP_PREFIX.match(prefix or "")
    hops = len(decomposition) if decomposition else (int(m.group(1)) if m else None)
    raw_aliases = _get(row, "answer_aliases", list, optional=True) or []
    return Question(
        qid=qid,
        question=question.strip(),
        answer=answer,
        aliases=[str(a) for a in dict.fromkeys(raw_aliases) if str(a) != answer],
        contexts=paragraphs,
        hops=hops,
        qtype=prefix,
        chain=chain,
        dataset=dataset,
    )


def read_musique(
    path: str | Path, *, strict: bool = True, dataset: str = "musique", answerable_only: bool = True
) -> list[Question]:
    """MuSiQue v1.0 JSONL. Rows with `answerable: false` (the `full` files) are left out unless
    `answerable_only=False`."""
    p = _check_file(path)
    malformed: list[int] = []
    return _collect(
        p,
        _rows_jsonl(p, strict, malformed),
        lambda r: _musique_question(r, dataset, answerable_only),
        strict=strict,
        fmt="musique",
        malformed=malformed,
    )


# --------------------------------------------------------------------------------------------------
# IRCoT processed JSONL
# --------------------------------------------------------------------------------------------------

_STOP = re.compile(r"answer is:?\s", re.IGNORECASE)


def _answers_from_objects(objs: Any) -> list[str]:
    """IRCoT's `answers_objects` → golds, first first (DROP style: number, else spans, else date)."""
    if not isinstance(objs, list) or not objs:
        raise BadRow("answers_objects", "expected a non-empty list of {number, date, spans}")
    golds: list[str] = []
    for j, obj in enumerate(objs):
        if not isinstance(obj, dict):
            raise BadRow(f"answers_objects[{j}]", "expected an object with number/date/spans")
        number = obj.get("number")
        spans = obj.get("spans") or []
        date = obj.get("date") or {}
        if number not in (None, ""):
            golds.append(str(number))
        elif spans:
            golds.extend(str(s) for s in spans)
        elif isinstance(date, dict) and any(date.get(k) for k in ("day", "month", "year")):
            golds.append("-".join(str(date.get(k) or "") for k in ("day", "month", "year")))
    golds = [g.strip() for g in dict.fromkeys(golds) if str(g).strip()]
    if not golds:
        raise BadRow("answers_objects", "no number, span or date in any answers object")
    return golds


def _ircot_chain(steps: Any) -> list[ChainStep]:
    chain = []
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and isinstance(step.get("cot_sent"), str):  # annotated train rows
            sent = step["cot_sent"].strip()
            if _STOP.search(sent):
                sent = sent[: _STOP.search(sent).start()].strip()
                sent = re.sub(r"\s*\b(so|thus|therefore|hence),?\s*(the)?\s*$", "", sent, flags=re.I).strip()
                if not sent:
                    continue
            paras = step.get("paragraphs") or [{}]
            title = paras[0].get("title") if isinstance(paras[0], dict) else None
            chain.append(ChainStep(sentence=sent, title=title or None))
        elif isinstance(step, str) and " >>>> " in step:  # process_musique.py: "question >>>> answer"
            q, _, a = step.partition(" >>>> ")
            chain.append(ChainStep(sentence=step_sentence(q, a), question=q.strip(), answer=a.strip()))
        # 2Wiki's processed steps are " ".join(triple): not parseable into a sentence; left out.
    return chain


def _ircot_question(row: Any, dataset: str) -> Question:
    qid = _text(row, "question_id")
    question = _text(row, "question_text")
    golds = _answers_from_objects(_get(row, "answers_objects"))
    contexts = _ircot_paragraphs(row)
    prefix = qid.split("__", 1)[0] if "__" in qid else None
    m = _HOP_PREFIX.match(prefix or "")
    n_support = sum(p.is_supporting for p in contexts)
    hops = int(m.group(1)) if m else (n_support or None)
    qtype = row.get("type") if isinstance(row.get("type"), str) else (prefix if m else None)
    return Question(
        qid=qid,
        question=question.strip(),
        answer=golds[0],
        aliases=golds[1:],
        contexts=contexts,
        hops=hops,
        qtype=qtype,
        chain=_ircot_chain(row.get("reasoning_steps")),
        dataset=dataset,
    )


def read_ircot(path: str | Path, *, strict: bool = True, dataset: str = "ircot") -> list[Question]:
    """IRCoT's processed JSONL (processed_data/<dataset>/{train,dev,dev_subsampled,test_subsampled}.jsonl).

    The answer is the first gold of the first `answers_objects` entry (number, else first span, else
    day-month-year); the other spans are aliases. IIRC's `pinned_contexts` are not part of the contexts.
    """
    p = _check_file(path)
    malformed: list[int] = []
    return _collect(
        p,
        _rows_jsonl(p, strict, malformed),
        lambda r: _ircot_question(r, dataset),
        strict=strict,
        fmt="ircot",
        malformed=malformed,
    )


# --------------------------------------------------------------------------------------------------


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
    if fmt == "hotpot":
        return read_hotpot(path, strict=strict, dataset=name)
    if fmt == "hotpot_hf":
        return read_hotpot_hf(path, strict=strict, dataset=name)
    if fmt == "2wiki":
        return read_2wiki(path, aliases_path=aliases_path, strict=strict, dataset=name)
    if fmt == "musique":
        return read_musique(path, strict=strict, dataset=name)
    if fmt == "ircot":
        return read_ircot(path, strict=strict, dataset=name)
    raise SteperError(f"unknown dataset format {fmt!r}; valid: {', '.join(FORMAT_LABELS)}")


__all__ = [
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
