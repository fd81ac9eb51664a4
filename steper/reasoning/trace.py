"""What the loop records: one `TraceStep` per step, one `Trace` per question (docs/method.md §3).

A `Trace` holds every passage it saw, so the step-wise training data can be rebuilt from the trace
alone (`steper.distill.stepwise`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from steper.data.schema import Paragraph
from steper.errors import SteperError

TIMING_FIELDS = ("seconds", "retrieval_s", "generation_s")


def norm_title(title: str) -> str:
    """A title for comparison: white space collapsed, case folded."""
    return " ".join(title.split()).casefold()


def passage_key(p: Paragraph) -> str:
    """The dedup key of a passage: its corpus id, else a hash of title and text."""
    if p.pid is not None:
        return str(p.pid)
    return "h:" + hashlib.sha1(f"{p.title}\n{p.text}".encode()).hexdigest()[:16]


@dataclass
class TraceStep:
    """One step: the query it retrieved with (None = no retrieval), what came back, the passages the
    prompt was built from (`accumulated`, in order; these are "the passages of step s"), the
    reasoning so far (`prefix`), the raw generation and the kept sentence (None when the request
    failed), and the step's share of the batched retrieval/generation time."""

    step: int
    query: str | None
    retrieved: list[str]
    retrieved_titles: list[str]
    accumulated: list[str]
    prefix: str
    generation: str | None
    sentence: str | None
    shown: int = 0  # passages that went into the prompt after fitting it to the context
    retrieval_s: float = 0.0
    generation_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TraceStep:
        return cls(
            step=int(d["step"]),
            query=d.get("query"),
            retrieved=list(d.get("retrieved") or []),
            retrieved_titles=list(d.get("retrieved_titles") or []),
            accumulated=list(d.get("accumulated") or []),
            prefix=d.get("prefix", ""),
            generation=d.get("generation"),
            sentence=d.get("sentence"),
            shown=int(d.get("shown", 0)),
            retrieval_s=float(d.get("retrieval_s", 0.0)),
            generation_s=float(d.get("generation_s", 0.0)),
        )


@dataclass
class Trace:
    """One question through the loop. `finish`: answer | empty | error | max_steps (answer None
    unless `answer`). `passages` maps every pid seen to {title, text}; `gold_titles` are the
    supporting titles, `gold_found` those among the passages the model was shown (case-insensitive)."""

    qid: str
    question: str
    golds: list[str]
    steps: list[TraceStep] = field(default_factory=list)
    answer: str | None = None
    finish: str = "max_steps"
    hops: int | None = None
    qtype: str | None = None
    dataset: str = ""
    framework: str = "ircot"
    passages: dict[str, dict[str, str]] = field(default_factory=dict)
    gold_titles: list[str] = field(default_factory=list)
    gold_found: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def sentences(self) -> list[str]:
        """The reasoning chain r_1 … r_S (the steps' kept sentences)."""
        return [s.sentence for s in self.steps if s.sentence]

    @property
    def all_gold_found(self) -> bool:
        return set(self.gold_titles) <= set(self.gold_found)

    def paragraphs(self, pids: Sequence[str]) -> list[Paragraph]:
        return [Paragraph(self.passages[p]["title"], self.passages[p]["text"], pid=p) for p in pids]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = [s.to_dict() for s in self.steps]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        try:
            return cls(
                qid=str(d["qid"]),
                question=d["question"],
                golds=list(d.get("golds") or []),
                steps=[TraceStep.from_dict(s) for s in d.get("steps") or []],
                answer=d.get("answer"),
                finish=d.get("finish", "max_steps"),
                hops=d.get("hops"),
                qtype=d.get("qtype"),
                dataset=d.get("dataset", ""),
                framework=d.get("framework", "ircot"),
                passages={str(k): dict(v) for k, v in (d.get("passages") or {}).items()},
                gold_titles=list(d.get("gold_titles") or []),
                gold_found=list(d.get("gold_found") or []),
                seconds=dict(d.get("seconds") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SteperError(f"malformed trace {d.get('qid', '?')!r}: {e}") from None


def strip_timings(obj: Any) -> Any:
    """A trace dict without its timing fields (for comparing runs)."""
    if isinstance(obj, dict):
        return {k: strip_timings(v) for k, v in obj.items() if k not in TIMING_FIELDS}
    if isinstance(obj, list):
        return [strip_timings(v) for v in obj]
    return obj
