"""One schema for every dataset: HotpotQA, 2WikiMultihopQA, MuSiQue, IRCoT's processed files, the toy world.

A `Question` carries its gold answer and aliases, its context paragraphs (with the supporting ones
marked), its hop count / type when known, and its gold reasoning chain when the dataset has one.
The chain is what the oracle teacher writes, one `ChainStep` per reasoning step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from steper.errors import SteperError


@dataclass
class Paragraph:
    """A passage. `pid` is its id in the dataset's corpus (set when it comes from the corpus)."""

    title: str
    text: str
    is_supporting: bool = False
    pid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Paragraph:
        # fields in order: title, text, is_supporting, pid
        return cls(d["title"], d["text"], bool(d.get("is_supporting", False)), d.get("pid"))


@dataclass
class ChainStep:
    """One step of a gold reasoning chain.

    `sentence` is a natural-language reasoning sentence for the step (what the oracle writes);
    `title` the supporting paragraph's title; `question`/`answer` the sub-question and its answer
    (MuSiQue decomposition, Self-Ask); `triple` a (subject, relation, object) fact (2Wiki evidences).
    """

    sentence: str
    title: str | None = None
    question: str | None = None
    answer: str | None = None
    triple: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChainStep:
        return cls(
            sentence=d["sentence"],
            title=d.get("title"),
            question=d.get("question"),
            answer=d.get("answer"),
            triple=list(d["triple"]) if d.get("triple") is not None else None,
        )


@dataclass
class Question:
    qid: str
    question: str
    answer: str
    aliases: list[str] = field(default_factory=list)
    contexts: list[Paragraph] = field(default_factory=list)
    hops: int | None = None
    qtype: str | None = None
    chain: list[ChainStep] = field(default_factory=list)
    dataset: str = ""
    # supporting titles the row names whose paragraph is not in its context (HotpotQA fullwiki rows)
    absent_support: list[str] = field(default_factory=list)

    @property
    def golds(self) -> list[str]:
        """The answer and its aliases, deduplicated, answer first (metrics take the max over these)."""
        seen: dict[str, None] = {}
        for a in [self.answer, *self.aliases]:
            if a is not None and a not in seen:
                seen[a] = None
        return list(seen)

    @property
    def supporting_titles(self) -> list[str]:
        """The titles of every gold paragraph: the supporting context paragraphs, then the absent ones."""
        return [p.title for p in self.contexts if p.is_supporting] + list(self.absent_support)

    def to_dict(self) -> dict[str, Any]:
        return {
            "qid": self.qid,
            "question": self.question,
            "answer": self.answer,
            "aliases": list(self.aliases),
            "contexts": [p.to_dict() for p in self.contexts],
            "hops": self.hops,
            "qtype": self.qtype,
            "chain": [c.to_dict() for c in self.chain],
            "dataset": self.dataset,
            "absent_support": list(self.absent_support),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "") -> Question:
        try:
            return cls(
                qid=str(d["qid"]),
                question=d["question"],
                answer=d["answer"],
                aliases=list(d.get("aliases") or []),
                contexts=[Paragraph.from_dict(p) for p in d.get("contexts") or []],
                hops=d.get("hops"),
                qtype=d.get("qtype"),
                chain=[ChainStep.from_dict(c) for c in d.get("chain") or []],
                dataset=d.get("dataset", ""),
                absent_support=list(d.get("absent_support") or []),
            )
        except KeyError as e:
            raise SteperError(f"{where or 'question row'}: missing field {e.args[0]!r}") from None
