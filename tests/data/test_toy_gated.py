"""The gated toy world (`dataset.evidence=gated`): evidence arrives step by step.

Measured on all 550 questions of `make_world(seed)` (steper's BM25, the loop's own queries:
IRCoT's `Framework.query`), seeds 0 / 1 / 2 / 100, `paragraphs=full`:

    step 1 (query = question) returns a hop>=2 gold paragraph
        open:  top-2 6.9 / 5.6 / 4.7 / 6.2 %   top-4 11.3 / 8.2 / 8.0 / 9.5 %
        gated: top-2 0.2 / 0.4 / 0.9 / 0.4 %   top-4  1.1 / 2.2 / 2.0 / 1.6 %
    step 1 returns hop 1's paragraph: 100 % in both worlds, top-2 and top-4
    a chain sentence's query returns the next hop's paragraph: gated 100 %, open 98.6-100 % (top-2)
    the oracle in the loop (top-2 and the default top-4): EM 100 in both worlds

The open world's early evidence comes from paragraphs naming the start entity (a spouse's paragraph
names its partner); what is left in the gated world is BM25 ranking a later hop's paragraph on the
question's common words (company, born, director, ...), never on a name.
"""

from __future__ import annotations

import re

import pytest

from steper.config import DatasetConfig, RetrieverConfig
from steper.data.loading import corpus_cache_path, load_corpus, load_questions
from steper.data.schema import Question
from steper.data.toy import ToyWorld, make_world, world_fingerprint
from steper.data.toy.evidence import bm25_evidence
from steper.errors import SteperError

# The open world as it was before `evidence` existed (computed on the unchanged code): the default
# world must stay byte-identical, and its corpus/BM25 cache folder where it was.
OPEN_SEED0_FINGERPRINT = "4f04eba06062c7f0"
OPEN_SEED0_FACTS_FINGERPRINT = "da92a236aadc440a"
OPEN_SEED0_FIRST_PARAGRAPH = (
    "Miju Zedrix is a country in the northern part of the western highlands. The capital of Miju Zedrix "
    "is Brupa Kreru. Miju Zedrix has a population of about 42 million. Miju Zedrix is known for its folk music."
)
OPEN_DEFAULT_CACHE_FOLDER = "toy-6181f03e5b"


@pytest.fixture(scope="module")
def open_world() -> ToyWorld:
    return make_world(seed=0)


@pytest.fixture(scope="module")
def gated() -> ToyWorld:
    return make_world(seed=0, evidence="gated")


def _all(w: ToyWorld) -> list[Question]:
    return w.train + w.dev + w.test


def _names_in(w: ToyWorld) -> list[set[str]]:
    """The entity names each paragraph's title + text contains. Every name word belongs to one entity
    (tests/data/test_toy.py), so a name's first word stands for the name."""
    first_word = {p.title.split()[0]: p.title for p in w.paragraphs}
    out = []
    for p in w.paragraphs:
        words = set(re.findall(r"[A-Z][a-z]+", f"{p.title} {p.text}"))
        out.append({first_word[x] for x in words if x in first_word})
    return out


def _walk_names(q: Question) -> list[str]:
    """e_0 .. e_K: the start entity, then each hop's answer."""
    return [q.chain[0].title] + [s.answer for s in q.chain]


def _early_by_name(w: ToyWorld) -> float:
    """Share of questions with a hop>=2 gold paragraph that names the question's start entity: what
    step 1 reaches by a name word, BM25 ranking aside."""
    names_in = _names_in(w)
    by_title = {p.title: i for i, p in enumerate(w.paragraphs)}
    qs = _all(w)
    early = [any(q.chain[0].title in names_in[by_title[s.title]] for s in q.chain[1:]) for q in qs]
    return sum(early) / len(qs)


