"""The multi-step retrieval-augmented reasoning loop (IRCoT, docs/method.md §3), batched over questions.

One loop serves the teacher (generate_data) and the student (evaluation). Each step of each
question: build a query (step 1: the question; later: the last generated sentence with wh-words
stripped; a reasoning sentence starting with so/thus/therefore/hence is not a query), retrieve
top-K, add the new passages to the question's accumulated passages (deduplicated by pid, the first
`max_passages` kept), build the prompt (`prompts.fit_passages`, cutting passages, never the
question), generate, and keep only the first sentence. A question stops when its sentence matches
`.* answer is:? (.*)\\.?` or after `max_steps` sentences.

Batching: up to `batch_size` questions are in flight; at every step all of them retrieve in one
retriever call and generate in one generator call (the generator micro-batches). A finished
question leaves the active set and the next waiting one takes its place, so traces do not depend
on batching: the batched loop gives the same traces as one question at a time (for a
batch-invariant generator).

Every step is recorded (`TraceStep`, `steper.reasoning.trace`). The rules that differ between
IRCoT and Self-Ask (how a query is formed, what counts as one step of the generation) live in a
`Framework` (`steper.reasoning.ircot`, `steper.reasoning.selfask`, found by name in
`steper.reasoning.frameworks`); the sentence rules are in `steper.reasoning.sentences`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from steper.data.schema import Paragraph, Question
from steper.errors import SteperError
from steper.generators.base import GenerationRequest
from steper.reasoning.frameworks import get_framework
from steper.reasoning.ircot import IRCOT, Framework
from steper.reasoning.prompts import fit_passages
from steper.reasoning.sentences import (
    ANSWER_RE,
    WH_WORDS,
    answer_of,
    first_sentence,
    is_answer_sentence,
    is_reasoning_sentence,
    strip_wh_words,
)
from steper.reasoning.trace import TIMING_FIELDS, Trace, TraceStep, norm_title, passage_key, strip_timings

__all__ = [
    "ANSWER_RE",
    "IRCOT",
    "TIMING_FIELDS",
    "WH_WORDS",
    "Framework",
    "Trace",
    "TraceStep",
    "answer_of",
    "check_loop_settings",
    "first_sentence",
    "get_framework",
    "is_answer_sentence",
    "is_reasoning_sentence",
    "passage_key",
    "run_loop",
    "strip_timings",
    "strip_wh_words",
]

log = logging.getLogger(__name__)

# run_loop's settings: the config key that sets each, and the default to suggest
_SETTINGS = {
    "batch_size": ("batch_size", 32),
    "max_steps": ("framework.max_steps", 5),
    "top_k": ("retriever.top_k", 4),
    "max_passages": ("framework.max_passages", 15),
}


def check_loop_settings(**values: Any) -> None:
    """A SteperError naming each setting below 1 by its config key, with its value and the fix."""
    bad = [(name, v) for name, v in values.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if bad:
        raise SteperError(
            "; ".join(
                f"{_SETTINGS[n][0]}={v!r} must be a whole number of at least 1: "
                f"set {_SETTINGS[n][0]}={_SETTINGS[n][1]} (the default) or another positive integer"
                for n, v in bad
            )
        )
    top_k, cap = values.get("top_k"), values.get("max_passages")
    if top_k is not None and cap is not None and top_k > cap:
        # step 1 alone would fill the cap: no later step's passage would ever be shown
        raise SteperError(
            f"retriever.top_k={top_k} is more than framework.max_passages={cap}, the most passages a prompt "
            "accumulates: the first step's passages alone would fill it and no later step's would be shown. "
            f"Lower retriever.top_k (IRCoT used 2-8) or raise framework.max_passages to at least {top_k}"
        )


@dataclass
class _State:
    question: Question
    index: int
    framework: Framework
    passages: dict[str, Paragraph] = field(default_factory=dict)  # accumulated, in order
    seen: dict[str, dict[str, str]] = field(default_factory=dict)  # every passage retrieved
    units: list[str] = field(default_factory=list)
    steps: list[TraceStep] = field(default_factory=list)
    answer: str | None = None
    finish: str | None = None
    retrieval_s: float = 0.0
    generation_s: float = 0.0

    def trace(self) -> Trace:
        q = self.question
        shown_titles = {norm_title(p.title) for p in self.passages.values()}
        gold_titles = list(dict.fromkeys(q.supporting_titles))
        return Trace(
            qid=q.qid,
            question=q.question,
            golds=q.golds,
            steps=self.steps,
            answer=self.answer,
            finish=self.finish or "max_steps",
            hops=q.hops,
            qtype=q.qtype,
            dataset=q.dataset,
            framework=self.framework.name,
            passages=self.seen,
            gold_titles=gold_titles,
            gold_found=[t for t in gold_titles if norm_title(t) in shown_titles],
            seconds={
                "retrieval": self.retrieval_s,
                "generation": self.generation_s,
                "total": self.retrieval_s + self.generation_s,
            },
        )

    def add_passages(self, got: Sequence[Paragraph], max_passages: int) -> None:
        """Remember every passage retrieved; accumulate the new ones, the first `max_passages` kept."""
        for p in got:
            key = passage_key(p)
            self.seen.setdefault(key, {"title": p.title, "text": p.text})
            if key not in self.passages and len(self.passages) < max_passages:
                self.passages[key] = p

    def advance(self, rec: TraceStep, out: str | None, max_steps: int) -> None:
        """Record one step's generation `out` (None: the request failed) and decide whether it ends."""
        fw = self.framework
        if out is None:
            self.finish = "error"
        else:
            unit = fw.unit(out)
            rec.sentence = unit
            if not unit:
                self.finish = "empty"
            else:
                self.units.append(unit)
                if fw.is_final(unit):
                    self.finish = "answer"
                    self.answer = fw.answer(unit)
                elif len(self.units) >= max_steps:
                    self.finish = "max_steps"
        self.steps.append(rec)


