"""The multi-step retrieval-augmented reasoning loop (IRCoT, method.md §3), batched over questions.

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

Every step is recorded (`TraceStep`), and a `Trace` holds every passage it saw, so the step-wise
training data can be rebuilt from the trace alone (`steper.distill.stepwise`).

The rules that differ between IRCoT and Self-Ask (how a query is formed, what counts as one step
of the generation) live in a `Framework`; Self-Ask is in `steper.reasoning.selfask`.
"""

from __future__ import annotations

import hashlib
import re
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from steper.data.schema import Paragraph, Question
from steper.errors import SteperError
from steper.reasoning.prompts import fit_passages

# --------------------------------------------------------------------------------------------------
# The rules of one step
# --------------------------------------------------------------------------------------------------

WH_WORDS = frozenset({"who", "what", "when", "where", "why", "which", "how", "does", "is"})
# A sentence that only reasons over what is already known: not a retrieval query (IRCoT also
# treats "that is," and "a + b = c" arithmetic as reasoning).
_REASONING_START = re.compile(r"^\s*(?:(?:so|thus|therefore|hence)(?=[\s,:;]|$)|that is,)", re.IGNORECASE)
_ARITHMETIC = re.compile(r".*(?:\d[\d,]*\.?\d+|\d+) [+-] (?:\d[\d,]*\.?\d+|\d+) = (?:\d[\d,]*\.?\d+|\d+)")
# The stop rule of method.md §3 (IRCoT's answer extractor, colon optional).
ANSWER_RE = re.compile(r".* answer is:? (.*)\.?")

_PUNCT = string.punctuation + "“”‘’«»"


def strip_wh_words(text: str) -> str:
    """Drop the wh-words (and does/is) from a query; punctuation around a word does not hide it."""
    return " ".join(w for w in text.split() if w.strip(_PUNCT).lower() not in WH_WORDS)


def is_reasoning_sentence(sentence: str) -> bool:
    """True for sentences starting with so/thus/therefore/hence (or "that is,"), or doing arithmetic."""
    return bool(_REASONING_START.match(sentence) or _ARITHMETIC.match(sentence))


def is_answer_sentence(sentence: str) -> bool:
    return bool(ANSWER_RE.match(sentence))


def answer_of(sentence: str) -> str | None:
    """The answer a final sentence states (`extract_answer`; the stop regex's capture as fallback)."""
    from steper.evaluation.metrics import extract_answer

    answer = extract_answer(sentence)
    if answer is None:
        m = ANSWER_RE.match(sentence)
        if m is None:
            return None
        answer = m.group(1).strip()
        if answer.endswith("."):
            answer = answer[:-1].rstrip()
    return answer


# Words followed by a period that usually do not end a sentence (titles, name suffixes, months...).
_ABBREVIATIONS = frozenset(
    """mr mrs ms messrs dr prof st jr sr mt ft gen col lt capt cmdr sgt rev hon gov pres sen rep
    no nos vs etc inc ltd co corp bros jan feb mar apr jun jul aug sep sept oct nov dec approx est
    ca vol pp fig dept univ assn ave blvd rd op ed eds""".split()
)
# ...but a period after one of them does end a sentence when the next word starts a conclusion.
_CONNECTIVES = frozenset({"so", "thus", "therefore", "hence"})
# Sentence-final punctuation, closing quotes/brackets included, followed by white space.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_INITIALS = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")


def _is_boundary(head: str, rest: str) -> bool:
    """Whether the punctuation that ends `head` ends a sentence, `rest` being the text after it."""
    if not rest or rest[0].islower():
        return False  # "approx. one", "e.g. the"
    punct = head.rstrip("\"'”’)]")
    if not punct.endswith(".") or punct.endswith(".."):
        return True  # "!", "?" or an ellipsis
    word = punct.rsplit(None, 1)[-1][:-1]  # the token before the period, without it
    word = word.lstrip("\"'“‘([")
    if word.lower() in _ABBREVIATIONS or _INITIALS.fullmatch(word):  # "Dr.", "Jr.", "U.S.", "J."
        next_word = rest.split(None, 1)[0].strip(_PUNCT).lower()
        return next_word in _CONNECTIVES
    return True


def first_sentence(text: str) -> str:
    """The first sentence of a generation: up to the first line break, then up to the first sentence
    end that is not an abbreviation ("U.S.", "Jr.", "Dr."), an initial, or a decimal point."""
    text = text.strip()
    if not text:
        return ""
    text = text.split("\n", 1)[0].strip()
    for m in _SENTENCE_END.finditer(text):
        rest = text[m.end() :].lstrip()
        if _is_boundary(text[: m.end()], rest):
            return text[: m.end()].strip()
    return text


# --------------------------------------------------------------------------------------------------
# Frameworks: what one step of the generation is and which query it makes
# --------------------------------------------------------------------------------------------------


class Framework:
    """IRCoT: one chain-of-thought sentence per step; the last sentence (minus wh-words) is the query."""

    name = "ircot"

    def unit(self, generation: str) -> str:
        """The part of a generation kept as this step's reasoning."""
        return first_sentence(generation)

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


def get_framework(name: str) -> Framework:
    if name == "ircot":
        return IRCOT
    if name == "selfask":
        from steper.reasoning.selfask import SELFASK

        return SELFASK
    raise SteperError(f"unknown reasoning framework {name!r}: use `framework=ircot` or `framework=selfask`")


# --------------------------------------------------------------------------------------------------
# Traces
# --------------------------------------------------------------------------------------------------

