"""The chunked, bounded-memory index build gives exactly bm25s's one-shot index."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steper.data.corpus import load_or_build_corpus
from steper.data.schema import Paragraph
from steper.retrieval import BM25Retriever
from steper.retrieval.chunked import BM25S_FILES

WORDS = (
    "river town film director born painter mountain bird nest cliff valley flows directed "
    "directs painting paints the of and a is was in on running runs ran city cities"
).split()


def _corpus(n: int = 300, seed: int = 0) -> list[Paragraph]:
    rng = np.random.default_rng(seed)
    # Zipf-ish choice over shared words plus made-up rare words, so terms spread across chunks.
    rare = [f"zq{i}x" for i in range(400)]
    vocab = WORDS + rare
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    p /= p.sum()
    out = []
    for i in range(n):
        words = rng.choice(vocab, size=int(rng.integers(0, 30)), p=p)
        title = " ".join(rng.choice(rare, size=int(rng.integers(1, 4))))
        out.append(Paragraph(title=title.title(), text=" ".join(words), pid=None if i % 3 else f"d{i}"))
    out.append(Paragraph(title="The", text="of and the"))  # stopwords only: a document of length 0
    out.append(Paragraph(title="", text=""))
    return out


def _arrays(d) -> dict:
    out = {f: np.load(d / f) for f in BM25S_FILES if f.endswith(".npy")}
    out["vocab"] = json.loads((d / "vocab.index.json").read_text())
    out["params"] = json.loads((d / "params.index.json").read_text())
    if (d / "nonoccurrence_array.index.npy").exists():
        out["nonocc"] = np.load(d / "nonoccurrence_array.index.npy")
    return out


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_chunked_build_equals_one_shot(tmp_path, method):
    corpus = _corpus()
    BM25Retriever.build(corpus, method=method).save(tmp_path / "one")
    stats = BM25Retriever.build_to_disk(corpus, tmp_path / "chunked", chunk_size=7, method=method)
    assert stats["paragraphs"] == len(corpus) and stats["chunk_size"] == 7
    one, chunked = _arrays(tmp_path / "one"), _arrays(tmp_path / "chunked")
    assert one.keys() == chunked.keys()
    for key in one:
        if isinstance(one[key], np.ndarray):
            assert one[key].dtype == chunked[key].dtype, key
            assert np.array_equal(one[key], chunked[key]), key  # bit-identical scores
        else:
            assert one[key] == chunked[key], key
    a, b = BM25Retriever.load(tmp_path / "one"), BM25Retriever.load(tmp_path / "chunked", mmap_index=True)
    queries = ["river town", "zq3x zq10x painter", "the of", "directs birds", "zq399x"]
    assert a.retrieve_with_scores(queries, k=10) == b.retrieve_with_scores(queries, k=10)
    assert [p.to_dict() for p in b._paragraphs] == [p.to_dict() for p in a._paragraphs]
    assert not list(tmp_path.glob(".*"))  # no temp dirs or run files left behind


def test_index_blocks_smaller_than_one_term(tmp_path, monkeypatch):
    # One entry per block: every term is its own block, the most common ones over several runs.
    import steper.retrieval.chunked as chunked

    monkeypatch.setattr(chunked, "ENTRIES_PER_PARAGRAPH", 0)
    corpus = _corpus(60)
    BM25Retriever.build(corpus).save(tmp_path / "one")
    BM25Retriever.build_to_disk(corpus, tmp_path / "chunked", chunk_size=4)
    one, ch = _arrays(tmp_path / "one"), _arrays(tmp_path / "chunked")
    assert all(np.array_equal(one[k], ch[k]) for k in one if isinstance(one[k], np.ndarray))


def test_encoder_ids_do_not_depend_on_chunking():
    corpus = _corpus(120)
    tok = BM25Retriever.build(corpus[:1]).tokenizer
    texts = [f"{p.title} {p.text}" for p in corpus]
    ids, vocab = tok.encode_corpus(texts, chunk_size=1000)
    ids5, vocab5 = tok.encode_corpus(texts, chunk_size=5)
    assert ids == ids5 and vocab == vocab5
    inverse = {i: s for s, i in vocab.items()}
    assert [[inverse[i] for i in doc] for doc in ids] == [tok.words(t) for t in texts]
    assert list(vocab.values()) == list(range(len(vocab)))  # contiguous, first-seen order


def test_build_from_the_corpus_store_links_it(tmp_path):
    src = tmp_path / "paragraphs.jsonl"
    rows = [{"title": p.title, "text": p.text} for p in _corpus(50)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:10]))  # 10 duplicates
    store = load_or_build_corpus(tmp_path / "c" / "corpus.jsonl", dataset="x", corpus_path=src)
    assert len(store) == len({(r["title"], r["text"]) for r in rows})
    r = BM25Retriever.load_or_build(tmp_path / "idx", lambda: store, chunk_size=8)
    assert (tmp_path / "idx" / "paragraphs.jsonl").stat().st_ino == store.path.stat().st_ino
    assert len(r) == len(store) and r.paragraph(3).pid == "x:3"
    reference = BM25Retriever.build(list(store))
    queries = ["river town", "zq5x painter"]
    assert r.retrieve_with_scores(queries, k=5) == reference.retrieve_with_scores(queries, k=5)
