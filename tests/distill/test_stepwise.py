"""Traces → first/mid/final/vanilla examples (docs/method.md §1, §4), the correctness filter, the
question split, and reading the rows back."""

from __future__ import annotations

import random

import pytest

from steper.data.schema import Paragraph
from steper.distill.encoding import row_prompt
from steper.distill.stepwise import (
    STEPWISE_FIELDS,
    build_stepwise,
    drop_reason,
    is_correct,
    read_rows,
    split_by_question,
    stepwise_dataset,
    stepwise_features,
    task_counts,
    trace_examples,
)
from steper.errors import SteperError
from steper.io import write_jsonl
from steper.reasoning.loop import Trace, TraceStep
from steper.reasoning.prompts import build_prompt

FIELDS = {"qid", "task", "step", "question", "passages", "demos", "prefix", "target"}


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


def stored(t: Trace, pids):
    """The passages as a row stores them."""
    return [{"title": t.passages[p]["title"], "text": t.passages[p]["text"]} for p in pids]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_examples_of_an_n_step_trace(n):
    t = make_trace(n)
    ex = trace_examples(t)
    assert all(tuple(e) == STEPWISE_FIELDS for e in ex) and set(STEPWISE_FIELDS) == FIELDS
    assert all(e["question"] == t.question and e["demos"] == "" for e in ex)
    counts = task_counts(ex)
    assert counts == {"first": int(n >= 2), "mid": max(n - 2, 0), "final": 1, "vanilla": 1}
    s = t.sentences
    by_task = {}
    for e in ex:
        by_task.setdefault(e["task"], []).append(e)
    if n >= 2:
        (first,) = by_task["first"]
        assert first["step"] == 1 and first["prefix"] == "" and first["target"] == s[0]
        assert first["passages"] == stored(t, t.steps[0].accumulated)  # only the passages of step 1
        assert row_prompt(first) == build_prompt(t.question, paras(t, t.steps[0].accumulated))
    for k, mid in enumerate(by_task.get("mid", []), start=2):
        assert mid["step"] == k
        assert mid["prefix"] == " ".join(s[: k - 1]) and mid["target"] == s[k - 1]
        assert mid["passages"] == stored(t, t.steps[k - 1].accumulated)
        titles = [p["title"] for p in mid["passages"]]
        assert f"Title q-P{k}b" in titles and f"Title q-P{k + 1}a" not in titles
    (final,) = by_task["final"]
    assert final["step"] == n and final["target"] == "So the answer is: Paris."
    assert final["prefix"] == " ".join(s[:-1])
    assert final["passages"] == stored(t, t.steps[-1].accumulated)
    assert row_prompt(final) == build_prompt(t.question, paras(t, t.steps[-1].accumulated))
    (van,) = by_task["vanilla"]
    assert van["prefix"] == "" and van["target"] == " ".join(s) and van["passages"] == final["passages"]
    # no demonstrations in the student's prompts
    assert all(row_prompt(e).count("Q: Answer the following") == 1 for e in ex)


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
    from steper.reasoning.loop import run_loop
    from steper.retrieval import BM25Retriever

    world = make_world(seed=0, n_train=30, n_dev=1, n_test=1, hops=[2, 3, 4])
    retriever = BM25Retriever.build(world.paragraphs)
    traces = run_loop(world.train, retriever, OracleGenerator(), framework="ircot", top_k=2)
    ex, stats = build_stepwise(traces)
    kept = [t for t in traces if t.all_gold_found]
    assert stats["kept"] == len(kept) > 0
    c = task_counts(ex)
    assert c["first"] == c["final"] == c["vanilla"] == len(kept)
    assert c["mid"] == sum(len(t.steps) - 2 for t in kept)


def test_rows_read_back_as_written(tmp_path):
    ex, _ = build_stepwise([make_trace(3, "a"), make_trace(1, "b")])
    write_jsonl(tmp_path / "train.jsonl", ex)
    assert read_rows(tmp_path / "train.jsonl") == ex
    hf = stepwise_dataset(ex)
    assert hf.column_names == list(STEPWISE_FIELDS) and hf[0] == ex[0]
    assert stepwise_dataset([]).column_names == list(STEPWISE_FIELDS)  # an empty split keeps its columns
    assert (
        stepwise_dataset(ex).features == stepwise_features() and stepwise_features()["step"].dtype == "int64"
    )


def test_a_file_of_the_old_layout_says_rerun_generate_data(tmp_path):
    old = {"qid": "q", "task": "first", "step": 1, "prompt": "Q: ...", "prefix": "", "target": "r1."}
    write_jsonl(tmp_path / "train.jsonl", [old])
    with pytest.raises(SteperError) as e:
        read_rows(tmp_path / "train.jsonl")
    assert str(e.value) == (
        f"{tmp_path / 'train.jsonl'}:1: a step-wise row with a rendered 'prompt' and no 'question', "
        "written by an older steper: rerun generate_data.py into a new out_dir"
    )


def test_a_torn_file_names_the_line_and_the_fix(tmp_path):
    ex, _ = build_stepwise([make_trace(3, "a")])
    write_jsonl(tmp_path / "train.jsonl", ex)
    text = (tmp_path / "train.jsonl").read_text()
    (tmp_path / "train.jsonl").write_text(text[: len(text) - 40])  # a killed copy: the last line cut
    n = len(ex)
    with pytest.raises(SteperError, match=rf"train\.jsonl:{n}: malformed JSON line .*damaged; make it with `python generate_data"):
        read_rows(tmp_path / "train.jsonl")


DROP = object()  # the field is left out


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"passages": "Wikipedia Title: A"},
            r"field 'passages' must be a list of \{\"title\": str, \"text\": str\}",
        ),
        ({"passages": [{"title": "A"}]}, r"passages\[0\] must be \{'title': str, 'text': str\}"),
        ({"passages": [{"title": "A", "text": 3}]}, r"passages\[0\] must be"),
        ({"question": 7}, "field 'question' must be a string, got int"),
        ({"demos": None}, "field 'demos' must be a string, got NoneType"),
        ({"step": "2"}, "field 'step' must be an integer, got '2'"),
        ({"task": "middle"}, "unknown task 'middle'; expected one of first, mid, final, vanilla"),
        ({"target": "  "}, "empty target"),
        ({"question": DROP}, "missing field 'question'"),
    ],
)
def test_row_fields_are_checked_with_file_and_line(tmp_path, change, message):
    good, bad = trace_examples(make_trace(2))[:2]
    bad = {k: v for k, v in {**bad, **change}.items() if v is not DROP}
    write_jsonl(tmp_path / "train.jsonl", [good, bad])
    with pytest.raises(SteperError, match=rf"train\.jsonl:2: {message}"):
        read_rows(tmp_path / "train.jsonl")
