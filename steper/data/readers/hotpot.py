"""HotpotQA: the official JSON (one array of rows) and the HF `hotpot_qa` distractor layout.

Gold chain: one step per supporting-fact sentence, in the order given (sentence text stripped).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from steper.data.readers.hf import hf_to_official, rows_hf
from steper.data.readers.paragraphs import (
    absent_titles,
    hotpot_text,
    pairs_context,
    paragraphs_from_pairs,
    supporting_facts,
    warn_absent_support,
)
from steper.data.readers.rows import check_file, collect, get_text, rows_json_list
from steper.data.schema import ChainStep, Question

log = logging.getLogger(__name__)


def _chain(qid: str, pairs: list[tuple[str, list[str]]], facts: list[tuple[str, int]]) -> list[ChainStep]:
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
    return chain


def hotpot_question(row: Any, dataset: str) -> Question:
    """One official HotpotQA row → a Question (2 hops, its type as `qtype`)."""
    qid = get_text(row, "_id")
    question = get_text(row, "question")
    answer = get_text(row, "answer")
    pairs = pairs_context(row)
    facts = supporting_facts(row, indexed=True)
    supporting = {t for t, _ in facts}
    contexts = paragraphs_from_pairs(pairs, hotpot_text, supporting)
    return Question(
        qid=qid,
        question=question.strip(),
        answer=answer.strip(),
        contexts=contexts,
        hops=2,
        qtype=get_text(row, "type", optional=True),
        chain=_chain(qid, pairs, facts),
        dataset=dataset,
        absent_support=absent_titles((t for t, _ in facts), contexts),
    )


def read_hotpot(path: str | Path, *, strict: bool = True, dataset: str = "hotpot") -> list[Question]:
    """HotpotQA official JSON (hotpot_train_v1.1.json, hotpot_dev_distractor_v1.json)."""
    p = check_file(path)
    questions = collect(
        p, rows_json_list(p, "hotpot"), lambda r: hotpot_question(r, dataset), strict=strict, fmt="hotpot"
    )
    warn_absent_support(p, questions, log)
    return questions


def read_hotpot_hf(
    path: str | Path, *, strict: bool = True, dataset: str = "hotpot", cache_dir: str | None = None
) -> list[Question]:
    """The HF `hotpot_qa` distractor layout from local files: a .parquet/.json(l)/.arrow file, a glob
    of them, a folder of .parquet files, or a `save_to_disk` folder. Never downloads."""
    questions = collect(
        Path(path),
        rows_hf(path, cache_dir),
        lambda r: hotpot_question(hf_to_official(r), dataset),
        strict=strict,
        fmt="hotpot_hf",
    )
    warn_absent_support(Path(path), questions, log)
    return questions
