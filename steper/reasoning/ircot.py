"""A reasoning framework: what one step of the generation is and which query it makes
(docs/method.md §3). `Framework` itself is IRCoT; `steper.reasoning.selfask` derives Self-Ask
from it, and `steper.reasoning.frameworks` finds one by name."""

from __future__ import annotations

from collections.abc import Sequence

from steper.reasoning.sentences import (
    answer_of,
    first_sentence,
    first_sentence_settled,
    is_answer_sentence,
    is_reasoning_sentence,
    strip_wh_words,
)


class Framework:
    """IRCoT: one chain-of-thought sentence per step; the last sentence (minus wh-words) is the query."""

    name = "ircot"

    def unit(self, generation: str) -> str:
        """The part of a generation kept as this step's reasoning."""
        return first_sentence(generation)

    def unit_settled(self, generation: str) -> bool:
        """Whether no continuation of `generation` can change its `unit`: the generator may stop."""
        return first_sentence_settled(generation)

    def query(self, question: str, units: Sequence[str]) -> str | None:
        """The retrieval query before the next step, None for no retrieval."""
        if not units:
            return question
        last = units[-1]
        if is_reasoning_sentence(last):
            return None
        return strip_wh_words(last) or None

    def is_final(self, unit: str) -> bool:
        return is_answer_sentence(unit)

    def answer(self, unit: str) -> str | None:
        return answer_of(unit)


IRCOT = Framework()
