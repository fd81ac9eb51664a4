"""The generator backends by name: `build_generator(cfg)` makes one from a `teacher`/`target`
config section (`steper.config.GeneratorConfig` is its schema).

Data flows one way: this module knows the backends, the backends know `steper.generators.base`,
and `base` knows none of them. A backend module is imported when it is first built, so importing
`steper.generators` stays light (no torch, no openai client).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from steper.config import GeneratorConfig
from steper.errors import SteperError
from steper.generators.base import Generator
from steper.plain import to_plain

TEACHER_FIELDS = tuple(f.name for f in fields(GeneratorConfig))
GENERATORS = ("oracle", "hf", "openai")


def _backend(name: str) -> Any:
    """The class of backend `name` (imported on first use)."""
    if name == "oracle":
        from steper.generators.oracle import OracleGenerator

        return OracleGenerator
    if name == "hf":
        from steper.generators.hf import HFGenerator

        return HFGenerator
    from steper.generators.openai_compat import OpenAICompatGenerator

    return OpenAICompatGenerator


def build_generator(cfg: Any, **objects: Any) -> Generator:
    """A generator from a `teacher` config section (`name:` plus that backend's options).

    `objects` go to the backend as they are (e.g. `model=`, `tokenizer=` for an already-loaded
    hf model). An unknown `name` or an unknown key raises a SteperError listing the valid ones;
    mandatory values left `???` count as not set.
    """
    opts = to_plain(cfg) if cfg is not None else None
    if not isinstance(opts, dict):
        raise SteperError(f"teacher config must be a mapping, got {type(cfg).__name__}")
    name = opts.pop("name", None)
    if opts.get("batch_size") is None:  # null = the backend's default
        opts.pop("batch_size", None)
    if name not in GENERATORS:
        raise SteperError(f"unknown teacher.name {name!r}; valid: {', '.join(GENERATORS)}")
    unknown = sorted(k for k in opts if k not in TEACHER_FIELDS)
    if unknown:
        raise SteperError(
            f"config `teacher`: unknown key(s) {unknown}. Valid keys: {', '.join(TEACHER_FIELDS)}"
        )
    return _backend(name).from_config(opts, **objects)
