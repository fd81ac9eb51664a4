"""Every shared real file reads with its `dataset.format`, and each quirky row kind of the official
releases has its reading: 2Wiki's supporting-fact index one past the paragraph, fullwiki rows whose
gold is absent from the context (two with an empty context), MuSiQue-Full's unanswerable rows, the
fork's IRCoT-like layout, and a file read with another format's name."""

from __future__ import annotations

import logging

import pytest

from steper.data import load_questions, read_questions
from steper.errors import SteperError
from tests.conftest import compose_cfg
from tests.realdata.conftest import FILES, raw_rows, real_path, row_id

# questions each file gives (MuSiQue-Full: its 11 answerable rows)
READ = {key: n for key, (_, _, _, n) in FILES.items()} | {"musique_full_train": 11}


@pytest.mark.parametrize("key", sorted(FILES))
def test_every_shared_file_reads_with_its_format(real_dir, key):
    _, name, fmt, rows = FILES[key]
    path = real_path(key)
    assert len(raw_rows(path)) == rows, f"{path} changed: update FILES"
    qs = read_questions(path, fmt, dataset=name)
    assert len(qs) == READ[key]
    assert len({q.qid for q in qs}) == len(qs)
    assert all(q.question and q.answer for q in qs)
    assert {q.qid for q in qs} <= {row_id(r) for r in raw_rows(path)}
    if key == "hotpot_fullwiki":
        return  # gold often absent from the context: its own test below
    # every gold paragraph is in the row's own context (distractor settings)
    assert all(q.supporting_titles and not q.absent_support for q in qs), key
    if fmt != "ircot":
        # a gold chain for the oracle: HotpotQA supporting facts, 2Wiki evidences, MuSiQue decompositions
        assert sum(bool(q.chain) for q in qs) >= 0.95 * len(qs), key


def test_2wiki_supporting_fact_index_past_the_paragraph_reads(real_dir):
    """Six 2Wiki train rows point one sentence past their paragraph (as released). 2Wiki's chain
    comes from its evidences, a supporting fact only marks its paragraph as gold: the row reads, the
    paragraph is gold, and no chain sentence is lost."""
    path = real_path("2wiki_train")
    past: dict[str, str] = {}
    for r in raw_rows(path):
        sentences = dict((t, s) for t, s in r["context"])
        for title, idx in r["supporting_facts"]:
            if title in sentences and idx >= len(sentences[title]):
                past[r["_id"]] = title
    assert len(past) == 6
    by_id = {q.qid: q for q in read_questions(path, "2wiki", strict=True)}
    for qid, title in past.items():
        q = by_id[qid]
        assert title in q.supporting_titles
        assert q.chain and all(c.sentence for c in q.chain)


def test_fullwiki_absent_gold_is_kept_and_said(real_dir, caplog):
    """Fullwiki contexts are retrieved paragraphs: a supporting title absent from the context stays
    gold (`absent_support`), so recall and the oracle see it missing, and one warning says so."""
    path = real_path("hotpot_fullwiki")
    with caplog.at_level(logging.WARNING, logger="steper"):
        qs = read_questions(path, "hotpot", dataset="hotpot")
    absent = [q for q in qs if q.absent_support]
    empty = [q for q in qs if not q.contexts]
    assert len(absent) == 348 and len(empty) == 2
    for q in empty:
        assert q.supporting_titles == q.absent_support and q.chain == []
    for q in absent:
        present = {p.title for p in q.contexts}
        assert not set(q.absent_support) & present
        assert set(q.absent_support) <= set(q.supporting_titles)
    said = [r.getMessage() for r in caplog.records if "not in their context" in r.getMessage()]
    assert len(said) == 1 and "348 of 495 rows" in said[0] and "2 with an empty context" in said[0]


def test_musique_full_unanswerable_rows_left_out_and_counted(real_dir, caplog):
    path = real_path("musique_full_train")
    with caplog.at_level(logging.WARNING, logger="steper"):
        qs = read_questions(path, "musique", dataset="musique")
    assert len(qs) == 11
    unanswerable = {r["id"] for r in raw_rows(path) if r.get("answerable") is False}
    assert len(unanswerable) == 9 and not unanswerable & {q.qid for q in qs}
    said = [r.getMessage() for r in caplog.records if "unanswerable" in r.getMessage()]
    assert len(said) == 1 and "9 of 20 rows" in said[0]


def test_ircot_like_layout_reads_without_a_chain(real_dir):
    """The fork's IRCoT-like rows (string paragraph ids, no `idx`, no reasoning steps) read as
    questions with supporting paragraphs and no chain; the oracle then waits for every gold paragraph
    (test_real_oracle), and generate_data refuses their step-wise data."""
    qs = read_questions(real_path("hotpot_ircot_like"), "ircot", dataset="hotpot")
    assert len(qs) == 495 and all(not q.chain for q in qs)
    assert all(len(q.supporting_titles) == 2 for q in qs)


@pytest.mark.parametrize(
    ("key", "wrong", "right"),
    [
        ("hotpot_hf_dev", "hotpot", "hotpot_hf"),
        ("hotpot_dev", "hotpot_hf", "hotpot"),
        ("hotpot_ircot_like", "hotpot", "ircot"),
        ("2wiki_dev", "hotpot", "2wiki"),
        ("musique_dev", "ircot", "musique"),
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_a_file_read_as_another_format_names_the_right_one(real_dir, key, wrong, right, strict):
    """Strict or not (skipping would drop every row), one error naming file, row and the fix."""
    path = real_path(key)
    with pytest.raises(SteperError) as e:
        read_questions(path, wrong, strict=strict)
    msg = str(e.value)
    assert str(path) in msg and f"dataset.format={right}" in msg and "\n" not in msg


def test_ircot_format_ids_and_test_path_through_the_config(real_dir, tmp_path):
    """`dataset.test_path` is a key of the dataset config (no `+`), and the error for an IRCoT-layout
    dev file too small for IRCoT's sampling names it."""
    path = real_path("hotpot_ircot_like")
    base = ["dataset=hotpot", "dataset.format=ircot", f"dataset.train_path={path}", f"dataset.dev_path={path}"]
    cfg = compose_cfg("evaluate", base, tmp_path / "a")
    with pytest.raises(SteperError, match=r"dataset\.test_path=") as e:
        load_questions(cfg.dataset, "test")
    assert "495" in str(e.value)
    cfg = compose_cfg("evaluate", [*base, f"dataset.test_path={path}"], tmp_path / "b")
    assert len(load_questions(cfg.dataset, "test")) == 495
