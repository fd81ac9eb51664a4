"""Datasets: readers of the official formats → one schema, the retrieval corpus, IRCoT's subsets.

The one way in is `load_questions(dataset_cfg, split)` and `load_corpus(dataset_cfg, cache_dir)`.

Modules: `schema` (Question, Paragraph, ChainStep), `readers` (one module per file format),
`subsets` (IRCoT's dev/test samples), `dumps` (paragraph dumps), `store` (the on-disk paragraph
store), `corpus` (building and caching the corpus), `loading` (config → questions and corpus),
`toy` (the synthetic world).
"""

from steper.data.corpus import load_or_build_corpus
from steper.data.loading import FORMATS, corpus_cache_path, load_corpus, load_questions
from steper.data.readers import read_questions
from steper.data.schema import ChainStep, Paragraph, Question
from steper.data.subsets import ircot_subsets, select_by_ids

__all__ = [
    "FORMATS",
    "ChainStep",
    "Paragraph",
    "Question",
    "corpus_cache_path",
    "ircot_subsets",
    "load_corpus",
    "load_or_build_corpus",
    "load_questions",
    "read_questions",
    "select_by_ids",
]
