"""BM25Retriever on a tiny hand-made corpus: ranking, title, stemming, batching, save/load, caching."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from steper.data.schema import Paragraph
from steper.errors import SteperError
from steper.retrieval import BM25Retriever, index_dir, load_retriever

CORPUS = [
    Paragraph("Zorvak Telu", "Zorvak Telu is a 1998 film directed by Mirel Okana.", pid="p-zorvak"),
    Paragraph("Mirel Okana", "Mirel Okana is a film director born in Dresavo Pint."),
    Paragraph("Dresavo Pint", "Dresavo Pint is a small town on the Ulna river."),
    Paragraph("Ulna river", "The Ulna is a river that flows through three valleys."),
    Paragraph("Kestrel Varga", "A painter who lived in the mountains and painted birds."),
    Paragraph("Mountain birds", "Birds of the high mountains build nests on cliffs."),
]


@pytest.fixture(scope="module")
def retriever() -> BM25Retriever:
    return BM25Retriever.build(CORPUS)


def titles(paras: list[Paragraph]) -> list[str]:
    return [p.title for p in paras]


def test_right_paragraph_wins(retriever):
    (top,) = retriever.retrieve(["Where was Mirel Okana born?"], k=2)
    assert top[0].title == "Mirel Okana"
    (top,) = retriever.retrieve(["which river flows through valleys"], k=1)
    assert titles(top) == ["Ulna river"]


def test_title_is_indexed(retriever):
    # "Kestrel" and "Varga" appear only in the title of their paragraph.
    (top,) = retriever.retrieve(["Kestrel Varga"], k=3)
    assert titles(top) == ["Kestrel Varga"]


def test_stemming_matches_word_forms(retriever):
    # The corpus says "directed"; the query says "directs" (both stem to "direct").
    (top,) = retriever.retrieve(["directs"], k=3)
    assert titles(top) == ["Zorvak Telu"]
    (top,) = retriever.retrieve(["painting bird"], k=1)
    assert titles(top) == ["Kestrel Varga"]


def test_returns_copies_with_pid_in_score_order(retriever):
    paras, scores = retriever.retrieve_with_scores(["Dresavo Pint town"], k=6)
    assert titles(paras[0])[0] == "Dresavo Pint"
    assert scores[0] == sorted(scores[0], reverse=True)
    assert len(paras[0]) == len(scores[0])
    assert all(p.pid is not None for p in paras[0])
    zorvak = retriever.retrieve(["Zorvak"], k=1)[0][0]
    assert zorvak.pid == "p-zorvak"  # an existing pid is kept
    assert retriever.retrieve(["Ulna"], k=1)[0][0].pid == "3"  # a missing one becomes the position
    zorvak.title = "changed"
    assert retriever.retrieve(["Zorvak"], k=1)[0][0].title == "Zorvak Telu"


def test_batched_equals_one_by_one(retriever):
    queries = ["Mirel Okana film", "river town", "the of and", "birds nests cliffs", "Zorvak Telu 1998"]
    batched = retriever.retrieve_with_scores(queries, k=3)
    one_by_one = [retriever.retrieve_with_scores([q], k=3) for q in queries]
    assert batched[0] == [p[0][0] for p in one_by_one]
    assert batched[1] == [s[1][0] for s in one_by_one]
    assert retriever.retrieve_with_scores(queries, k=3, n_threads=2) == batched


def test_stopword_only_and_unknown_queries_return_nothing(retriever):
    assert retriever.retrieve(["the of and is a", "", "???", "qwertyuiop"], k=4) == [[], [], [], []]
    assert retriever.retrieve([], k=4) == []
    res = retriever.retrieve(["the", "Ulna"], k=4)
    assert res[0] == [] and res[1][0].title == "Ulna river"


def test_k_larger_than_corpus_is_clipped(retriever):
    (top,) = retriever.retrieve(["river"], k=1000)
    assert 0 < len(top) <= len(CORPUS)
    # Only passages sharing a term with the query come back.
    assert set(titles(top)) == {"Dresavo Pint", "Ulna river"}
    assert retriever.retrieve(["river"], k=0) == [[]]


def test_save_load_identical(retriever, tmp_path):
    queries = ["Mirel Okana film", "river town", "birds", "the"]
    retriever.save(tmp_path / "idx")
    loaded = BM25Retriever.load(tmp_path / "idx")
    assert loaded.params == retriever.params
    assert len(loaded) == len(retriever)
    assert loaded.retrieve_with_scores(queries, k=4) == retriever.retrieve_with_scores(queries, k=4)
    assert BM25Retriever.load(tmp_path / "idx", mmap_index=True).retrieve(queries, k=4) == retriever.retrieve(
        queries, k=4
    )
    # Saving again over an existing directory replaces it atomically, leaving no temp dirs behind.
    retriever.save(tmp_path / "idx")
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_load_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(SteperError, match="missing or incomplete"):
        BM25Retriever.load(tmp_path / "nope")


def test_load_or_build_reloads_and_rebuilds(tmp_path, caplog):
    calls = []

    def corpus():
        calls.append(1)
        return CORPUS

    d = tmp_path / "idx"
    r1 = BM25Retriever.load_or_build(d, corpus)
    r2 = BM25Retriever.load_or_build(d, corpus)
    assert len(calls) == 1  # the second call reloaded
    assert r2.retrieve(["Mirel"], k=2) == r1.retrieve(["Mirel"], k=2)
    # Different params: rebuilt.
    r3 = BM25Retriever.load_or_build(d, corpus, k1=0.9, stemmer=None)
    assert len(calls) == 2 and r3.params["k1"] == 0.9 and r3.params["stemmer"] is None
    assert r3.retrieve(["directs"], k=3) == [[]]  # no stemming: "directs" != "directed"
    BM25Retriever.load_or_build(d, corpus, k1=0.9, stemmer=None)
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["drop_vocab", "truncate_paragraphs", "garble_meta", "empty_dir"])
def test_load_or_build_rebuilds_a_corrupt_dir(tmp_path, caplog, damage):
    d = tmp_path / "idx"
    BM25Retriever.build(CORPUS).save(d)
    if damage == "drop_vocab":
        (d / "vocab.index.json").unlink()
    elif damage == "truncate_paragraphs":
        data = (d / "paragraphs.jsonl").read_bytes()
        (d / "paragraphs.jsonl").write_bytes(data[: len(data) // 2])
    elif damage == "garble_meta":
        (d / "meta.json").write_text("{not json")
    else:
        for f in d.iterdir():
            f.unlink()
    with caplog.at_level(logging.WARNING, logger="steper.retrieval.bm25"):
        r = BM25Retriever.load_or_build(d, lambda: CORPUS)
    assert "rebuilding" in caplog.text
    assert r.retrieve(["Mirel Okana"], k=1)[0][0].title == "Mirel Okana"
    assert BM25Retriever.load(d).retrieve(["Mirel Okana"], k=1)[0][0].title == "Mirel Okana"


def test_bad_params_are_clear_errors():
    with pytest.raises(SteperError, match="method"):
        BM25Retriever.build(CORPUS, method="okapi")
    with pytest.raises(SteperError, match="stemmer"):
        BM25Retriever.build(CORPUS, stemmer="klingon")
    with pytest.raises(SteperError, match="stopwords"):
        BM25Retriever.build(CORPUS, stopwords="klingon")
    with pytest.raises(SteperError, match="empty"):
        BM25Retriever.build([])


@pytest.mark.parametrize("method", ["robertson", "atire", "bm25l", "bm25+"])
def test_other_methods_rank_and_drop_non_matching(method):
    r = BM25Retriever.build(CORPUS, method=method)
    (top,) = r.retrieve(["Mirel Okana director"], k=6)
    assert top[0].title == "Mirel Okana"
    assert set(titles(top)) == {"Mirel Okana", "Zorvak Telu"}
    assert r.retrieve(["the"], k=3) == [[]]


def test_tokenizer_settings_are_saved_with_the_index(tmp_path):
    r = BM25Retriever.build(CORPUS, stopwords=["river", "Birds"], stemmer=None)
    assert r.retrieve(["river", "birds", "directs"], k=3) == [[], [], []]
    r.save(tmp_path / "idx")
    loaded = BM25Retriever.load(tmp_path / "idx")
    assert loaded.params["stopwords"] == ["birds", "river"] and loaded.params["stemmer"] is None
    assert loaded.retrieve(["river", "birds", "directs", "directed"], k=3) == r.retrieve(
        ["river", "birds", "directs", "directed"], k=3
    )
    assert titles(loaded.retrieve(["directed"], k=3)[0]) == ["Zorvak Telu"]


def test_load_retriever_caches_under_dataset_and_param_hashes(tmp_path, monkeypatch):
    import steper.data as data_pkg

    calls = []

    def fake_load_corpus(dataset_cfg, cache_dir):
        calls.append(dataset_cfg["name"])
        return CORPUS

    monkeypatch.setattr(data_pkg, "load_corpus", fake_load_corpus, raising=False)
    ds = {"name": "toy", "format": "toy", "seed": 0}
    rc = {
        "name": "bm25",
        "k1": 1.5,
        "b": 0.75,
        "method": "lucene",
        "stemmer": "english",
        "stopwords": "en",
        "top_k": 4,
    }
    r = load_retriever(ds, rc, tmp_path)
    assert r.retrieve(["Mirel Okana"], k=1)[0][0].title == "Mirel Okana"
    d = index_dir(ds, rc, tmp_path)
    assert (
        d.parent.parent == Path(tmp_path) and d.parent.name.startswith("toy-") and d.name.startswith("bm25-")
    )
    assert (d / "meta.json").is_file()
    load_retriever(ds, {**rc, "top_k": 8}, tmp_path)  # top_k does not change the index
    assert calls == ["toy"]
    assert index_dir({**ds, "seed": 1}, rc, tmp_path).parent != d.parent
    assert index_dir(ds, {**rc, "k1": 1.2}, tmp_path).parent == d.parent
    assert index_dir(ds, {**rc, "k1": 1.2}, tmp_path) != d
