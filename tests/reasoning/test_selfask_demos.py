"""Self-Ask on the shared loop (units, queries, oracle adapter) and the teacher demonstrations."""

from __future__ import annotations

import pytest

from steper.data.schema import ChainStep, Paragraph, Question
from steper.errors import SteperError
from steper.reasoning.demos import DEMO_DIR, demo_blocks, load_demos, toy_demos
from steper.reasoning.loop import run_loop, strip_timings
from steper.reasoning.selfask import SELFASK, SelfAskOracle


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Follow up: Who directed Jaws? Intermediate answer: Spielberg.", "Follow up: Who directed Jaws?"),
        (
            "Intermediate answer: Steven Spielberg.\nFollow up: Where?",
            "Intermediate answer: Steven Spielberg.",
        ),
        ("Intermediate answer: Dr. Who. So the final answer is: Dr. Who.", "Intermediate answer: Dr. Who."),
        ("So the final answer is: Cincinnati.", "So the final answer is: Cincinnati."),
        ("  ", ""),
    ],
)
def test_selfask_unit(text, expected):
    assert SELFASK.unit(text) == expected


def test_selfask_query_and_final_rules():
    assert SELFASK.query("Where was X born?", []) == "Where was X born?"
    assert SELFASK.query("q", ["Follow up: Who directed the film Jaws?"]) == "directed the film Jaws?"
    assert SELFASK.query("q", ["Follow up: a", "Intermediate answer: b."]) is None
    assert SELFASK.is_final("So the final answer is: Paris.")
    assert not SELFASK.is_final("Intermediate answer: the answer is 5.")
    assert SELFASK.answer("So the final answer is: Paris.") == "Paris"


class Retriever:
    def __init__(self, corpus):
        self.corpus = corpus
        self.calls = []

    def retrieve(self, queries, k):
        self.calls.append(list(queries))
        out = []
        for query in queries:
            words = set(query.lower().replace("?", "").split())
            out.append([p for p in self.corpus if words & set(p.title.lower().split())][:k])
        return out


class Base:
    stats = {"requests": 0}

    def render(self, prompt, prefix=""):
        return prompt + prefix

    def fits(self, rendered):
        return True

    def close(self):
        pass


def _question():
    return Question(
        qid="s1",
        question="Where was the director of Jaws born?",
        answer="Cincinnati",
        contexts=[
            Paragraph("Jaws", "Jaws was directed by Spielberg.", True),
            Paragraph("Spielberg", "Born in Cincinnati.", True),
        ],
        chain=[
            ChainStep("Jaws was directed by Spielberg.", "Jaws", "Who directed Jaws?", "Spielberg"),
            ChainStep(
                "Spielberg was born in Cincinnati.", "Spielberg", "Where was Spielberg born?", "Cincinnati"
            ),
        ],
    )


def test_selfask_loop_with_oracle_adapter():
    corpus = [
        Paragraph("Jaws", "Jaws was directed by Spielberg.", pid="a"),
        Paragraph("Spielberg", "Born.", pid="b"),
    ]
    ret = Retriever(corpus)
    (t,) = run_loop([_question()], ret, SelfAskOracle(Base()), top_k=1, max_steps=10, framework="selfask")
    assert t.framework == "selfask" and t.finish == "answer" and t.answer == "Cincinnati"
    assert t.sentences == [
        "Follow up: Who directed Jaws?",
        "Intermediate answer: Spielberg.",
        "Follow up: Where was Spielberg born?",
        "Intermediate answer: Cincinnati.",
        "So the final answer is: Cincinnati.",
    ]
    assert [s.query for s in t.steps] == [
        "Where was the director of Jaws born?",
        "directed Jaws?",
        None,
        "was Spielberg born?",
        None,
    ]
    assert t.all_gold_found


