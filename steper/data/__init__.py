"""Datasets: readers of the official formats → one schema, the retrieval corpus, IRCoT's subsets.

The one way in is `load_questions(dataset_cfg, split)` and `load_corpus(dataset_cfg, cache_dir)`.
"""

from steper.data.corpus import assign_pids, build_corpus, load_or_build_corpus
from steper.data.loading import FORMATS, SPLITS, corpus_cache_path, load_corpus, load_questions
from steper.data.readers import read_questions
from steper.data.schema import ChainStep, Paragraph, Question
from steper.data.subsets import ircot_subsets, select_by_ids

__all__ = [
    "FORMATS",
    "SPLITS",
    "ChainStep",
    "Paragraph",
    "Question",
    "assign_pids",
    "build_corpus",
    "corpus_cache_path",
    "ircot_subsets",
    "load_corpus",
    "load_or_build_corpus",
    "load_questions",
    "read_questions",
    "select_by_ids",
]