def _walk_violations(w: ToyWorld) -> int:
    """Questions where a paragraph names two of the walk's entities other than hop i's own paragraph
    naming hop i's answer: a later hop's answer named before its hop, or a back-reference."""
    names_in = _names_in(w)
    bad = 0
    for q in _all(w):
        walk = _walk_names(q)
        pos = {n: i for i, n in enumerate(walk)}
        for p, names in zip(w.paragraphs, names_in):
            hit = sorted(pos[n] for n in names if n in pos)
            if len(hit) >= 2 and not (len(hit) == 2 and hit[1] == hit[0] + 1 and p.title == walk[hit[0]]):
                bad += 1
                break
    return bad


@pytest.fixture(scope="module")
def bm25_numbers(open_world, gated) -> dict[tuple[str, int], dict[str, float]]:
    from steper.retrieval import BM25Retriever

    out = {}
    for label, w in (("open", open_world), ("gated", gated)):
        retriever = BM25Retriever.build(w.paragraphs)
        for k in (2, 4):
            out[(label, k)] = bm25_evidence(_all(w), retriever, k)
    print()
    for (label, k), m in out.items():
        print(f"  {label:5} top-{k}: step 1 finds hop>=2 {m['step1_later']:.3f}, hop 1 {m['step1_hop1']:.3f}; "
              f"next hop from the chain sentence {m['next_hop']:.3f}")  # fmt: skip
    return out


# ---------------------------------------------------------------------------------- the open world


def test_open_world_unchanged(open_world):
    assert world_fingerprint(open_world) == OPEN_SEED0_FINGERPRINT
    assert world_fingerprint(make_world(seed=0, evidence="open")) == OPEN_SEED0_FINGERPRINT
    assert world_fingerprint(make_world(seed=0, paragraphs="facts")) == OPEN_SEED0_FACTS_FINGERPRINT
    assert open_world.paragraphs[0].text == OPEN_SEED0_FIRST_PARAGRAPH
    assert open_world.evidence == "open"
    assert corpus_cache_path(DatasetConfig(), "/c").parent.name == OPEN_DEFAULT_CACHE_FOLDER
    assert corpus_cache_path({"name": "toy", "format": "toy", "evidence": "open"}, "/c").parent.name == (
        OPEN_DEFAULT_CACHE_FOLDER
    )


# ------------------------------------------------------------------------- the gated world's texts


def test_gated_world_is_deterministic_and_has_the_open_worlds_names(open_world, gated):
    assert gated.evidence == "gated"
    assert world_fingerprint(make_world(seed=0, evidence="gated")) == world_fingerprint(gated)
    assert world_fingerprint(gated) != world_fingerprint(open_world)
    assert [p.title for p in gated.paragraphs] == [p.title for p in open_world.paragraphs]
    assert [p.pid for p in gated.paragraphs] == [p.pid for p in open_world.paragraphs]
    assert (len(gated.train), len(gated.dev), len(gated.test)) == (400, 50, 100)
    # the paragraphs that differ are exactly the second partners', which no longer name the first
    changed = [(a, b) for a, b in zip(open_world.paragraphs, gated.paragraphs) if a.text != b.text]
    assert changed and all(
        " is married to " in a.text and " is married to " not in b.text for a, b in changed
    )
    married = sum(p.text.count(" is married to ") for p in open_world.paragraphs)
    assert len(changed) * 2 == married  # every marriage is now stated once, by one partner
    # fewer questions, the same world
    small = make_world(seed=0, n_train=5, n_dev=2, n_test=2, evidence="gated")
    assert [p.to_dict() for p in small.paragraphs] == [p.to_dict() for p in gated.paragraphs]
    with pytest.raises(SteperError, match="evidence must be one of open, gated"):
        make_world(evidence="closed")


def test_gated_question_names_only_the_start_entity(gated):
    name_words = {w for p in gated.paragraphs for w in p.title.split()}
    for q in _all(gated):
        named = {w for w in re.findall(r"[A-Za-z]+", q.question) if w in name_words}
        assert named == set(q.chain[0].title.split()), q.question