FINISH_REASONS = ("answer", "empty", "error", "max_steps")
TIMING_FIELDS = ("seconds", "retrieval_s", "generation_s")


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


def _norm_title(title: str) -> str:
    return " ".join(title.split()).casefold()


def passage_key(p: Paragraph) -> str:
    """The dedup key of a passage: its corpus id, else a hash of title and text."""
    if p.pid is not None:
        return str(p.pid)
    return "h:" + hashlib.sha1(f"{p.title}\n{p.text}".encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


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
        shown_titles = {_norm_title(p.title) for p in self.passages.values()}
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
            gold_found=[t for t in gold_titles if _norm_title(t) in shown_titles],
            seconds={
                "retrieval": self.retrieval_s,
                "generation": self.generation_s,
                "total": self.retrieval_s + self.generation_s,
            },
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
    progress: Callable[[int, int], None] | None = None,
    on_trace: Callable[[Trace], None] | None = None,
) -> list[Trace]:
    """Run the loop for every question; returns the traces in question order.

    `retriever.retrieve(queries, k) -> list[list[Paragraph]]`; `generator` has `render`, `fits`
    and `generate(list[GenerationRequest]) -> list[str | None]`. `progress(done, total)` is called
    after every step; `on_trace(trace)` as each question finishes.
    """
    from steper.generators.base import GenerationRequest

    fw = get_framework(framework) if isinstance(framework, str) else framework
    if batch_size < 1 or max_steps < 1 or top_k < 1 or max_passages < 1:
        raise SteperError("batch_size, max_steps, top_k and max_passages must all be at least 1")
    queue = [_State(q, i, fw) for i, q in enumerate(questions)]
    queue.reverse()  # pop() from the end = question order
    total = len(queue)
    results: list[Trace | None] = [None] * total
    active: list[_State] = []
    done = 0

    while queue or active:
        while queue and len(active) < batch_size:
            active.append(queue.pop())

        # 1. retrieval: one call for every active question that has a query this step
        queries = [fw.query(st.question.question, st.units) for st in active]
        asking = [i for i, q in enumerate(queries) if q]
        hits: dict[int, list[Paragraph]] = {}
        share = 0.0
        if asking:
            t0 = time.perf_counter()
            found = retriever.retrieve([queries[i] for i in asking], top_k)
            share = (time.perf_counter() - t0) / len(asking)
            if len(found) != len(asking):
                raise SteperError(f"retriever returned {len(found)} result lists for {len(asking)} queries")
            hits = dict(zip(asking, found))

        # 2. prompts, with the new passages accumulated
        requests = []
        records = []
        for i, st in enumerate(active):
            got = list(hits.get(i, []))[:top_k]
            for p in got:
                key = passage_key(p)
                st.seen.setdefault(key, {"title": p.title, "text": p.text})
                if key not in st.passages and len(st.passages) < max_passages:
                    st.passages[key] = p
            if i in hits:
                st.retrieval_s += share
            prefix = " ".join(st.units)
            accumulated = list(st.passages.values())

            def fits(prompt: str, prefix: str = prefix) -> bool:
                return generator.fits(generator.render(prompt, prefix))

            prompt, shown = fit_passages(st.question.question, accumulated, fits, demos)
            requests.append(
                GenerationRequest(
                    prompt=prompt, prefix=prefix, question=st.question, step=len(st.units), passages=shown
                )
            )
            records.append(
                TraceStep(
                    step=len(st.units) + 1,
                    query=queries[i] or None,
                    retrieved=[passage_key(p) for p in got],
                    retrieved_titles=[p.title for p in got],
                    accumulated=list(st.passages),
                    prefix=prefix,
                    generation=None,
                    sentence=None,
                    shown=len(shown),
                    retrieval_s=share if i in hits else 0.0,
                )
            )

        # 3. generation: one call for the whole active set
        t0 = time.perf_counter()
        outputs = generator.generate(requests)
        gen_share = (time.perf_counter() - t0) / len(requests)
        if len(outputs) != len(requests):
            raise SteperError(f"generator returned {len(outputs)} outputs for {len(requests)} requests")

        still: list[_State] = []
        for st, rec, out in zip(active, records, outputs):
            rec.generation = out
            rec.generation_s = gen_share
            st.generation_s += gen_share
            if out is None:
                st.finish = "error"
            else:
                unit = fw.unit(out)
                rec.sentence = unit
                if not unit:
                    st.finish = "empty"
                else:
                    st.units.append(unit)
                    if fw.is_final(unit):
                        st.finish = "answer"
                        st.answer = fw.answer(unit)
                    elif len(st.units) >= max_steps:
                        st.finish = "max_steps"
            st.steps.append(rec)
            if st.finish is None:
                still.append(st)
                continue
            trace = st.trace()
            results[st.index] = trace
            done += 1
            if on_trace is not None:
                on_trace(trace)
        active = still
        if progress is not None:
            progress(done, total)

    return [t for t in results if t is not None]


def ircot_loop(
    questions: Sequence[Question],
    retriever: Any,
    generator: Any,
    *,
    top_k: int = 4,
    max_steps: int = 5,
    max_passages: int = 15,
    demos: str = "",
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    on_trace: Callable[[Trace], None] | None = None,
) -> list[Trace]:
    """IRCoT (method.md §3): see `run_loop`."""
    return run_loop(
        questions,
        retriever,
        generator,
        framework=IRCOT,
        top_k=top_k,
        max_steps=max_steps,
        max_passages=max_passages,
        demos=demos,
        batch_size=batch_size,
        progress=progress,
        on_trace=on_trace,
    )
