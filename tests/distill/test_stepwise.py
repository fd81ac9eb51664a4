"""Traces → first/mid/final/vanilla examples (method.md §1, §4), the correctness filter, the question split."""

from __future__ import annotations

import random

import pytest

from steper.data.schema import Paragraph
from steper.distill.stepwise import (
    build_stepwise,
    drop_reason,
    is_correct,
    split_by_question,
    task_counts,
    trace_examples,
)
from steper.errors import SteperError
from steper.reasoning.loop import Trace, TraceStep
from steper.reasoning.prompts import build_prompt

FIELDS = {"qid", "task", "step", "prompt", "prefix", "target"}


def make_trace(
    n: int, qid: str = "q", answer: str | None = "Paris", golds=("Paris",), finish: str = "answer"
) -> Trace:
    """n steps; step s retrieves passages Ps-a, Ps-b; the last sentence states `answer`."""
    sentences = [f"Fact number {s}." for s in range(1, n)] + [f"So the answer is: {answer}."]
    steps, acc, passages = [], [], {}
    for s in range(1, n + 1):
        new = [f"{qid}-P{s}a", f"{qid}-P{s}b"]
        for pid in new:
            passages[pid] = {"title": f"Title {pid}", "text": f"Text of {pid}."}
        acc = acc + new
        steps.append(
            TraceStep(
                step=s,
                query="x",
                retrieved=new,
                retrieved_titles=[f"Title {p}" for p in new],
                accumulated=list(acc),
                prefix=" ".join(sentences[: s - 1]),
                generation=sentences[s - 1] + " trailing",
                sentence=sentences[s - 1],
            )
        )
    return Trace(
        qid=qid,
        question=f"Where is {qid}?",
        golds=list(golds),
        steps=steps,
        answer=answer,
        finish=finish,
        passages=passages,
    )


def paras(t: Trace, pids):
    return [Paragraph(t.passages[p]["title"], t.passages[p]["text"]) for p in pids]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_examples_of_an_n_step_trace(n):
    t = make_trace(n)
    ex = trace_examples(t)
    assert all(set(e) == FIELDS for e in ex)
    counts = task_counts(ex)
    assert counts == {"first": int(n >= 2), "mid": max(n - 2, 0), "final": 1, "vanilla": 1}
    s = t.sentences
    by_task = {}
    for e in ex:
        by_task.setdefault(e["task"], []).append(e)
    if n >= 2:
        (first,) = by_task["first"]
        assert first["step"] == 1 and first["prefix"] == "" and first["target"] == s[0]
        assert first["prompt"] == build_prompt(t.question, paras(t, t.steps[0].accumulated))
        assert "P2a" not in first["prompt"]  # only the passages of step 1
    for k, mid in enumerate(by_task.get("mid", []), start=2):
        assert mid["step"] == k
        assert mid["prefix"] == " ".join(s[: k - 1]) and mid["target"] == s[k - 1]
        assert mid["prompt"] == build_prompt(t.question, paras(t, t.steps[k - 1].accumulated))
        assert f"P{k}b" in mid["prompt"] and f"P{k + 1}a" not in mid["prompt"]
    (final,) = by_task["final"]
    assert final["step"] == n and final["target"] == "So the answer is: Paris."
    assert final["prefix"] == " ".join(s[:-1])
    assert final["prompt"] == build_prompt(t.question, paras(t, t.steps[-1].accumulated))
    (van,) = by_task["vanilla"]
    assert van["prefix"] == "" and van["target"] == " ".join(s) and van["prompt"] == final["prompt"]
    # no demonstrations in the student's prompts
    assert all(e["prompt"].count("Q: Answer the following") == 1 for e in ex)


def test_one_step_trace_gives_final_only():
    ex = trace_examples(make_trace(1))
    assert [e["task"] for e in ex] == ["final", "vanilla"]
    assert ex[0]["prefix"] == "" and ex[0]["target"] == ex[1]["target"] == "So the answer is: Paris."


