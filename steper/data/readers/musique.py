"""MuSiQue v1.0 JSONL (the answerable subset).

Gold chain: one step per decomposition step, "#k" references substituted (as IRCoT does), the
sentence made by `step_sentence`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from steper.data.readers.paragraphs import titled_paragraphs
from steper.data.readers.rows import BadRow, check_file, collect, get_field, get_text, qid_prefix, rows_jsonl
from steper.data.readers.sentences import step_sentence, substitute_refs
from steper.data.schema import ChainStep, Paragraph, Question

log = logging.getLogger(__name__)


def _chain(row: Any, decomposition: list, paragraphs: list[Paragraph]) -> list[ChainStep]:
    by_idx = {p.get("idx", j): paragraphs[j] for j, p in enumerate(row["paragraphs"])}
    answers: dict[int, str] = {}
    chain = []
    for k, step in enumerate(decomposition, 1):
        try:
            sub_q = get_text(step, "question")
            sub_a = get_text(step, "answer").strip()
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
    return chain


def musique_question(row: Any, dataset: str, answerable_only: bool) -> Question | None:
    """One MuSiQue row → a Question; None for an unanswerable row when `answerable_only`."""
    qid = get_text(row, "id")
    if answerable_only and row.get("answerable") is False:
        return None
    question = get_text(row, "question")
    answer = get_text(row, "answer").strip()
    paragraphs = titled_paragraphs(row, "paragraphs")
    decomposition = get_field(row, "question_decomposition", list)
    chain = _chain(row, decomposition, paragraphs)
    prefix, prefix_hops = qid_prefix(qid)
    raw_aliases = get_field(row, "answer_aliases", list, optional=True) or []
    return Question(
        qid=qid,
        question=question.strip(),
        answer=answer,
        aliases=[str(a) for a in dict.fromkeys(raw_aliases) if str(a) != answer],
        contexts=paragraphs,
        hops=len(decomposition) if decomposition else prefix_hops,
        qtype=prefix,
        chain=chain,
        dataset=dataset,
    )


def read_musique(
    path: str | Path, *, strict: bool = True, dataset: str = "musique", answerable_only: bool = True
) -> list[Question]:
    """MuSiQue v1.0 JSONL. Rows with `answerable: false` (the `full` files) are left out unless
    `answerable_only=False`."""
    p = check_file(path)
    malformed: list[int] = []
    unanswerable: list[str] = []

    def parse(row: Any) -> Question | None:
        q = musique_question(row, dataset, answerable_only)
        if q is None:
            unanswerable.append(str(row.get("id")))
        return q

    questions = collect(p, rows_jsonl(p, strict, malformed), parse, strict=strict, fmt="musique",
                        malformed=malformed)  # fmt: skip
    if unanswerable:
        log.warning(
            "%s: %d of %d rows are unanswerable (`answerable: false`, MuSiQue-Full) and left out, as "
            "MuSiQue-Ans training does; e.g. %s",
            p, len(unanswerable), len(unanswerable) + len(questions), unanswerable[0],
        )  # fmt: skip
    return questions
