"""2WikiMultihopQA official JSON (+ `id_aliases.json` for answer aliases).

Gold chain: one step per evidence triple, as a plain sentence (`relation_sentence`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from steper.data.readers.paragraphs import (
    absent_titles,
    pairs_context,
    paragraphs_from_pairs,
    supporting_facts,
    twowiki_text,
    warn_absent_support,
)
from steper.data.readers.rows import BadRow, check_file, collect, get_field, get_text, rows_json_list
from steper.data.readers.sentences import relation_sentence
from steper.data.schema import ChainStep, Paragraph, Question
from steper.errors import SteperError
from steper.io import iter_jsonl

log = logging.getLogger(__name__)

_DEFAULT_HOPS = {"comparison": 2, "inference": 2, "compositional": 2, "bridge_comparison": 4}
_PAREN = re.compile(r"\s*\([^)]*\)\s*$")
# The alias file's name in the 2Wiki release (beside train.json and dev.json).
ALIASES_FILE = "id_aliases.json"


def read_2wiki_aliases(path: str | Path) -> dict[str, list[str]]:
    """`id_aliases.json`: one JSON object a line, {"Q_id", "aliases", "demonyms"} → Q_id → aliases + demonyms
    (the official evaluation script v1.1 treats both as gold answers)."""
    p = check_file(path)
    out: dict[str, list[str]] = {}
    for lineno, row in iter_jsonl(p):
        try:
            qid = get_text(row, "Q_id")
            names = list(get_field(row, "aliases", list, optional=True) or [])
            names += list(get_field(row, "demonyms", list, optional=True) or [])
        except BadRow as e:
            raise SteperError(f"{p}:{lineno}: {e}. Expected the 2Wiki id_aliases.json layout.") from None
        out[qid] = [str(n) for n in names]
    return out


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


def _chain(evidences: list, contexts: list[Paragraph]) -> list[ChainStep]:
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
    return chain


def _aliases(row: Any, answer: str, aliases: dict[str, list[str]] | None) -> list[str]:
    answer_id = row.get("answer_id")  # present in the data_ids release (IRCoT's raw data); else none
    if aliases and isinstance(answer_id, str) and answer_id in aliases:
        return [a for a in dict.fromkeys(aliases[answer_id]) if a != answer]
    return []


def twowiki_question(row: Any, dataset: str, aliases: dict[str, list[str]] | None) -> Question:
    """One official 2Wiki row → a Question (hops = its evidence count, else by type)."""
    qid = get_text(row, "_id")
    question = get_text(row, "question")
    answer = get_text(row, "answer").strip()
    qtype = get_text(row, "type", optional=True)
    pairs = pairs_context(row)
    facts = supporting_facts(row, indexed=False)
    supporting = {title for title, _ in facts}
    contexts = paragraphs_from_pairs(pairs, twowiki_text, supporting)
    evidences = get_field(row, "evidences", list)
    return Question(
        qid=qid,
        question=question.strip(),
        answer=answer,
        aliases=_aliases(row, answer, aliases),
        contexts=contexts,
        hops=len(evidences) if evidences else _DEFAULT_HOPS.get(qtype or "", 2),
        qtype=qtype,
        chain=_chain(evidences, contexts),
        dataset=dataset,
        absent_support=absent_titles((t for t, _ in facts), contexts),
    )


def read_2wiki(
    path: str | Path, *, aliases_path: str | Path | None = None, strict: bool = True, dataset: str = "2wiki"
) -> list[Question]:
    """2WikiMultihopQA official JSON. Aliases come from `id_aliases.json` through the row's
    `answer_id` (the `data_ids` release has it; rows without it get no aliases). Without an alias
    file the gold answers are the answers alone (one warning: aliases raise EM)."""
    p = check_file(path)
    aliases = read_2wiki_aliases(aliases_path) if aliases_path else None
    if aliases is None:
        log.warning(
            "%s: no 2Wiki alias file (%s), so the gold answers are the answers alone; aliases raise EM. "
            "Put %s beside the question file or set dataset.aliases_path",
            p,
            ALIASES_FILE,
            ALIASES_FILE,
        )
    questions = collect(
        p,
        rows_json_list(p, "2wiki"),
        lambda r: twowiki_question(r, dataset, aliases),
        strict=strict,
        fmt="2wiki",
    )
    warn_absent_support(p, questions, log)
    return questions
