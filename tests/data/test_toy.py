"""The toy world (steper.data.toy): deterministic, disjoint, well-formed, and a real multi-hop BM25 task.

BM25 recall measured on all 550 questions of `make_world(seed)` with defaults (bm25s + PyStemmer,
title + " " + text, English stopwords and stemmer; query of step 1 = the question, of step s >= 2 =
the gold chain sentence of step s-1, as IRCoT does), seeds 0 / 1 / 2:

    first hop, top-4 (query = question):      1.000 / 1.000 / 1.000
    per step, top-4, 2 hops (steps 1..2):     1.000 1.000
                     3 hops (steps 1..3):     1.000 1.000 1.000
                     4 hops (steps 1..4):     1.000 1.000 1.000 1.000     (all three seeds)
    per step, top-2, worst over the seeds:    2 hops 1.000 0.984; 3 hops 1.000 0.984 0.995;
                                              4 hops 1.000 0.978 0.989 0.984

And the task needs the steps: one retrieval with the question alone (top-4) finds all supporting
paragraphs of 8-13% of the 2-hop questions (a spouse's paragraph names its partner) and of none of
the 3- and 4-hop ones.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict

import pytest

from steper.data.schema import Question
from steper.data.toy import MAX_HOPS, ToyWorld, make_world, world_fingerprint, write_world
from steper.errors import SteperError
from steper.io import read_jsonl


@pytest.fixture(scope="module")
def world() -> ToyWorld:
    return make_world(seed=0)


def _all(w: ToyWorld) -> list[Question]:
    return w.train + w.dev + w.test


def _dump(w: ToyWorld) -> str:
    return json.dumps(
        {
            "paragraphs": [p.to_dict() for p in w.paragraphs],
            **{s: [q.to_dict() for q in w.split(s)] for s in ("train", "dev", "test")},
        },
        sort_keys=True,
    )


def test_default_world_is_fast_and_sized(world):
    t0 = time.perf_counter()
    w = make_world()
    elapsed = time.perf_counter() - t0
    print(f"make_world(): {len(w.paragraphs)} paragraphs, {len(_all(w))} questions in {elapsed:.3f}s")
    assert elapsed < 1.0
    assert 300 <= len(w.paragraphs) <= 1500
    assert (len(w.train), len(w.dev), len(w.test)) == (400, 50, 100)
    assert [p.pid for p in w.paragraphs] == [f"toy0:{i}" for i in range(len(w.paragraphs))]
    assert all(len(p.text.split()) >= 12 for p in w.paragraphs)  # facts plus distractor facts


def test_byte_identical_for_a_seed_and_different_across_seeds(world):
    assert _dump(make_world(seed=0)) == _dump(world)
    assert json.dumps([q.to_dict() for q in make_world(0).test], sort_keys=True) == json.dumps(
        [q.to_dict() for q in world.test], sort_keys=True
    )
    assert world_fingerprint(make_world(seed=0)) == world_fingerprint(world)
    other = make_world(seed=1)
    assert _dump(other) != _dump(world)
    assert world_fingerprint(other) != world_fingerprint(world)
    assert not {p.title for p in world.paragraphs} & {p.title for p in other.paragraphs}
    assert not {q.question for q in _all(world)} & {q.question for q in _all(other)}
    # Asking fewer questions does not change the world, and keeps the first questions' paragraphs.
    small = make_world(seed=0, n_train=5, n_dev=2, n_test=2)
    assert [p.to_dict() for p in small.paragraphs] == [p.to_dict() for p in world.paragraphs]


def test_names_are_two_unique_words_the_stemmer_keeps(world):
    Stemmer = pytest.importorskip("Stemmer")
    stem = Stemmer.Stemmer("english").stemWord
    titles = [p.title for p in world.paragraphs]
    assert len(set(titles)) == len(titles)
    words = [w for t in titles for w in t.split()]
    assert all(len(t.split()) == 2 for t in titles)
    assert len(set(w.lower() for w in words)) == len(words), "a name word is shared by two entities"
    assert all(w.isalpha() and stem(w.lower()) == w.lower() for w in words)


def test_splits_are_disjoint(world):
    qs = _all(world)
    assert len({q.qid for q in qs}) == len(qs)
    seen_text: dict[str, str] = {}
    seen_path: dict[tuple[str, str], str] = {}
    for split in ("train", "dev", "test"):
        for q in world.split(split):
            key = (q.chain[0].title, q.qtype)  # start entity + relation path
            assert seen_text.setdefault(q.question, split) == split
            assert seen_path.setdefault(key, split) == split
    assert len(seen_text) == len(qs) == len(seen_path)


def test_hops_are_spread_over_the_requested_hop_counts(world):
    for split in ("train", "dev", "test"):
        counts = Counter(q.hops for q in world.split(split))
        assert set(counts) == {2, 3, 4}
        assert max(counts.values()) - min(counts.values()) <= 1
    assert len({q.qtype for q in world.train}) >= 30  # many relation paths, not a handful
    assert len({q.qtype.split("-")[0] for q in world.train}) >= 5  # many start kinds
    w = make_world(seed=3, n_train=30, n_dev=6, n_test=6, hops=[1, MAX_HOPS])
    assert Counter(q.hops for q in w.train) == {1: 15, MAX_HOPS: 15}
    assert all(len(q.chain) == q.hops for q in _all(w))


def test_chains_are_supported_by_their_paragraphs(world):
    by_pid = {p.pid: p for p in world.paragraphs}
    by_title = {p.title: p for p in world.paragraphs}
    for q in _all(world):
        assert q.dataset == "toy" and q.answer and q.aliases == []
        assert len(q.chain) == q.hops and q.qtype.count("-") == q.hops
        assert q.chain[0].title in q.question  # the question names the start entity
        assert q.chain[-1].answer == q.answer
        assert q.answer not in q.question
        for i, step in enumerate(q.chain):
            para = by_title[step.title]
            assert step.sentence in para.text  # the fact, copied as the paragraph states it
            assert step.title in step.sentence and step.answer in step.sentence
            assert step.question and step.question.endswith("?") and step.title in step.question
            if i + 1 < len(q.chain):
                assert q.chain[i + 1].title == step.answer  # the sentence names the next entity
        # contexts: the supporting paragraphs (one per hop) plus distractors, all from the corpus
        support = [c for c in q.contexts if c.is_supporting]
        assert sorted(c.title for c in support) == sorted(s.title for s in q.chain)
        assert len(q.contexts) - len(support) >= 2
        for c in q.contexts:
            assert c.pid in by_pid and by_pid[c.pid].title == c.title and by_pid[c.pid].text == c.text
        assert len({c.pid for c in q.contexts}) == len(q.contexts)
        assert Question.from_dict(q.to_dict()) == q


def test_bad_requests_raise_steper_error():
    with pytest.raises(SteperError, match="hop counts"):
        make_world(hops=[0])
    with pytest.raises(SteperError, match="hop counts"):
        make_world(hops=[MAX_HOPS + 1])
    with pytest.raises(SteperError, match="hops is empty"):
        make_world(hops=[])
    with pytest.raises(SteperError, match="n_dev"):
        make_world(n_dev=-1)
    with pytest.raises(SteperError, match="fewer questions"):
        make_world(n_train=10_000_000, hops=[1])


def test_world_grows_for_many_questions():
    w = make_world(seed=0, n_train=2500, n_dev=0, n_test=0, hops=[1])
    assert len(w.train) == 2500 and len(w.paragraphs) > 934
    assert len({q.question for q in w.train}) == 2500


def test_write_world(tmp_path, world):
    paths = write_world(world, tmp_path / "toy")
    assert [Question.from_dict(r) for r in read_jsonl(paths["test"])] == world.test
    assert len(read_jsonl(paths["corpus"])) == len(world.paragraphs)


def test_bm25_recall_is_high_per_step_and_the_task_is_multi_hop(world):
    bm25s = pytest.importorskip("bm25s")
    Stemmer = pytest.importorskip("Stemmer")
    stemmer = Stemmer.Stemmer("english")

    def tok(texts):
        return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)

    retriever = bm25s.BM25()
    retriever.index(tok([p.title + " " + p.text for p in world.paragraphs]), show_progress=False)
    qs = _all(world)
    queries, gold, keys = [], [], []
    for q in qs:
        for s, step in enumerate(q.chain):
            queries.append(q.question if s == 0 else q.chain[s - 1].sentence)  # IRCoT's queries
            gold.append(step.title)
            keys.append((q.hops, s + 1))
    docs, _ = retriever.retrieve(tok(queries), k=4, show_progress=False)
    hits: dict[tuple[int, int], list[bool]] = defaultdict(list)
    for row, title, key in zip(docs, gold, keys):
        hits[key].append(any(world.paragraphs[int(i)].title == title for i in row))
    recall = {key: sum(v) / len(v) for key, v in sorted(hits.items())}
    first = [h for (hops, s), v in hits.items() if s == 1 for h in v]
    first_hop = sum(first) / len(first)
    print(f"\nBM25 top-4 recall, first hop (query = question): {first_hop:.3f}")
    for hops in sorted({k[0] for k in recall}):
        steps = " ".join(f"{recall[(hops, s)]:.3f}" for s in range(1, hops + 1))
        print(f"  {hops} hops, per step (query = previous gold sentence): {steps}")
    assert first_hop >= 0.95
    assert min(recall.values()) >= 0.9

    # One retrieval with the question alone must not find every supporting paragraph.
    docs, _ = retriever.retrieve(tok([q.question for q in qs]), k=4, show_progress=False)
    found_all: dict[int, list[bool]] = defaultdict(list)
    for q, row in zip(qs, docs):
        got = {world.paragraphs[int(i)].title for i in row}
        found_all[q.hops].append(all(s.title in got for s in q.chain))
    one_shot = {h: sum(v) / len(v) for h, v in sorted(found_all.items())}
    print(
        "  question-only top-4 finds all supporting paragraphs: "
        + ", ".join(f"{h} hops {r:.3f}" for h, r in one_shot.items())
    )
    assert one_shot[2] <= 0.3 and one_shot[3] <= 0.1 and one_shot[4] <= 0.1


def test_facts_only_paragraphs_keep_the_world_and_its_chains(world):
    """`paragraphs=facts`: the same entities, questions and gold chains; each paragraph holds only
    its relational facts (no distractor sentences), so every chain sentence is still in its
    paragraph and prompts are about half as long."""
    short = make_world(seed=0, paragraphs="facts")
    assert [p.title for p in short.paragraphs] == [p.title for p in world.paragraphs]
    assert [p.pid for p in short.paragraphs] == [p.pid for p in world.paragraphs]
    for split in ("train", "dev", "test"):
        assert [(q.question, q.answer, q.chain) for q in short.split(split)] == [
            (q.question, q.answer, q.chain) for q in world.split(split)
        ]
    by_title = {p.title: p.text for p in short.paragraphs}
    for q in _all(short):
        for step in q.chain:
            assert step.sentence in by_title[step.title]
    words = sum(len(p.text.split()) for p in short.paragraphs) / sum(
        len(p.text.split()) for p in world.paragraphs
    )
    assert words < 0.6, words
    assert "population" not in " ".join(by_title.values())  # distractor attributes are gone
    assert world_fingerprint(short) != world_fingerprint(world)  # its corpus is cached apart
    with pytest.raises(SteperError, match="paragraphs must be one of full, facts"):
        make_world(paragraphs="short")


def test_the_toy_fidelity_test_world_shares_no_name_with_the_training_worlds():
    """sweep=toy_fidelity trains on worlds 0-2 and tests on world 100: names it never saw."""
    test_names = {p.title for p in make_world(seed=100).paragraphs}
    for seed in (0, 1, 2):
        seen = {p.title for p in make_world(seed=seed).paragraphs}
        assert len(test_names & seen) <= 0.01 * len(test_names), seed