def _context_size(generator: Any) -> int | None:
    """The generator's context window in tokens, when it has one (a wrapper's base counts)."""
    for g in (generator, getattr(generator, "base", None)):
        n = getattr(g, "max_context", None)
        if isinstance(n, int) and n > 0:
            return n
    return None


class _Step:
    """One step of the loop over the active questions: retrieve, build the prompts, generate."""

    def __init__(self, fw: Framework, retriever: Any, generator: Any, *, top_k: int, max_steps: int,
                 max_passages: int, demos: str):  # fmt: skip
        self.fw, self.retriever, self.generator = fw, retriever, generator
        self.top_k, self.max_steps, self.max_passages, self.demos = top_k, max_steps, max_passages, demos
        self.starved: set[int] = set()  # questions that were shown no passage at some step

    def retrieve(self, queries: list[str | None]) -> tuple[dict[int, list[Paragraph]], float]:
        """One retriever call for every question that has a query; (hits by position, time share)."""
        asking = [i for i, q in enumerate(queries) if q]
        if not asking:
            return {}, 0.0
        t0 = time.perf_counter()
        found = self.retriever.retrieve([queries[i] for i in asking], self.top_k)
        share = (time.perf_counter() - t0) / len(asking)
        if len(found) != len(asking):
            raise SteperError(f"retriever returned {len(found)} result lists for {len(asking)} queries")
        return dict(zip(asking, found)), share

    def request(self, st: _State, query: str | None, got: list[Paragraph] | None, share: float):
        """The generation request of one question and the record of its step."""
        retrieved = got is not None
        got = list(got or [])[: self.top_k]
        st.add_passages(got, self.max_passages)
        if retrieved:
            st.retrieval_s += share
        prefix = " ".join(st.units)
        accumulated = list(st.passages.values())

        def fits(prompt: str) -> bool:
            return self.generator.fits(self.generator.render(prompt, prefix))

        prompt, shown = fit_passages(st.question.question, accumulated, fits, self.demos)
        if accumulated and not shown:
            self.starved.add(st.index)
        req = GenerationRequest(
            prompt=prompt, prefix=prefix, question=st.question, step=len(st.units), passages=shown,
            steps_left=self.max_steps - len(st.units), settled=self.fw.unit_settled,
        )
        rec = TraceStep(
            step=len(st.units) + 1,
            query=query or None,
            retrieved=[passage_key(p) for p in got],
            retrieved_titles=[p.title for p in got],
            accumulated=list(st.passages),
            prefix=prefix,
            generation=None,
            sentence=None,
            shown=len(shown),
            retrieval_s=share if retrieved else 0.0,
        )
        return req, rec

    def run(self, active: list[_State]) -> None:
        """One step for every active question (each gets a new TraceStep; some finish)."""
        queries = [self.fw.query(st.question.question, st.units) for st in active]
        hits, share = self.retrieve(queries)
        pairs = [self.request(st, queries[i], hits.get(i), share) for i, st in enumerate(active)]
        requests = [req for req, _ in pairs]
        t0 = time.perf_counter()
        outputs = self.generator.generate(requests)
        gen_share = (time.perf_counter() - t0) / len(requests)
        if len(outputs) != len(requests):
            raise SteperError(f"generator returned {len(outputs)} outputs for {len(requests)} requests")
        for st, (_, rec), out in zip(active, pairs, outputs):
            rec.generation = out
            rec.generation_s = gen_share
            st.generation_s += gen_share
            st.advance(rec, out, self.max_steps)

    def warn_starved(self) -> None:
        """One warning per run for the questions whose passages were all cut to fit the context."""
        if not self.starved:
            return
        n = _context_size(self.generator)
        log.warning(
            "%d question(s) were shown no passage at some step: the question (with the demonstrations and "
            "the reasoning so far) alone fills the model's context of %s, so every passage was cut. Fix: a "
            "larger context (teacher.max_context or target.max_context; the student's max_length when "
            "training it) or shorter questions",
            len(self.starved),
            f"{n} tokens" if n else "unknown size",
        )


def run_loop(
    questions: Sequence[Question],
    retriever: Any,
    generator: Any,
    *,
    framework: str | Framework = "ircot",
    top_k: int = 4,
    max_steps: int = 5,
    max_passages: int = 15,
    demos: str = "",
    batch_size: int = 32,
    on_trace: Callable[[Trace], None] | None = None,
) -> list[Trace]:
    """Run the loop for every question; returns the traces in question order.

    `retriever.retrieve(queries, k) -> list[list[Paragraph]]`; `generator` has `render`, `fits`
    and `generate(list[GenerationRequest]) -> list[str | None]`. `on_trace(trace)` is called as
    each question finishes.
    """
    check_loop_settings(batch_size=batch_size, max_steps=max_steps, top_k=top_k, max_passages=max_passages)
    fw = get_framework(framework) if isinstance(framework, str) else framework
    step = _Step(
        fw, retriever, generator, top_k=top_k, max_steps=max_steps, max_passages=max_passages, demos=demos
    )
    queue = [_State(q, i, fw) for i, q in enumerate(questions)]
    queue.reverse()  # pop() from the end = question order
    results: list[Trace | None] = [None] * len(queue)
    active: list[_State] = []
    while queue or active:
        while queue and len(active) < batch_size:
            active.append(queue.pop())
        step.run(active)
        for st in active:
            if st.finish is not None:
                results[st.index] = trace = st.trace()
                if on_trace is not None:
                    on_trace(trace)
        active = [st for st in active if st.finish is None]
    step.warn_starved()
    return [t for t in results if t is not None]
