"""One way in: `load_questions(dataset_cfg, split)` and `load_corpus(dataset_cfg, cache_dir)`.

`dataset_cfg` is the `dataset` config section: an omegaconf DictConfig, a `steper.config.DatasetConfig`,
or a plain dict with the same keys.

Splits:
- train: the official train file (`train_path`).
- dev / test: IRCoT's 100 / 500 questions sampled from the official dev file (`dev_path`, see
  `steper.data.subsets`), or the questions listed in `dev_ids_path` / `test_ids_path`.
- format `ircot`: when `test_path` is set, dev = the `dev_path` file as it is and test = the
  `test_path` file (IRCoT's released dev_subsampled.jsonl / test_subsampled.jsonl); without
  `test_path`, `dev_path` is taken to be IRCoT's full processed dev.jsonl and subsampled as above.
- format `toy`: the synthetic world of `steper.data.toy`.

A split whose file holds no questions (an empty file, or every row skipped) is an error naming the
file, the split and the key to fix. 2Wiki's answer aliases come from `aliases_path`, else from
`id_aliases.json` beside the question file when it is there, else there are none (one warning).

The corpus is cached under `cache_dir/<name>-<hash>/corpus.jsonl` (+ `corpus.offsets.npy`), the hash taken over the config
fields that decide the corpus (name, format, question and corpus paths; for the toy world its seed,
sizes, `paragraphs` and `evidence`), so changing `strict` or the id lists does not rebuild it.
Extra question files whose paragraphs belong in the corpus (IRCoT also indexes 2Wiki's test.json
and MuSiQue's `full` files) can be listed in an optional `corpus_sources` key.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from steper.config import DatasetConfig
from steper.constants import QUESTION_SPLITS
from steper.data.corpus import load_or_build_corpus
from steper.data.readers import ALIASES_FILE, FORMAT_LABELS, read_questions
from steper.data.schema import Paragraph, Question
from steper.data.subsets import ircot_subsets, select_by_ids
from steper.errors import SteperError
from steper.plain import to_plain

FORMATS = ("toy", *FORMAT_LABELS)
_CORPUS_KEYS = ("name", "format", "train_path", "dev_path", "test_path", "corpus_path", "corpus_sources")
# The toy world's paragraphs depend on its seed and on how many questions it must supply.
_TOY_KEYS = ("seed", "n_train", "n_dev", "n_test", "hops")
# ... and on how its paragraphs are written. These options came after the first cached worlds, so
# they join the key only when not at their default: the default world keeps its cache folder, and a
# `facts` or `gated` world never reuses the `full` / `open` world's BM25 index (which lives beside
# the corpus, `steper.retrieval.index_dir`).
_TOY_OPTIONS = {"paragraphs": "full", "evidence": "open"}


def _as_dict(cfg: Any) -> dict[str, Any]:
    """The dataset config as a plain dict, every `DatasetConfig` key present (defaults filled in)."""
    d = to_plain(cfg)
    if not isinstance(d, dict):
        raise SteperError(
            f"dataset config: expected a DictConfig, a DatasetConfig or a dict, got {type(cfg).__name__}"
        )
    return {**asdict(DatasetConfig()), **d}


def _format(c: dict[str, Any]) -> str:
    fmt = c.get("format")
    if fmt not in FORMATS:
        raise SteperError(
            f"dataset `{c.get('name')}`: unknown format {fmt!r}. Valid formats: {', '.join(FORMATS)} "
            "(set dataset.format=...)."
        )
    return fmt


def _exists(path: str) -> bool:
    if any(ch in path for ch in "*?["):
        return bool(glob.glob(path))
    return Path(path).exists()


def _path(c: dict[str, Any], key: str) -> str:
    """The file a config key points at; a SteperError naming the key and the README section if absent."""
    value = c.get(key)
    if not value:
        raise SteperError(
            f"dataset `{c['name']}` (format {c['format']}): `{key}` is not set. Set dataset.{key}=/path/to/file; "
            'see the README section "Real datasets" for the files each dataset needs.'
        )
    value = str(value)
    if not _exists(value):
        raise SteperError(
            f"dataset `{c['name']}`: {key} = {value} not found. Put the official files there as the README "
            f'section "Real datasets" describes, or point dataset.{key} at them.'
        )
    return value


def _aliases_path(c: dict[str, Any], question_path: str) -> str | None:
    """2Wiki's alias file: `aliases_path` when set, else `id_aliases.json` beside the question file
    when it is there, else None (the reader then warns that aliases raise EM)."""
    if c["format"] != "2wiki":
        return None
    if c.get("aliases_path"):
        return _path(c, "aliases_path")
    beside = Path(question_path).with_name(ALIASES_FILE)
    return str(beside) if beside.is_file() else None


def _read(c: dict[str, Any], key: str, split: str) -> list[Question]:
    """The questions of the file at config key `key`, read for `split`; an error when there are none."""
    path = _path(c, key)
    questions = read_questions(
        path, c["format"], strict=bool(c["strict"]), dataset=c["name"], aliases_path=_aliases_path(c, path)
    )
    if not questions:
        why = "the file has no rows" + ("" if c["strict"] else ", or every row was skipped (see the warning)")
        if c["format"] == "musique":
            why += ", or every row is unanswerable (MuSiQue's `full` files)"
        raise SteperError(
            f"dataset `{c['name']}` (format {c['format']}): no {split} questions in {path} "
            f"(dataset.{key}): {why}. Point dataset.{key} at the file with the {split} questions "
            '(README section "Real datasets"), or set dataset.format to the format of the file.'
        )
    return questions


@functools.lru_cache(maxsize=4)
def _toy_world(
    seed: int, n_train: int, n_dev: int, n_test: int, hops: tuple[int, ...], paragraphs: str, evidence: str
):
    from steper.data.toy import make_world

    return make_world(
        seed=seed,
        n_train=n_train,
        n_dev=n_dev,
        n_test=n_test,
        hops=list(hops),
        paragraphs=paragraphs,
        evidence=evidence,
    )


def _toy_option(c: dict[str, Any], key: str) -> str:
    return str(c.get(key) or _TOY_OPTIONS[key])


def _toy(c: dict[str, Any]):
    counts = (int(c["seed"]), int(c["n_train"]), int(c["n_dev"]), int(c["n_test"]))
    return _toy_world(*counts, tuple(c["hops"]), _toy_option(c, "paragraphs"), _toy_option(c, "evidence"))


def load_questions(dataset_cfg: Any, split: str) -> list[Question]:
    """The questions of one split (train | dev | test) of the configured dataset."""
    c = _as_dict(dataset_cfg)
    fmt = _format(c)
    if split not in QUESTION_SPLITS:
        raise SteperError(f"unknown split {split!r}; valid: {', '.join(QUESTION_SPLITS)}")
    if fmt == "toy":
        return list(getattr(_toy(c), split))
    if split == "train":
        return _read(c, "train_path", split)

    ids_path = c.get(f"{split}_ids_path")
    if fmt == "ircot" and c.get("test_path"):
        if ids_path:
            pool = {q.qid: q for q in _read(c, "dev_path", split) + _read(c, "test_path", split)}
            return select_by_ids(
                list(pool.values()), _path(c, f"{split}_ids_path"), source=f"{c['dev_path']} + test"
            )
        return _read(c, "dev_path" if split == "dev" else "test_path", split)
    dev_all = _read(c, "dev_path", split)
    if ids_path:
        return select_by_ids(dev_all, _path(c, f"{split}_ids_path"), source=str(c["dev_path"]))
    alternative = (
        "or, with IRCoT's released dev_subsampled.jsonl and test_subsampled.jsonl, set "
        "dataset.test_path=<test_subsampled.jsonl> (dev is then dataset.dev_path as it is)"
        if fmt == "ircot"
        else ""
    )
    dev, test = ircot_subsets(dev_all, source=str(c["dev_path"]), alternative=alternative)
    return dev if split == "dev" else test


def no_questions_message(dataset_cfg: Any, split: str) -> str:
    """Why a split came out empty, naming the key to change (the toy world's counts)."""
    c = _as_dict(dataset_cfg)
    if _format(c) == "toy":
        key = {"train": "n_train", "dev": "n_dev", "test": "n_test"}[split]
        return f"no {split} questions in the toy world: dataset.{key}={c.get(key)}; set it to at least 1"
    return f"no {split} questions in dataset {c.get('name')!r}"


def corpus_cache_path(dataset_cfg: Any, cache_dir: str | Path) -> Path:
    """`cache_dir/<name>-<short hash of the corpus-deciding config fields>/corpus.jsonl`."""
    c = _as_dict(dataset_cfg)
    toy = c.get("format") == "toy"
    fields = {k: c.get(k) for k in _CORPUS_KEYS + (_TOY_KEYS if toy else ())}
    if toy:
        fields.update({k: v for k in _TOY_OPTIONS if (v := _toy_option(c, k)) != _TOY_OPTIONS[k]})
    key = json.dumps(fields, sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
    return Path(cache_dir) / f"{c['name']}-{digest}" / "corpus.jsonl"


def load_corpus(dataset_cfg: Any, cache_dir: str | Path) -> Sequence[Paragraph]:
    """The retrieval corpus of the configured dataset, built once and reloaded (see module doc): a list
    for the toy world, else a memory-mapped `ParagraphStore` (never the whole corpus as objects)."""
    c = _as_dict(dataset_cfg)
    fmt = _format(c)
    if fmt == "toy":
        return list(_toy(c).paragraphs)
    corpus_path = _path(c, "corpus_path") if c.get("corpus_path") else None
    question_files: list[tuple[str, str]] = []
    if corpus_path is None:
        keys = [k for k in ("train_path", "dev_path", "test_path") if c.get(k)]
        if not keys:
            _path(c, "train_path")  # raises: nothing to build from
        question_files = [(_path(c, k), fmt) for k in keys]
        for extra in c.get("corpus_sources") or []:
            if not _exists(str(extra)):
                raise SteperError(f"dataset `{c['name']}`: corpus_sources entry {extra} not found")
            question_files.append((str(extra), fmt))
    return load_or_build_corpus(
        corpus_cache_path(c, cache_dir),
        dataset=c["name"],
        question_files=question_files,
        corpus_path=corpus_path,
        strict=bool(c["strict"]),
    )


__all__ = ["FORMATS", "corpus_cache_path", "load_corpus", "load_questions"]
