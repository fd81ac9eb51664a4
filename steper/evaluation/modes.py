"""Evaluation modes (the ICL baseline families): `multistep` = the full loop; `single` = one
retrieval with the question at step 1, then the reasoning goes on without retrieval;
`noretrieval` = no retrieval at all. single/noretrieval wrap the framework's `query`, so the loop
is one (docs/method.md §6)."""

from __future__ import annotations

from collections.abc import Sequence

from steper.constants import MODES
from steper.errors import SteperError
from steper.reasoning.loop import Framework, get_framework


class ModeFramework(Framework):
    """A framework whose retrieval is restricted: `single` retrieves with the question at step 1
    only, `noretrieval` never. Everything else (units, stop rule, answer) is the wrapped one's."""

    def __init__(self, base: Framework, mode: str):
        if mode not in ("single", "noretrieval"):
            raise SteperError(f"ModeFramework mode must be single or noretrieval, got {mode!r}")
        self.base = base
        self.mode = mode
        self.name = base.name

    def unit(self, generation: str) -> str:
        return self.base.unit(generation)

    def unit_settled(self, generation: str) -> bool:
        return self.base.unit_settled(generation)

    def query(self, question: str, units: Sequence[str]) -> str | None:
        if self.mode == "noretrieval" or units:
            return None
        return question

    def is_final(self, unit: str) -> bool:
        return self.base.is_final(unit)

    def answer(self, unit: str) -> str | None:
        return self.base.answer(unit)


def with_mode(framework: str | Framework, mode: str = "multistep") -> Framework:
    """The framework (by name or object) restricted to `mode`."""
    if mode not in MODES:
        raise SteperError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    fw = get_framework(framework) if isinstance(framework, str) else framework
    return fw if mode == "multistep" else ModeFramework(fw, mode)
