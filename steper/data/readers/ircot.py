"""IRCoT's processed JSONL (`question_id`, `question_text`, `answers_objects`, `contexts`).

Gold chain: from `reasoning_steps` when the row has them (annotated `cot_sent` steps, or
MuSiQue-style "question >>>> answer" strings); else no chain.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from steper.data.readers.paragraphs import titled_paragraphs
from steper.data.readers.rows import BadRow, check_file, collect, get_field, get_text, qid_prefix, rows_jsonl
from steper.data.readers.sentences import step_sentence
from steper.data.schema import ChainStep, Question

_STOP = re.compile(r"answer is:?\s", re.IGNORECASE)
_SO_THE = re.compile(r"\s*\b(so|thus|therefore|hence),?\s*(the)?\s*$", re.IGNORECASE)


def _golds(obj: dict) -> list[str]:
    number = obj.get("number")
    spans = obj.get("spans") or []
    date = obj.get("date") or {}
    if number not in (None, ""):
        return [str(number)]
    if spans:
        return [str(s) for s in spans]
    if isinstance(date, dict) and any(date.get(k) for k in ("day", "month", "year")):
        return ["-".join(str(date.get(k) or "") for k in ("day", "month", "year"))]
    return []


def answers_from_objects(objs: Any) -> list[str]:
    """IRCoT's `answers_objects` → golds, first first (DROP style: number, else spans, else date)."""
    if not isinstance(objs, list) or not objs:
        raise BadRow("answers_objects", "expected a non-empty list of {number, date, spans}")
    golds: list[str] = []
    for j, obj in enumerate(objs):
        if not isinstance(obj, dict):
            raise BadRow(f"answers_objects[{j}]", "expected an object with number/date/spans")
        golds.extend(_golds(obj))
    golds = [g.strip() for g in dict.fromkeys(golds) if str(g).strip()]
    if not golds:
        raise BadRow("answers_objects", "no number, span or date in any answers object")
    return golds


def _cot_step(step: dict) -> ChainStep | None:
    """An annotated train step: its `cot_sent` up to the stop phrase (None when nothing is left)."""
    sent = step["cot_sent"].strip()
    stop = _STOP.search(sent)
    if stop:
        sent = _SO_THE.sub("", sent[: stop.start()].strip()).strip()
        if not sent:
            return None
    paras = step.get("paragraphs") or [{}]
    title = paras[0].get("title") if isinstance(paras[0], dict) else None
    return ChainStep(sentence=sent, title=title or None)


def ircot_chain(steps: Any) -> list[ChainStep]:
    chain = []
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and isinstance(step.get("cot_sent"), str):  # annotated train rows
            cot = _cot_step(step)
            if cot is not None:
                chain.append(cot)
        elif isinstance(step, str) and " >>>> " in step:  # process_musique.py: "question >>>> answer"
            q, _, a = step.partition(" >>>> ")
            chain.append(ChainStep(sentence=step_sentence(q, a), question=q.strip(), answer=a.strip()))
        # 2Wiki's processed steps are " ".join(triple): not parseable into a sentence; left out.
    return chain


def ircot_question(row: Any, dataset: str) -> Question:
    """One processed row → a Question (hops from the id's "Nhop" prefix, else the supporting count)."""
    qid = get_text(row, "question_id")
    question = get_text(row, "question_text")
    golds = answers_from_objects(get_field(row, "answers_objects"))
    contexts = titled_paragraphs(row, "contexts")
    prefix, prefix_hops = qid_prefix(qid)
    n_support = sum(p.is_supporting for p in contexts)
    qtype = (
        row.get("type") if isinstance(row.get("type"), str) else (prefix if prefix_hops is not None else None)
    )
    return Question(
        qid=qid,
        question=question.strip(),
        answer=golds[0],
        aliases=golds[1:],
        contexts=contexts,
        hops=prefix_hops if prefix_hops is not None else (n_support or None),
        qtype=qtype,
        chain=ircot_chain(row.get("reasoning_steps")),
        dataset=dataset,
    )


def read_ircot(path: str | Path, *, strict: bool = True, dataset: str = "ircot") -> list[Question]:
    """IRCoT's processed JSONL (processed_data/<dataset>/{train,dev,dev_subsampled,test_subsampled}.jsonl).

    The answer is the first gold of the first `answers_objects` entry (number, else first span, else
    day-month-year); the other spans are aliases. IIRC's `pinned_contexts` are not part of the contexts.
    """
    p = check_file(path)
    malformed: list[int] = []
    return collect(
        p,
        rows_jsonl(p, strict, malformed),
        lambda r: ircot_question(r, dataset),
        strict=strict,
        fmt="ircot",
        malformed=malformed,
    )
