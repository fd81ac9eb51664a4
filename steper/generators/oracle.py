"""The oracle teacher: writes the gold reasoning chain, one sentence per step, no model.

It is the offline stand-in for a large teacher and the ceiling of the loop: it never answers a
question before every gold paragraph has been shown to it (the question's supporting titles and
its chain's titles, compared case-insensitively), and then it answers "So the answer is: <gold>.".
Until then it writes chain sentences (`ChainStep.sentence`); when it cannot go on it says
"So the answer is: unknown.". How it picks the next sentence is `policy` (docs/method.md §8):

- `ideal` (the default) — what an ideal reasoner reading the shown passages would do:
  1. the first unwritten chain step whose paragraph is among the shown passages (so a step found
     out of order is written when found: step 1 retrieving the second hop's paragraph is used);
  2. else, with a step left before the last, the first unwritten step anyway, *recalled*: the
     sentence a teacher that knows the fact would write, which is the query that looks its
     paragraph up (IRCoT's premise: the chain-of-thought sentence is the next retrieval query).
     The answer still waits for the paragraph to be shown;
  3. with one step left (`GenerationRequest.steps_left`), or the chain written, it answers if every
     gold paragraph was shown and says "unknown" otherwise.
  A question without a chain (a layout without reasoning steps) is answered once its supporting
  paragraphs are shown, else "unknown"; one with neither chain nor supporting titles at step 0.
- `in_order` — the first oracle: step s writes `chain[s]` if its paragraph is shown, else
  "unknown"; after the chain (at step 0 for a question without one) it answers, if every gold
  paragraph was shown (the first oracle answered regardless: fullwiki rows without their gold).

Its traces are well-formed step-wise data on any dataset with chains (the toy world, 2Wiki
evidences, MuSiQue decompositions, HotpotQA supporting facts). It is instant; `render`/`fits`
still work (plain rendering, always fits).
"""

from __future__ import annotations

import time
from typing import Any

from steper.data.schema import ChainStep, Question
from steper.errors import SteperError
from steper.generators.base import GenerationRequest, Generator, pick
from steper.reasoning.sentences import first_sentence
from steper.reasoning.trace import norm_title

UNKNOWN = "So the answer is: unknown."
POLICIES = ("ideal", "in_order")


def gold_titles(q: Question) -> set[str]:
    """Every paragraph the answer rests on: the supporting titles and the chain's titles (normalised)."""
    titles = [*q.supporting_titles, *(c.title for c in q.chain if c.title is not None)]
    return {norm_title(t) for t in titles}


class OracleGenerator(Generator):
    name = "oracle"

    def __init__(self, policy: str = "ideal", **kwargs: Any):
        if policy not in POLICIES:
            raise SteperError(
                f"teacher.policy={policy!r} is not an oracle policy: use one of {', '.join(POLICIES)} "
                "(target.policy for evaluate.py; docs/method.md §8)"
            )
        super().__init__(**kwargs)
        self.policy = policy

    @classmethod
    def from_config(cls, opts: dict[str, Any], **objects: Any) -> OracleGenerator:
        """`objects` (a model/tokenizer) are ignored: the oracle runs no model."""
        return cls(**pick(opts, ("max_new_tokens", "stop", "policy")))

    def next_sentence(self, req: GenerationRequest) -> tuple[str, bool]:
        """(the sentence, whether it was recalled: written before its paragraph was shown)."""
        q = req.question
        if q is None:
            raise SteperError(
                "the oracle teacher needs GenerationRequest.question (its gold chain and answer)"
            )
        if self.policy == "in_order":
            return _in_order(q, req), False
        return _ideal(q, req)

    def generate(self, requests: list[GenerationRequest]) -> list[str | None]:
        """The next sentence of each request; `stats["recalled"]` counts the sentences written before
        their paragraph was shown."""
        t0 = time.perf_counter()
        written = [self.next_sentence(r) for r in requests]
        out: list[str | None] = [text for text, _ in written]
        self._count(requests=len(requests), recalled=sum(r for _, r in written),
                    seconds=time.perf_counter() - t0)  # fmt: skip
        return out

    def __repr__(self) -> str:
        return f"OracleGenerator(policy={self.policy!r})"


def _answer(q: Question) -> str:
    return f"So the answer is: {q.answer}."


def _in_order(q: Question, req: GenerationRequest) -> str:
    shown = {norm_title(p.title) for p in req.passages}
    if req.step < len(q.chain):
        step = q.chain[req.step]
        if step.title is not None and norm_title(step.title) not in shown:
            return UNKNOWN
        return step.sentence
    return _answer(q) if gold_titles(q) <= shown else UNKNOWN


def _ideal(q: Question, req: GenerationRequest) -> tuple[str, bool]:
    shown = {norm_title(p.title) for p in req.passages}
    evidence = gold_titles(q) <= shown
    # a chain sentence is written once: the loop keeps the first sentence of what is returned
    todo: list[ChainStep] = []
    for c in q.chain:
        unit = first_sentence(c.sentence)
        if unit and unit not in req.prefix and all(unit != first_sentence(t.sentence) for t in todo):
            todo.append(c)
    last = req.steps_left is not None and req.steps_left <= 1
    if not todo or last:
        return (_answer(q) if evidence else UNKNOWN), False
    for c in todo:
        if c.title is None or norm_title(c.title) in shown:
            return first_sentence(c.sentence), False
    return first_sentence(todo[0].sentence), True  # recalled: its paragraph is not shown yet
