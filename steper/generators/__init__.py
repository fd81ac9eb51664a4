"""Text generators behind one small interface: `generate(requests) -> texts`, batched.

Backends: `oracle` (the gold chain, no model), `hf` (a local transformers model), `openai` (any
OpenAI-compatible server). Make one with `build_generator(cfg.teacher)`. The backends are imported
on first use, so importing this package stays light (no torch, no openai client).
"""

from __future__ import annotations

from typing import Any

from steper.generators.base import GenerationRequest, Generator, cut_at_stop
from steper.generators.registry import GENERATORS, build_generator

__all__ = [
    "GENERATORS",
    "GenerationRequest",
    "Generator",
    "HFGenerator",
    "OpenAICompatGenerator",
    "OracleGenerator",
    "build_generator",
    "cut_at_stop",
]

_LAZY = {
    "HFGenerator": "steper.generators.hf",
    "OpenAICompatGenerator": "steper.generators.openai_compat",
    "OracleGenerator": "steper.generators.oracle",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