def test_no_paragraph_names_a_later_hops_answer_before_its_hop(open_world, gated):
    """Among a question's walk e_0 .. e_K, the only paragraph naming two of them is e_i's own naming
    e_{i+1} (the hop that states it): no back-reference, no shortcut, no third paragraph."""
    assert _walk_violations(gated) == 0
    assert _walk_violations(open_world) >= 0.1 * len(_all(open_world))  # the check can fail
    # hence no hop>=2 gold paragraph names the start entity: step 1 has no name to reach it by
    assert _early_by_name(gated) == 0.0
    assert _early_by_name(open_world) >= 0.05


def test_facts_only_gated_world_keeps_the_property():
    w = make_world(seed=1, paragraphs="facts", evidence="gated", n_train=120, n_dev=10, n_test=10)
    assert _walk_violations(w) == 0 and _early_by_name(w) == 0.0


# ------------------------------------------------------------------------------- what BM25 finds


@pytest.mark.parametrize("k", [2, 4])
def test_step1_retrieves_no_later_hop_in_the_gated_world(bm25_numbers, k):
    g, o = bm25_numbers[("gated", k)], bm25_numbers[("open", k)]
    assert g["step1_later"] < 0.05
    assert g["step1_hop1"] >= 0.95 and o["step1_hop1"] >= 0.95
    # the open world lets later evidence in at step 1 far more often: the contrast the option is for
    assert o["step1_later"] >= 0.05 and o["step1_later"] >= 4 * g["step1_later"]


@pytest.mark.parametrize("k", [2, 4])
def test_each_hop_is_reached_through_the_previous_hops_sentence(bm25_numbers, k):
    assert bm25_numbers[("gated", k)]["next_hop"] >= 0.95


def test_gold_chain_oracle_still_answers_in_the_gated_world(gated):
    """Teacher data stays possible: the oracle in the loop, default top-k, EM >= 95."""
    from steper.evaluation.metrics import score
    from steper.generators.oracle import OracleGenerator
    from steper.reasoning.loop import run_loop
    from steper.retrieval import BM25Retriever

    qs = _all(gated)
    top_k = RetrieverConfig().top_k
    traces = run_loop(
        qs, BM25Retriever.build(gated.paragraphs), OracleGenerator(), top_k=top_k, batch_size=64
    )
    em = 100 * sum(score(t.answer, q.golds)["em"] for t, q in zip(traces, qs)) / len(qs)
    print(f"\n  gated world, oracle in the loop, top-{top_k}: EM {em:.1f}")
    assert em >= 95


# ----------------------------------------------------------------------------------- the config


def test_dataset_config_builds_and_caches_the_gated_world_apart(gated, tmp_path):
    from steper.retrieval import index_dir

    cfg = DatasetConfig(evidence="gated")
    assert [q.question for q in load_questions(cfg, "test")] == [q.question for q in gated.test]
    assert [p.text for p in load_corpus(cfg, tmp_path)] == [p.text for p in gated.paragraphs]
    open_cfg, facts_cfg = DatasetConfig(), DatasetConfig(paragraphs="facts")
    paths = {corpus_cache_path(c, tmp_path) for c in (cfg, open_cfg, facts_cfg)}
    assert len(paths) == 3  # gated, open and facts never share a corpus or an index folder
    rc = RetrieverConfig()
    assert index_dir(cfg, rc, tmp_path) != index_dir(open_cfg, rc, tmp_path)
    assert index_dir(facts_cfg, rc, tmp_path) != index_dir(open_cfg, rc, tmp_path)
    with pytest.raises(SteperError, match="evidence must be one of"):
        load_questions(DatasetConfig(evidence="shut"), "test")


def test_cli_shows_the_gated_world(capsys):
    from steper.data.toy.__main__ import main

    main(["--evidence", "gated", "--show", "1", "--measure"])
    out = capsys.readouterr().out
    assert "evidence=gated" in out and "none of a later hop" in out
    assert "top-2: step 1 finds a hop>=2 gold paragraph" in out