def test_selfask_oracle_unknown_when_gold_missing():
    ret = Retriever([Paragraph("Other", "nothing", pid="x")])
    (t,) = run_loop([_question()], ret, SelfAskOracle(Base()), max_steps=10, framework="selfask")
    assert t.sentences[-1] == "So the final answer is: unknown." and t.answer == "unknown"
    assert not t.all_gold_found


def test_selfask_oracle_needs_subquestions():
    q = _question()
    q.chain = [ChainStep("Jaws was directed by Spielberg.", "Jaws")]
    with pytest.raises(SteperError, match="sub-question"):
        run_loop([q], Retriever([]), SelfAskOracle(Base()), framework="selfask")


def test_selfask_on_toy_world_oracle_relation_and_batching():
    from steper.data.toy import make_world
    from steper.evaluation.metrics import score
    from steper.generators.oracle import OracleGenerator
    from steper.retrieval import BM25Retriever

    world = make_world(seed=1, n_train=40, n_dev=1, n_test=1, hops=[2, 3])
    retriever = BM25Retriever.build(world.paragraphs)
    gen = SelfAskOracle(OracleGenerator())
    traces = run_loop(world.train, retriever, gen, framework="selfask", top_k=1, max_steps=10)
    for t, q in zip(traces, world.train):
        assert (score(t.answer, q.golds)["em"] == 1.0) == t.all_gold_found
    assert any(t.all_gold_found for t in traces)
    single = [
        run_loop([q], retriever, gen, framework="selfask", top_k=1, max_steps=10, batch_size=1)[0]
        for q in world.train[:8]
    ]
    assert [strip_timings(t.to_dict()) for t in traces[:8]] == [strip_timings(t.to_dict()) for t in single]


# ----------------------------------------------------------------------------------------------
# demonstrations
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["hotpot", "2wiki", "musique"])
@pytest.mark.parametrize("framework", ["ircot", "selfask"])
def test_demo_files(dataset, framework):
    blocks = demo_blocks((DEMO_DIR / f"{dataset}_{framework}.txt").read_text(encoding="utf-8"))
    assert 2 <= len(blocks) <= 3
    for b in blocks:
        assert b.startswith("Wikipedia Title: ")
        assert "\nQ: Answer the following question by reasoning step-by-step.\n" in b
        answer_line = b.rsplit("\nA: ", 1)[1]
        assert "\n" not in answer_line  # one line, units joined by spaces like the loop's prefix
        if framework == "ircot":
            assert answer_line.endswith(".") and " answer is: " in answer_line
            assert "Follow up:" not in answer_line
        else:
            assert answer_line.startswith("Follow up: ") and "So the final answer is: " in answer_line
            assert [SELFASK.unit(u) for u in [answer_line]][0].startswith("Follow up:")
    text = load_demos(dataset, framework, n=2)
    assert text.count("\nQ: Answer the following") == 2
    assert load_demos(dataset, framework, n=0) == ""


def test_toy_demos_from_gold_chains():
    from steper.data.toy import make_world

    world = make_world(seed=0, n_train=30, n_dev=1, n_test=1, hops=[2, 3, 4])
    blocks = toy_demos(world.train, 3)
    assert len(blocks) == 3
    by_q = {q.question: q for q in world.train}
    hops = set()
    for b in blocks:
        question_line = b.split("step-by-step.\n", 1)[1].split("\nA: ", 1)[0]
        q = by_q[question_line]
        hops.add(q.hops)
        assert b.endswith(" ".join(c.sentence for c in q.chain) + f" So the answer is: {q.answer}.")
        for title in q.supporting_titles:
            assert f"Wikipedia Title: {title}\n" in b
    assert len(hops) == 3  # different chain lengths shown
    sa = load_demos("toy", "selfask", n=2, questions=world.train)
    assert sa.count("Follow up:") >= 4 and sa.count("So the final answer is:") == 2


def test_demo_errors():
    with pytest.raises(SteperError, match="no demonstrations"):
        load_demos("toy", "ircot", n=2)
    with pytest.raises(SteperError, match="framework"):
        load_demos("hotpot", "react", n=2)
