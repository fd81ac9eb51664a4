"""When evidence reaches the loop: the gate of `evidence=gated` and how to measure it with BM25.

In the open world the question's start entity is named in more paragraphs than its own (a spouse's
paragraph names its partner; a country names its capital, which names the country), so step 1 can
retrieve a later hop's paragraph and Vanilla-KD's train/test mismatch (trained on every passage,
tested step by step: the paper's Figure 1) has little to bite on. The gated world holds later
evidence back until its step:

- each fact is stated in its subject's paragraph only (`build_entities(mutual_marriage=False)`);
- a walk becomes a question only if, among its entities e_0 .. e_K, the one paragraph that names two
  of them is e_i's own paragraph naming e_{i+1} (`walk_is_gated`): no back-reference (e_j naming an
  earlier e_i), no shortcut (e_i naming e_{i+2} or later), no third paragraph naming two of them.

Question texts name only the start entity and names are unique words, so a hop-k paragraph (k >= 2)
shares no name word with the question: BM25 reaches it only through the query made from hop k-1's
sentence, which names the bridge entity e_{k-1}. `bm25_evidence` measures that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from steper.data.schema import Question


def walk_is_gated(walk: Sequence[int], mentions: Sequence[Sequence[int]]) -> bool:
    """True when only e_i's own paragraph names both e_i and e_{i+1}, and no paragraph names two walk
    entities further apart. `mentions[x]`: the paragraphs other than x's own that name entity x."""
    named_in = [{e, *mentions[e]} for e in walk]
    for i in range(len(walk)):
        for j in range(i + 1, len(walk)):
            allowed = {walk[i]} if j == i + 1 else set()
            if not named_in[i] & named_in[j] <= allowed:
                return False
    return True


def bm25_evidence(questions: Sequence[Question], retriever: Any, top_k: int) -> dict[str, float]:
    """What BM25 (`retriever.retrieve(queries, k)`, e.g. steper.retrieval.BM25Retriever) finds with the
    loop's own queries (IRCoT's `Framework.query`: the question at step 1, then each gold chain
    sentence, wh-words stripped), as shares of questions / chain steps:

    - `step1_later`: step 1 returned a gold paragraph of hop >= 2 (evidence arriving early);
    - `step1_hop1`: step 1 returned hop 1's paragraph;
    - `next_hop`: the query of chain sentence k returned hop k+1's paragraph (over all such k).
    """
    from steper.reasoning.ircot import IRCOT

    first = retriever.retrieve([IRCOT.query(q.question, []) or "" for q in questions], top_k)
    later = hop1 = 0
    for q, rows in zip(questions, first):
        got = {p.title for p in rows}
        later += any(step.title in got for step in q.chain[1:])
        hop1 += q.chain[0].title in got
    queries, wanted = [], []
    for q in questions:
        sentences = [step.sentence for step in q.chain]
        for k in range(1, len(q.chain)):
            queries.append(IRCOT.query(q.question, sentences[:k]) or "")
            wanted.append(q.chain[k].title)
    rows = retriever.retrieve(queries, top_k) if queries else []
    nxt = sum(title in {p.title for p in r} for title, r in zip(wanted, rows))
    n = max(1, len(questions))
    return {"step1_later": later / n, "step1_hop1": hop1 / n, "next_hop": nxt / max(1, len(queries))}
