"""The BM25 tokenizer: one for the index and the queries (docs/method.md §3's retriever).

Lower-case → words of 2+ word characters (bm25s's pattern) → drop stopwords → Snowball stem
(PyStemmer). `CorpusEncoder` grows one vocabulary over chunks of a corpus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import Any

import numpy as np

from steper.errors import SteperError

_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s's (and scikit-learn's) default token pattern


def _resolve_stopwords(stopwords: str | Sequence[str] | None) -> list[str]:
    """A stopword spec (a bm25s language name such as "en", a list of words, or None) → the words."""
    if stopwords is None or stopwords is False:
        return []
    if isinstance(stopwords, str):
        from bm25s.tokenization import Tokenizer

        try:
            return sorted(Tokenizer(stopwords=stopwords).stopwords)
        except ValueError:
            raise SteperError(
                f"retriever: unknown stopwords {stopwords!r}. Use a bm25s language name "
                "(en, de, fr, es, ...), a list of words, or null for none."
            ) from None
    return sorted({str(w).lower() for w in stopwords})


def _make_stemmer(stemmer: str | None):
    if stemmer is None:
        return None
    import Stemmer

    if stemmer not in Stemmer.algorithms():
        raise SteperError(
            f"retriever: unknown stemmer {stemmer!r}. Use one of PyStemmer's algorithms "
            f"({', '.join(Stemmer.algorithms())}) or null for no stemming."
        )
    return Stemmer.Stemmer(stemmer)


class Bm25Tokenizer:
    """Lower-case → words of 2+ word characters → drop stopwords → Snowball stem.

    `encode_corpus` builds the vocabulary (stem → id); `encode_queries` maps query words to the ids of
    that vocabulary, dropping words whose stem the corpus never had.
    """

    def __init__(self, stemmer: str | None, stopwords: Sequence[str]):
        self.stemmer_name = stemmer
        self.stopwords = frozenset(stopwords)
        self._stemmer = _make_stemmer(stemmer)

    def words(self, text: str) -> list[str]:
        """The stemmed tokens of one text, as strings (for inspection and other BM25 implementations)."""
        toks = [w for w in _WORD.findall(text.lower()) if w not in self.stopwords]
        return self._stemmer.stemWords(toks) if self._stemmer is not None and toks else toks

    def corpus_encoder(self) -> CorpusEncoder:
        """A stateful encoder that grows one vocabulary over chunks of texts (see `CorpusEncoder`)."""
        return CorpusEncoder(self)

    def encode_corpus(
        self, texts: Iterable[str], chunk_size: int = 10_000
    ) -> tuple[list[list[int]], dict[str, int]]:
        """Token ids of each text and the vocabulary (stem → contiguous id) they index into."""
        enc = self.corpus_encoder()
        out: list[list[int]] = []
        for chunk in _chunks(texts, chunk_size):
            flat, lengths = enc.encode(chunk)
            # Shared int objects (one per vocabulary id) instead of one new int per token: 8 bytes
            # per token in the lists, as a hand-built list of dict values would be.
            objs = enc.int_objects()[flat].tolist()
            ends = np.cumsum(lengths).tolist()
            out.extend(objs[a:b] for a, b in zip([0, *ends[:-1]], ends))
        return out, enc.vocab

    def encode_queries(self, queries: Sequence[str], vocab: dict[str, int]) -> list[list[int]]:
        out = []
        for q in queries:
            out.append([vocab[s] for s in self.words(q) if s in vocab])
        return out


class CorpusEncoder:
    """Encodes a corpus chunk by chunk into ids of one growing vocabulary, in first-seen order.

    The ids do not depend on the chunking: a stem gets the next id when its first word is first
    met, text by text, word by word, exactly as one pass over the whole corpus would give them.
    Each chunk is encoded with C-level loops (regex, dict lookups, numpy) and only the chunk's new
    words go through Python and the stemmer.
    """

    def __init__(self, tokenizer: Bm25Tokenizer):
        self._stemmer = tokenizer._stemmer
        self.vocab: dict[str, int] = {}
        # raw (lower-cased) word → token id; stopwords map to -1 and are dropped
        self._word_id: dict[str, int] = {w: -1 for w in tokenizer.stopwords}
        self._ints = np.empty(0, dtype=object)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(token ids of all texts concatenated, int32; number of tokens of each text, int64)."""
        find = _WORD.findall
        per_text = [find(t.lower()) for t in texts]
        words = list(chain.from_iterable(per_text))
        word_id = self._word_id
        ids = list(map(word_id.get, words))
        if None in ids:
            new = [w for w in dict.fromkeys(words) if w not in word_id]
            stems = self._stemmer.stemWords(new) if self._stemmer is not None else new
            vocab = self.vocab
            for w, st in zip(new, stems):
                word_id[w] = vocab.setdefault(st, len(vocab))
            ids = list(map(word_id.get, words))
        arr = np.array(ids, dtype=np.int32) if ids else np.empty(0, dtype=np.int32)
        raw_len = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
        keep = arr >= 0
        if keep.all():
            return arr, raw_len
        text_of = np.repeat(np.arange(len(per_text)), raw_len)
        return arr[keep], np.bincount(text_of[keep], minlength=len(per_text)).astype(np.int64)

    def int_objects(self) -> np.ndarray:
        """An object array whose entry i is the int i, for every id of the vocabulary so far."""
        if len(self._ints) < len(self.vocab):
            self._ints = np.arange(len(self.vocab)).astype(object)
        return self._ints


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