def test_two_step_trace_first_and_final_no_mid():
    ex = trace_examples(make_trace(2))
    assert [e["task"] for e in ex] == ["first", "final", "vanilla"]
    assert ex[1]["prefix"] == "Fact number 1."


def test_filter_em_vs_acc_and_drop_reasons():
    exact = make_trace(3, "a", answer="Paris")
    contained = make_trace(3, "b", answer="Paris, France", golds=("Paris",))
    wrong = make_trace(3, "c", answer="London")
    alias = make_trace(2, "d", answer="the city of light", golds=("Paris", "City of Light"))
    none = make_trace(3, "e", answer=None, finish="max_steps")
    err = make_trace(2, "f", answer=None, finish="error")
    empty = make_trace(2, "g", answer=None, finish="empty")
    traces = [exact, contained, wrong, alias, none, err, empty]
    assert [drop_reason(t, "em") for t in traces] == [
        None,
        "wrong_answer",
        "wrong_answer",
        None,
        "no_answer",
        "error",
        "empty",
    ]
    assert [is_correct(t, "acc") for t in traces] == [True, True, False, True, False, False, False]
    ex, stats = build_stepwise(traces, "em")
    assert stats == {
        "filter": "em",
        "kept": 2,
        "dropped": {"wrong_answer": 2, "no_answer": 1, "error": 1, "empty": 1},
    }
    assert {e["qid"] for e in ex} == {"a", "d"}
    ex_acc, stats_acc = build_stepwise([t.to_dict() for t in traces], "acc")  # dicts work too
    assert {e["qid"] for e in ex_acc} == {"a", "b", "d"} and stats_acc["kept"] == 3
    with pytest.raises(SteperError):
        build_stepwise(traces, "f1")


def test_split_by_question_disjoint_and_deterministic():
    traces = [make_trace(random.Random(i).randint(1, 5), f"q{i}") for i in range(200)]
    ex, _ = build_stepwise(traces)
    train, val = split_by_question(ex, 0.1, seed=0)
    tq, vq = {e["qid"] for e in train}, {e["qid"] for e in val}
    assert tq.isdisjoint(vq) and tq | vq == {t.qid for t in traces}
    assert 5 <= len(vq) <= 40
    assert len(train) + len(val) == len(ex)
    shuffled = list(ex)
    random.Random(1).shuffle(shuffled)
    train2, val2 = split_by_question(shuffled, 0.1, seed=0)
    assert {e["qid"] for e in val2} == vq  # order does not matter
    assert split_by_question(ex, 0.1, seed=0) == (train, val)
    _, val3 = split_by_question(ex, 0.1, seed=1)
    assert {e["qid"] for e in val3} != vq
    assert split_by_question(ex, 0.0)[1] == []
    # a tiny set still gets one validation question
    small, _ = build_stepwise([make_trace(2, "x"), make_trace(2, "y")])
    tr, va = split_by_question(small, 0.1)
    assert len({e["qid"] for e in va}) == 1 and len({e["qid"] for e in tr}) == 1
    with pytest.raises(SteperError):
        split_by_question(ex, 1.0)


def test_missing_passage_is_a_steper_error():
    t = make_trace(2)
    del t.passages[t.steps[0].accumulated[0]]
    with pytest.raises(SteperError, match="does not store"):
        trace_examples(t)


def test_examples_from_oracle_traces_on_toy_world():
    from steper.data.toy import make_world
    from steper.generators.oracle import OracleGenerator
    from steper.reasoning.loop import ircot_loop
    from steper.retrieval import BM25Retriever

    world = make_world(seed=0, n_train=30, n_dev=1, n_test=1, hops=[2, 3, 4])
    traces = ircot_loop(world.train, BM25Retriever.build(world.paragraphs), OracleGenerator(), top_k=2)
    ex, stats = build_stepwise(traces)
    kept = [t for t in traces if t.all_gold_found]
    assert stats["kept"] == len(kept) > 0
    c = task_counts(ex)
    assert c["first"] == c["final"] == c["vanilla"] == len(kept)
    assert c["mid"] == sum(len(t.steps) - 2 for t in kept)
