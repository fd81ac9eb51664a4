"""Corpus: IRCoT's union of context paragraphs, deduplicated, pids, saved once and reloaded; abstracts dumps."""

from __future__ import annotations

import bz2
import json

import pytest
from omegaconf import OmegaConf

import steper.data.corpus as corpus_mod
from steper.config import DatasetConfig
from steper.data import load_corpus, load_questions
from steper.data.corpus import load_or_build_corpus
from steper.data.dumps import AbstractsDump
from steper.data.loading import corpus_cache_path
from steper.data.readers import read_hotpot
from steper.data.schema import Paragraph
from steper.errors import SteperError


@pytest.fixture
def hotpot_path(fixtures_dir):
    return fixtures_dir / "hotpot" / "hotpot_dev_distractor_sample.json"


def test_union_dedup_first_seen_order(hotpot_path, tmp_path):
    corpus = load_or_build_corpus(
        tmp_path / "c" / "corpus.jsonl", dataset="hotpot", question_files=[(hotpot_path, "hotpot")]
    )
    # 16 context paragraphs in 4 rows; "Meet Corliss Archer" and "Ed Wood" appear twice
    assert len(corpus) == 14
    assert [p.pid for p in corpus] == [f"hotpot:{i}" for i in range(14)]
    assert [p.title for p in corpus[:6]] == [
        "Ed Wood (film)",
        "Scott Derrickson",
        "Woodson, Arkansas",
        "Ed Wood",
        "Meet Corliss Archer",
        "Kiss and Tell (1945 film)",
    ]
    assert len({(p.title, p.text) for p in corpus}) == 14
    assert not any(p.is_supporting for p in corpus)
    # the corpus texts are the question contexts' texts, so pids can be attached to them
    qs = read_hotpot(hotpot_path)
    pids = {(p.title, p.text): p.pid for p in corpus}
    assert sum((p.title, p.text) in pids for q in qs for p in q.contexts) == 16
    second_ed_wood = qs[3].contexts[3]
    assert pids[(second_ed_wood.title, second_ed_wood.text)] == "hotpot:3"  # the first one's paragraph


def test_union_over_several_files(fixtures_dir, tmp_path):
    dev = fixtures_dir / "2wiki" / "dev_sample.json"
    train = tmp_path / "train.json"
    rows = json.loads(dev.read_text())[:1]
    rows[0]["context"].append(["New Title", ["A new paragraph."]])
    train.write_text(json.dumps(rows))
    corpus = load_or_build_corpus(
        tmp_path / "c" / "corpus.jsonl", dataset="2wiki", question_files=[(train, "2wiki"), (dev, "2wiki")]
    )
    titles = [p.title for p in corpus]
    assert titles[:5] == ["Maheen Khan", "Polish-Russian War (film)", "Xawery \u017bu\u0142awski",
                          "Ma\u0142gorzata Braunek", "New Title"]  # fmt: skip
    assert len(titles) == 14 and len(set(titles)) == 14


