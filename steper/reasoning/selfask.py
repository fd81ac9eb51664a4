"""Self-Ask (question decomposition) on the same loop as IRCoT (docs/method.md §3).

The model writes, after `A:`, units joined by spaces (the prefix layout of every step):

    Follow up: <sub-question> Intermediate answer: <answer>. Follow up: ... So the final answer is: <a>.

One unit is one step of the loop, so the same first/mid/final split applies:
- step 1 retrieves with the question (as in IRCoT, so the first step has passages);
- a step after a "Follow up:" unit retrieves with that sub-question (wh-words stripped); the
  "Intermediate answer:" that follows is generated with those passages;
- a step after an intermediate answer does not retrieve;
- "So the final answer is: a" ends the trace (the same stop regex and `extract_answer`).

A hop takes two steps, so `conf/framework/selfask.yaml` allows more of them (2·hops + 1).

`SelfAskOracle` is the oracle teacher for this layout: it writes the gold chain's sub-questions
and answers (`ChainStep.question` / `.answer`), an intermediate answer only when that hop's gold
paragraph is among the passages shown, else "So the final answer is: unknown.".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from steper.errors import SteperError
from steper.reasoning.ircot import Framework
from steper.reasoning.sentences import ANSWER_RE, answer_of, strip_wh_words
from steper.reasoning.trace import norm_title

FOLLOW_UP = "Follow up:"
INTERMEDIATE = "Intermediate answer:"
FINAL = "So the final answer is:"
_NEXT_MARKER = re.compile(r"\s*(?:Follow up:|Intermediate answer:|So the final answer is:)")


class SelfAsk(Framework):
    name = "selfask"

    def unit(self, generation: str) -> str:
        """The first unit: up to the first line break or the next Self-Ask marker."""
        text = generation.strip()
        if not text:
            return ""
        text = text.split("\n", 1)[0].strip()
        m = _NEXT_MARKER.search(text, 1)
        return text[: m.start()].strip() if m else text

    def unit_settled(self, generation: str) -> bool:
        """A line break, or a next marker already written in full, ends the unit for good."""
        text = generation.lstrip()
        return "\n" in text or _NEXT_MARKER.search(text, 1) is not None

    def query(self, question: str, units: Sequence[str]) -> str | None:
        if not units:
            return question
        last = units[-1]
        if last.startswith(FOLLOW_UP):
            return strip_wh_words(last[len(FOLLOW_UP) :]) or None
        return None

    def is_final(self, unit: str) -> bool:
        if unit.startswith(FINAL):
            return True
        if unit.startswith((FOLLOW_UP, INTERMEDIATE)):
            return False
        return bool(ANSWER_RE.match(unit))

    def answer(self, unit: str) -> str | None:
        return answer_of(unit)


SELFASK = SelfAsk()


class SelfAskOracle:
    """Wraps a generator (for `render`/`fits`/`stats`/`close`) and writes the gold Self-Ask chain.

    `request.step` is the number of units written so far: an even step 2j asks hop j's
    sub-question (or gives the final answer after the last hop), an odd step 2j+1 answers it when
    the hop's gold paragraph title is among `request.passages` (case-insensitive, as the IRCoT oracle).
    """

    def __init__(self, base: Any):
        self.base = base

    def render(self, prompt: str, prefix: str = "") -> str:
        return self.base.render(prompt, prefix)

    def fits(self, rendered: str) -> bool:
        return self.base.fits(rendered)

    @property
    def stats(self) -> Any:
        return getattr(self.base, "stats", {})

    def close(self) -> None:
        close = getattr(self.base, "close", None)
        if close is not None:
            close()

    def generate(self, requests: Sequence[Any]) -> list[str | None]:
        return [self._line(r) for r in requests]

    @staticmethod
    def _line(request: Any) -> str:
        q = request.question
        if q is None:
            raise SteperError("the Self-Ask oracle needs request.question (the Question with its gold chain)")
        chain = q.chain
        hop, answering = divmod(request.step, 2)
        if hop >= len(chain):
            return f"{FINAL} {q.answer}."
        step = chain[hop]
        if step.question is None or step.answer is None:
            raise SteperError(
                f"question {q.qid}: the Self-Ask oracle needs gold chain steps with a sub-question and an "
                "answer (ChainStep.question/.answer); use framework=ircot for this dataset"
            )
        if not answering:
            return f"{FOLLOW_UP} {step.question}"
        titles = {norm_title(p.title) for p in request.passages}
        if step.title is not None and norm_title(step.title) not in titles:
            return f"{FINAL} unknown."
        return f"{INTERMEDIATE} {step.answer}."
