"""Structured configs: a dataclass per config section, so a wrong key or type fails with a clear message.

Entry points call `validate(cfg)` right after Hydra composed the config. Each section is merged into
its dataclass schema; an unknown key or a value of the wrong type raises a `SteperError` that names
the section, the key and the valid keys. Modules add their section's schema to `SCHEMAS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from steper.errors import SteperError


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "data"
    cache_dir: str = "data/cache"
    log_dir: str = "outputs"
    output_dir: str = "outputs"


@dataclass
class DatasetConfig:
    name: str = "toy"
    # toy | hotpot | hotpot_hf | 2wiki | musique | ircot
    format: str = "toy"
    train_path: str | None = None
    dev_path: str | None = None
    test_path: str | None = None  # only for formats that ship a separate test file (ircot)
    aliases_path: str | None = None  # 2Wiki id_aliases.json
    corpus_path: str | None = None  # HotpotQA abstracts dump, or a prepared corpus JSONL
    dev_ids_path: str | None = None
    test_ids_path: str | None = None
    strict: bool = True
    # toy world
    seed: int = 0
    n_train: int = 400
    n_dev: int = 50
    n_test: int = 100
    hops: list[int] = field(default_factory=lambda: [2, 3, 4])


@dataclass
class RetrieverConfig:
    name: str = "bm25"
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"
    top_k: int = 4


SCHEMAS: dict[str, type] = {
    "paths": PathsConfig,
    "dataset": DatasetConfig,
    "retriever": RetrieverConfig,
}


def validate_section(name: str, node: Any, schema: type) -> DictConfig:
    """Merge one section into its schema; raise a SteperError naming the bad key on failure."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or getattr(e, "key", None) or "?"
        valid = ", ".join(f.name for f in fields(schema))
        msg = str(e).splitlines()[0]
        raise SteperError(f"config `{name}`: bad key `{key}`: {msg}. Valid keys of `{name}`: {valid}") from None


def validate(cfg: DictConfig) -> DictConfig:
    """Validate every known section present in `cfg` in place; returns `cfg` for chaining."""
    for name, schema in SCHEMAS.items():
        if name in cfg and cfg[name] is not None:
            checked = validate_section(name, cfg[name], schema)
            with _open_struct(cfg):
                cfg[name] = checked
    return cfg


class _open_struct:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg

    def __enter__(self) -> None:
        self.flag = OmegaConf.is_struct(self.cfg)
        OmegaConf.set_struct(self.cfg, False)

    def __exit__(self, *exc: object) -> None:
        OmegaConf.set_struct(self.cfg, self.flag)
