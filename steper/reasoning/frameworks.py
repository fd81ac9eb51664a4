"""The reasoning frameworks by name (`framework=ircot|selfask`, `steper.constants.FRAMEWORKS`)."""

from __future__ import annotations

from steper.constants import FRAMEWORKS
from steper.errors import SteperError
from steper.reasoning.ircot import IRCOT, Framework
from steper.reasoning.selfask import SELFASK

BY_NAME: dict[str, Framework] = {"ircot": IRCOT, "selfask": SELFASK}
assert tuple(BY_NAME) == FRAMEWORKS


def get_framework(name: str) -> Framework:
    try:
        return BY_NAME[name]
    except (KeyError, TypeError):
        raise SteperError(
            f"unknown reasoning framework {name!r}: use `framework=ircot` or `framework=selfask`"
        ) from None