def test_saved_once_then_reloaded(hotpot_path, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "corpus.jsonl"
    first = load_or_build_corpus(cache, dataset="hotpot", question_files=[(hotpot_path, "hotpot")])
    assert cache.is_file() and (cache.parent / "corpus.meta.json").is_file()
    mtime = cache.stat().st_mtime_ns

    def boom(*_, **__):
        raise AssertionError("rebuilt instead of reloaded")

    monkeypatch.setattr(corpus_mod, "write_corpus_store", boom)
    again = load_or_build_corpus(cache, dataset="hotpot", question_files=[(hotpot_path, "hotpot")])
    assert [p.to_dict() for p in again] == [p.to_dict() for p in first]
    assert cache.stat().st_mtime_ns == mtime
    assert json.loads(cache.read_text(encoding="utf-8").splitlines()[5])["pid"] == "hotpot:5"


def test_changed_source_rebuilds(hotpot_path, tmp_path):
    src = tmp_path / "dev.json"
    rows = json.loads(hotpot_path.read_text())
    src.write_text(json.dumps(rows[:2]))
    cache = tmp_path / "c" / "corpus.jsonl"
    assert len(load_or_build_corpus(cache, dataset="hotpot", question_files=[(src, "hotpot")])) == 8
    src.write_text(json.dumps(rows))
    assert len(load_or_build_corpus(cache, dataset="hotpot", question_files=[(src, "hotpot")])) == 14


def _write_bz2(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with bz2.open(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(r if isinstance(r, str) else json.dumps(r) + "\n")


def test_hotpot_abstracts_bz2_dump(tmp_path):
    dump = tmp_path / "enwiki-20171001-pages-meta-current-withlinks-abstracts"
    _write_bz2(
        dump / "AA" / "wiki_00.bz2",
        [
            {"id": "12", "url": "https://en.wikipedia.org/wiki?curid=12", "title": "Anarchism",
             "text": ["Anarchism is a political philosophy.", " It advocates self-governed societies."]},
            {"id": "25", "url": "https://en.wikipedia.org/wiki?curid=25", "title": "Autism",
             "text": ["Autism is a <a href=\"Developmental%20disorder\">developmental disorder</a>."]},
        ],
    )  # fmt: skip
    _write_bz2(
        dump / "AB" / "wiki_00.bz2", [{"id": "39", "title": "Albedo", "text": ["Albedo is reflectance."]}]
    )
    paras = list(AbstractsDump(dump))
    assert [(p.title, p.text) for p in paras] == [
        ("Anarchism", "Anarchism is a political philosophy. It advocates self-governed societies."),
        ("Autism", "Autism is a developmental disorder."),
        ("Albedo", "Albedo is reflectance."),
    ]
    corpus = load_or_build_corpus(tmp_path / "c" / "corpus.jsonl", dataset="hotpot", corpus_path=dump)
    assert [p.pid for p in corpus] == ["hotpot:0", "hotpot:1", "hotpot:2"]
    # a single .bz2 file works too
    assert [p.title for p in AbstractsDump(dump / "AB" / "wiki_00.bz2")] == ["Albedo"]


def test_plain_jsonl_corpus(fixtures_dir, tmp_path):
    paras = list(AbstractsDump(fixtures_dir / "abstracts" / "paragraphs.jsonl"))
    assert len(paras) == 3
    corpus = load_or_build_corpus(
        tmp_path / "c" / "corpus.jsonl",
        dataset="x",
        corpus_path=fixtures_dir / "abstracts" / "paragraphs.jsonl",
    )
    assert [(p.pid, p.title) for p in corpus] == [("x:0", "Scott Derrickson"), ("x:1", "Ed Wood")]
    assert corpus[0].text == (
        "Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer. "
        "He lives in Los Angeles, California."
    )


def test_abstracts_bad_lines(tmp_path):
    dump = tmp_path / "dump"
    _write_bz2(
        dump / "AA" / "wiki_00.bz2", [{"title": "A", "text": ["a."]}, "{broken\n", {"text": ["no title"]}]
    )
    with pytest.raises(SteperError, match=r"wiki_00\.bz2:2: malformed JSON"):
        list(AbstractsDump(dump))
    with pytest.warns(UserWarning, match=r"skipped 2 of 3 rows"):
        assert [p.title for p in AbstractsDump(dump, strict=False)] == ["A"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SteperError, match="no .bz2 or .jsonl files"):
        list(AbstractsDump(tmp_path / "empty"))


# ---------------------------------------------------------------------------------------------- load_corpus


def test_load_corpus_from_config(hotpot_path, tmp_path, fixtures_dir):
    cfg = DatasetConfig(
        name="hotpot", format="hotpot", train_path=str(hotpot_path), dev_path=str(hotpot_path)
    )
    corpus = load_corpus(cfg, tmp_path / "cache")
    assert len(corpus) == 14
    path = corpus_cache_path(cfg, tmp_path / "cache")
    assert path.is_file() and path.parent.name.startswith("hotpot-") and path.name == "corpus.jsonl"
    # same corpus config through a DictConfig → same cache folder; `strict` does not change it
    dcfg = OmegaConf.create({"name": "hotpot", "format": "hotpot", "train_path": str(hotpot_path),
                             "dev_path": str(hotpot_path), "strict": False})  # fmt: skip
    assert corpus_cache_path(dcfg, tmp_path / "cache") == path
    # with an abstracts dump the corpus is the dump only (as IRCoT), in its own cache folder
    cfg2 = DatasetConfig(
        name="hotpot", format="hotpot", dev_path=str(hotpot_path), corpus_path=str(fixtures_dir / "abstracts")
    )
    assert [p.title for p in load_corpus(cfg2, tmp_path / "cache")] == ["Scott Derrickson", "Ed Wood"]
    assert corpus_cache_path(cfg2, tmp_path / "cache") != path


def test_load_corpus_errors(tmp_path):
    with pytest.raises(
        SteperError, match=r"unknown format 'hotpotqa'.*toy, hotpot, hotpot_hf, 2wiki, musique, ircot"
    ):
        load_corpus(DatasetConfig(name="x", format="hotpotqa"), tmp_path)
    cfg = DatasetConfig(name="musique", format="musique", train_path=str(tmp_path / "missing_train.jsonl"))
    with pytest.raises(SteperError, match=r"train_path = .*missing_train\.jsonl not found.*Real datasets"):
        load_corpus(cfg, tmp_path)
    with pytest.raises(SteperError, match=r"train_path.*not set.*Real datasets"):
        load_questions(DatasetConfig(name="musique", format="musique"), "train")


# ---------------------------------------------------------------------------------------------- the store


@pytest.mark.parametrize("collide", [False, True])
def test_streamed_store_dedups_exactly_like_an_in_memory_dedup(tmp_path, monkeypatch, collide):
    """The streaming build (small batches, compact hash dedup) keeps what an in-memory dedup keeps,
    also when every key hashes alike (each hit is checked against the stored paragraph)."""
    rows = [{"title": f"T{i % 5}", "text": f"text {i % 6}"} for i in range(60)]  # 30 keys, each twice
    src = tmp_path / "dump.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(corpus_mod, "DEDUP_BATCH", 4)
    if collide:
        monkeypatch.setattr(corpus_mod, "_key_hash", lambda key: 42)
    store = load_or_build_corpus(tmp_path / "c" / "corpus.jsonl", dataset="d", corpus_path=src)
    keys = dict.fromkeys((r["title"], r["text"]) for r in rows)  # first-seen order
    expected = [Paragraph(title=t, text=x, pid=f"d:{n}") for n, (t, x) in enumerate(keys)]
    assert isinstance(store, corpus_mod.ParagraphStore) and len(store) == 30
    assert [p.to_dict() for p in store] == [p.to_dict() for p in expected]
    assert [store[i].to_dict() for i in (0, -1)] == [expected[0].to_dict(), expected[-1].to_dict()]
    assert [p.pid for p in store[2:4]] == ["d:2", "d:3"]
    with pytest.raises(IndexError):
        store[len(store)]
    assert not [f for f in (tmp_path / "c").iterdir() if f.name.startswith(".")]  # no temp files left


def test_store_without_offsets_and_damaged_store(hotpot_path, tmp_path):
    cache = tmp_path / "c" / "corpus.jsonl"
    first = load_or_build_corpus(cache, dataset="hotpot", question_files=[(hotpot_path, "hotpot")])
    # A cache written before offsets existed gets them computed, not rebuilt.
    corpus_mod.offsets_path(cache).unlink()
    mtime = cache.stat().st_mtime_ns
    again = load_or_build_corpus(cache, dataset="hotpot", question_files=[(hotpot_path, "hotpot")])
    assert [p.to_dict() for p in again] == [p.to_dict() for p in first] and cache.stat().st_mtime_ns == mtime
    # A truncated store no longer matches its offsets: a clear error, and load_or_build rebuilds it.
    cache.write_bytes(cache.read_bytes()[:100])
    with pytest.raises(SteperError, match=r"corpus\.jsonl does not match corpus\.offsets\.npy.*delete"):
        corpus_mod.ParagraphStore(cache)
    rebuilt = load_or_build_corpus(cache, dataset="hotpot", question_files=[(hotpot_path, "hotpot")])
    assert [p.to_dict() for p in rebuilt] == [p.to_dict() for p in first]
