"""The IRCoT loop (docs/method.md §3) with a scripted fake retriever/generator, and with the oracle on the toy world."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from steper.data.schema import ChainStep, Paragraph, Question
from steper.errors import SteperError
from steper.reasoning.loop import (
    Trace,
    first_sentence,
    is_reasoning_sentence,
    run_loop,
    strip_timings,
    strip_wh_words,
)
from steper.reasoning.prompts import build_prompt

# ----------------------------------------------------------------------------------------------
# fakes
# ----------------------------------------------------------------------------------------------


class FakeRetriever:
    """Returns `k` paragraphs chosen by `pick(query)` (pids into a fixed corpus); records every call."""

    def __init__(self, n: int = 40, pick: Callable[[str], list[int]] | None = None):
        self.corpus = [Paragraph(f"T{i}", f"text of paragraph {i}", pid=f"p{i}") for i in range(n)]
        self.pick = pick or (lambda q: [sum(map(ord, q)) % n + j for j in range(8)])
        self.calls: list[list[str]] = []

    def retrieve(self, queries, k):
        self.calls.append(list(queries))
        return [[self.corpus[i % len(self.corpus)] for i in self.pick(q)[:k]] for q in queries]


class FakeGenerator:
    """`script(request) -> str | None`; records the size of every generate call."""

    def __init__(self, script, max_chars: int | None = None):
        self.script = script
        self.max_chars = max_chars
        self.calls: list[int] = []
        self.requests = []
        self.stats = {}

    def render(self, prompt, prefix=""):
        return f"{prompt}\nA:" + (f" {prefix}" if prefix else "")

    def fits(self, rendered):
        return self.max_chars is None or len(rendered) <= self.max_chars

    def generate(self, requests):
        self.calls.append(len(requests))
        self.requests.extend(requests)
        return [self.script(r) for r in requests]

    def close(self):
        pass


def q(i: int, text: str | None = None, answer: str = "Paris") -> Question:
    return Question(qid=f"q{i}", question=text or f"Where is thing {i}?", answer=answer, dataset="fake")


def scripted(by_step: dict[int, str | None] | list[str | None]):
    seq = dict(enumerate(by_step)) if isinstance(by_step, list) else by_step
    return lambda r: seq.get(r.step, "So the answer is: Paris.")


# ----------------------------------------------------------------------------------------------
# the rules of one step
# ----------------------------------------------------------------------------------------------


def test_strip_wh_words():
    assert strip_wh_words("Who is the director of Jaws?") == "the director of Jaws?"
    assert strip_wh_words("Where does WHAT live, when?") == "live,"
    assert (
        strip_wh_words("Zorvak Telu was directed by Mirel Okana.")
        == "Zorvak Telu was directed by Mirel Okana."
    )
    assert strip_wh_words("which is how") == ""


@pytest.mark.parametrize(
    "sentence,expected",
    [
        ("So the answer is: Paris.", True),
        ("so Paris is bigger.", True),
        ("Thus, Harvard was founded first.", True),
        ("Therefore the film is older.", True),
        ("Hence it is French.", True),
        ("That is, the same person.", True),
        ("1998 - 1950 = 48.", True),
        ("Sonic is a hedgehog.", False),
        ("Thuxbra Dredrex is a city.", False),
        ("Socrates was born in Athens.", False),
    ],
)
def test_reasoning_sentences(sentence, expected):
    assert is_reasoning_sentence(sentence) is expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("He moved to the U.S. in 1990. Then he left.", "He moved to the U.S. in 1990."),
        (
            "Martin Luther King Jr. was born in Atlanta. He was a minister.",
            "Martin Luther King Jr. was born in Atlanta.",
        ),
        ("It is 3.5 km long. It flows north.", "It is 3.5 km long."),
        ("The company is Apple Inc. So the answer is: Apple Inc.", "The company is Apple Inc."),
        ("J. R. R. Tolkien wrote it. So the answer is: Tolkien.", "J. R. R. Tolkien wrote it."),
        ("Washington, D.C. is the capital. So it is.", "Washington, D.C. is the capital."),
        ("Dr. Mirel Okana directed it. Next.", "Dr. Mirel Okana directed it."),
        ('He said "Go." Then he left.', 'He said "Go."'),
        ("Is it? Yes it is.", "Is it?"),
        ("approx. one hundred people live there. Many.", "approx. one hundred people live there."),
        ("  first line without period\nsecond line.", "first line without period"),
        ("So the answer is: 3.5.", "So the answer is: 3.5."),
        ("So the answer is: St. Louis.", "So the answer is: St. Louis."),
        # a HotpotQA dev answer
        ("So the answer is: Rear Adm. J. Edward Snyder.", "So the answer is: Rear Adm. J. Edward Snyder."),
        ("", ""),
        ("   \n  ", ""),
    ],
)
def test_first_sentence(text, expected):
    assert first_sentence(text) == expected


# ----------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------


def test_queries_wh_stripped_and_reasoning_sentences_not_queried():
    ret = FakeRetriever()
    gen = FakeGenerator(
        scripted(
            [
                "Who directed Zorvak Telu is Mirel Okana.",
                "So Mirel Okana is the one.",
                "So the answer is: Paris.",
            ]
        )
    )
    (t,) = run_loop([q(0, "Who directed the film Zorvak Telu?")], ret, gen)
    assert [s.query for s in t.steps] == [
        "Who directed the film Zorvak Telu?",  # step 1: the question as it is
        "directed Zorvak Telu Mirel Okana.",  # wh-words/is stripped
        None,  # "So ..." is not a query: no retrieval
    ]
    assert ret.calls == [["Who directed the film Zorvak Telu?"], ["directed Zorvak Telu Mirel Okana."]]
    assert t.steps[2].retrieved == [] and t.steps[2].accumulated == t.steps[1].accumulated
    assert t.finish == "answer" and t.answer == "Paris"
    assert [s.prefix for s in t.steps] == [
        "",
        "Who directed Zorvak Telu is Mirel Okana.",
        "Who directed Zorvak Telu is Mirel Okana. So Mirel Okana is the one.",
    ]


def test_passages_accumulate_dedup_and_cap():
    picks = {0: [0, 1, 2, 3], 1: [2, 3, 4, 5], 2: [6, 7, 8, 9], 3: [10, 11, 12, 13]}
    ret = FakeRetriever(pick=lambda query: picks[int(query.split()[-1].rstrip("."))])
    sentences = ["Step 1.", "Step 2.", "Step 3.", "So the answer is: Paris."]
    gen = FakeGenerator(scripted(sentences))
    (t,) = run_loop([q(0, "Question 0")], ret, gen, top_k=4, max_passages=9)
    acc = [s.accumulated for s in t.steps]
    assert acc[0] == ["p0", "p1", "p2", "p3"]
    assert acc[1] == ["p0", "p1", "p2", "p3", "p4", "p5"]  # p2, p3 not twice
    assert acc[2] == ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"]  # capped at 9: the first kept
    assert acc[3] == acc[2]
    assert t.steps[2].retrieved == ["p6", "p7", "p8", "p9"]
    # every passage seen is stored, the capped-out one too; the prompt shows the accumulated ones
    assert set(t.passages) == {f"p{i}" for i in range(14)}
    req = gen.requests[2]
    assert [p.pid for p in req.passages] == acc[2]
    assert req.prompt == build_prompt("Question 0", req.passages)


def test_cap_15_by_default():
    ret = FakeRetriever(n=100, pick=lambda query: list(range(len(query) * 4, len(query) * 4 + 8)))
    gen = FakeGenerator(scripted(["a" * 1 + ".", "bb.", "ccc.", "dddd.", "eeeee."]))
    (t,) = run_loop([q(0, "x")], ret, gen, top_k=8, max_steps=5)
    assert max(len(s.accumulated) for s in t.steps) == 15
    assert t.finish == "max_steps" and t.answer is None and len(t.steps) == 5


def test_first_sentence_kept_and_stop_regex():
    gen = FakeGenerator(
        scripted(
            [
                "Mirel Okana was born in the U.S. in 1950. Extra text that is dropped.",
                "The answer is 42. More.",
            ]
        )
    )
    (t,) = run_loop([q(0)], FakeRetriever(), gen)
    assert t.steps[0].generation.endswith("dropped.")
    assert t.steps[0].sentence == "Mirel Okana was born in the U.S. in 1950."
    assert t.steps[1].sentence == "The answer is 42."
    assert t.finish == "answer" and t.answer == "42"
    assert t.sentences == [t.steps[0].sentence, "The answer is 42."]


def test_max_steps_empty_and_none_end_a_trace_without_crash():
    def script(r):
        i = int(r.question.qid[1:])
        if i == 0:
            return "Still thinking."  # never answers
        if i == 1:
            return "  \n"  # empty
        if i == 2:
            return None if r.step == 1 else "Fact one."  # failed request at step 2
        return "So the answer is: Paris."

    ts = run_loop([q(i) for i in range(4)], FakeRetriever(), FakeGenerator(script), max_steps=3)
    assert [t.finish for t in ts] == ["max_steps", "empty", "error", "answer"]
    assert [t.answer for t in ts] == [None, None, None, "Paris"]
    assert [len(t.steps) for t in ts] == [3, 1, 2, 1]
    assert ts[1].steps[0].sentence == "" and ts[2].steps[1].sentence is None
    assert ts[2].steps[1].generation is None


def test_active_set_shrinks_one_call_per_step():
    # question i answers at step i+1
    def script(r):
        i = int(r.question.qid[1:])
        return "So the answer is: Paris." if r.step >= i else f"Fact {r.step} of {i}."

    ret = FakeRetriever()
    gen = FakeGenerator(script)
    done = []
    ts = run_loop([q(i) for i in range(4)], ret, gen, batch_size=32, on_trace=lambda t: done.append(t.qid))
    assert gen.calls == [4, 3, 2, 1]  # one generator call per step, shrinking
    assert [len(c) for c in ret.calls] == [4, 3, 2, 1]  # one retriever call per step
    assert done == ["q0", "q1", "q2", "q3"]
    assert [t.qid for t in ts] == ["q0", "q1", "q2", "q3"]
    assert [len(t.steps) for t in ts] == [1, 2, 3, 4]


def test_window_refills_and_results_in_question_order():
    def script(r):
        i = int(r.question.qid[1:])
        return "So the answer is: Paris." if r.step >= (3 - i % 4) else "Fact."

    gen = FakeGenerator(script)
    done = []
    ts = run_loop(
        [q(i) for i in range(6)], FakeRetriever(), gen, batch_size=2, on_trace=lambda t: done.append(t.qid)
    )
    assert max(gen.calls) == 2
    assert [t.qid for t in ts] == [f"q{i}" for i in range(6)]
    assert sorted(done) == sorted(t.qid for t in ts) and done != [t.qid for t in ts]  # finished out of order


def _deterministic_script(r):
    """Depends on the prompt and prefix only (batch-invariant), ends at different steps."""
    h = sum(map(ord, r.prompt + r.prefix)) % 7
    if r.step >= 1 and h < 3:
        return f"So the answer is: {h}."
    return [f"Who is node {h}.", "So it moves on.", f"Fact {h} is here."][h % 3] + " Tail."


def test_batched_equals_one_by_one():
    questions = [q(i, f"What is item number {i} about?") for i in range(12)]
    batched = run_loop(questions, FakeRetriever(), FakeGenerator(_deterministic_script), batch_size=32)
    single = []
    for one in questions:
        single += run_loop([one], FakeRetriever(), FakeGenerator(_deterministic_script), batch_size=1)
    window = run_loop(questions, FakeRetriever(), FakeGenerator(_deterministic_script), batch_size=5)
    a = [strip_timings(t.to_dict()) for t in batched]
    assert a == [strip_timings(t.to_dict()) for t in single]
    assert a == [strip_timings(t.to_dict()) for t in window]
    assert len({t.finish for t in batched}) >= 2


def test_prompt_fitted_to_context_never_cutting_the_question():
    ret = FakeRetriever(n=10, pick=lambda query: [0, 1, 2, 3])
    long = [Paragraph(f"T{i}", " ".join(["word"] * 200), pid=f"p{i}") for i in range(10)]
    ret.corpus = long
    gen = FakeGenerator(scripted(["So the answer is: Paris."]), max_chars=900)
    (t,) = run_loop([q(0, "A question that must stay whole?")], ret, gen)
    req = gen.requests[0]
    assert len(gen.render(req.prompt, req.prefix)) <= 900
    assert "A question that must stay whole?" in req.prompt
    assert len(req.passages) == 4 and all(len(p.text.split()) < 200 for p in req.passages)
    assert t.steps[0].shown == 4


def test_trace_round_trip_and_json():
    ts = run_loop([q(i) for i in range(3)], FakeRetriever(), FakeGenerator(_deterministic_script))
    for t in ts:
        d = json.loads(json.dumps(t.to_dict()))
        assert Trace.from_dict(d).to_dict() == t.to_dict()
        assert set(d) >= {
            "qid",
            "question",
            "golds",
            "hops",
            "qtype",
            "dataset",
            "steps",
            "answer",
            "finish",
            "passages",
            "gold_titles",
            "gold_found",
            "seconds",
        }
        assert set(d["steps"][0]) >= {
            "step",
            "query",
            "retrieved",
            "retrieved_titles",
            "accumulated",
            "prefix",
            "sentence",
            "retrieval_s",
            "generation_s",
        }
        assert all(pid in d["passages"] for s in d["steps"] for pid in s["accumulated"])
    with pytest.raises(SteperError):
        Trace.from_dict({"question": "no qid"})


def test_gold_titles_and_found():
    question = Question(
        qid="g",
        question="Where?",
        answer="Paris",
        contexts=[Paragraph("T0", "x", True), Paragraph("T39", "y", True), Paragraph("T5", "z", False)],
        chain=[ChainStep("A.", "T0")],
    )
    (t,) = run_loop([question], FakeRetriever(pick=lambda query: [0, 1]), FakeGenerator(scripted([])))
    assert t.gold_titles == ["T0", "T39"] and t.gold_found == ["T0"] and not t.all_gold_found


def test_bad_retriever_output_is_a_steper_error():
    class Broken(FakeRetriever):
        def retrieve(self, queries, k):
            return []

    with pytest.raises(SteperError, match="retriever returned"):
        run_loop([q(0)], Broken(), FakeGenerator(scripted([])))


def test_a_setting_below_one_is_named_by_its_config_key():
    """QA: `retriever.top_k=-3` named no setting ("... must all be at least 1")."""
    with pytest.raises(SteperError) as err:
        run_loop([q(0)], FakeRetriever(), FakeGenerator(scripted([])), top_k=-3)
    msg = str(err.value)
    assert msg.startswith("retriever.top_k=-3 must be a whole number of at least 1")
    assert "set retriever.top_k=4" in msg
    for other in ("framework.max_steps", "framework.max_passages", "batch_size"):
        assert other not in msg


def test_every_setting_below_one_is_named():
    with pytest.raises(SteperError) as err:
        run_loop(
            [q(0)], FakeRetriever(), FakeGenerator(scripted([])), max_steps=0, max_passages=-1, batch_size=0
        )
    msg = str(err.value)
    assert "batch_size=0" in msg and "framework.max_steps=0" in msg and "framework.max_passages=-1" in msg
    assert "retriever.top_k" not in msg and msg.count("must be a whole number of at least 1") == 3


def test_no_room_for_any_passage_warns_once_per_run(caplog):
    """QA: a 30k-character question left the model 0 passages, silently."""
    ret = FakeRetriever()
    gen = FakeGenerator(scripted(["A thing.", "Another thing.", "So the answer is: Paris."]), max_chars=2000)
    gen.max_context = 512
    huge = q(0, "Where " + "is it really " * 2500 + "?")
    with caplog.at_level("WARNING", logger="steper.reasoning.loop"):
        traces = run_loop([huge, q(1, "Short?"), q(2, "Where " + "x " * 1500 + "?")], ret, gen, max_steps=3)
    assert [s.shown for s in traces[0].steps] == [0, 0, 0] and traces[1].steps[0].shown == 4
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # one per run, not one per step or question
    msg = warnings[0].getMessage()
    assert msg.startswith("2 question(s) were shown no passage")
    assert "context of 512 tokens" in msg and "max_context" in msg and "shorter questions" in msg


def test_no_warning_when_passages_fit(caplog):
    with caplog.at_level("WARNING", logger="steper.reasoning.loop"):
        run_loop([q(0)], FakeRetriever(), FakeGenerator(scripted([])))
    assert not caplog.records


# ----------------------------------------------------------------------------------------------
# the real oracle and BM25 on the toy world
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy():
    from steper.data.toy import make_world
    from steper.retrieval import BM25Retriever

    world = make_world(seed=0, n_train=120, n_dev=2, n_test=2, hops=[2, 3, 4])
    return world, BM25Retriever.build(world.paragraphs)


@pytest.mark.parametrize("top_k", [1, 4])
def test_oracle_right_exactly_when_gold_found(toy, top_k):
    from steper.evaluation.metrics import score
    from steper.generators.oracle import OracleGenerator

    world, retriever = toy
    gen = OracleGenerator()
    traces = run_loop(world.train, retriever, gen, top_k=top_k, batch_size=16)
    assert len(traces) == len(world.train)
    for t, question in zip(traces, world.train):
        correct = score(t.answer, question.golds)["em"] == 1.0
        assert correct == t.all_gold_found, t.qid
        if correct:
            assert t.finish == "answer" and len(t.steps) == len(question.chain) + 1
            assert t.sentences[:-1] == [c.sentence for c in question.chain]
    n_right = sum(t.all_gold_found for t in traces)
    if top_k == 1:
        assert 0 < n_right < len(traces)  # both branches of the relation are exercised
    else:
        assert n_right >= 0.9 * len(traces)


def test_batched_equals_one_by_one_with_oracle(toy):
    from steper.generators.oracle import OracleGenerator

    world, retriever = toy
    qs = world.train[:20]
    batched = run_loop(qs, retriever, OracleGenerator(), top_k=2, batch_size=32)
    single = [run_loop([x], retriever, OracleGenerator(), top_k=2, batch_size=1)[0] for x in qs]
    assert [strip_timings(t.to_dict()) for t in batched] == [strip_timings(t.to_dict()) for t in single]


def test_batched_equals_one_by_one_with_hf_tiny_model(tiny_model_dir):
    """The real hf backend (left padding, micro-batches) gives the same traces batched or not."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a busy 2-CPU machine: one thread is far faster
    try:
        _hf_batched_vs_single(tiny_model_dir)
    finally:
        torch.set_num_threads(threads)


def _hf_batched_vs_single(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steper.generators.hf import HFGenerator

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)

    def gen(batch):
        return HFGenerator.from_pretrained_objects(model, tok, batch_size=batch, max_new_tokens=6, chat=False)

    picks = {i: [i, (i * 7) % 40, (i * 13) % 40] for i in range(40)}
    questions = [q(i, f"Where was person {i} born?") for i in range(6)]
    g = gen(4)
    batched = run_loop(
        questions, FakeRetriever(pick=lambda s: picks[len(s) % 40]), g, max_steps=3, batch_size=6
    )
    single = [
        run_loop([x], FakeRetriever(pick=lambda s: picks[len(s) % 40]), gen(1), max_steps=3, batch_size=1)[0]
        for x in questions
    ]
    assert [strip_timings(t.to_dict()) for t in batched] == [strip_timings(t.to_dict()) for t in single]
    assert g.stats["requests"] == sum(len(t.steps) for t in batched)
