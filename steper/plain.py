"""Config node → plain Python containers, one way for the whole package."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def to_plain(node: Any, *, drop_missing: bool = True) -> Any:
    """`node` as plain dicts/lists: a DictConfig/ListConfig (interpolations resolved where they
    can be: `${hydra:...}` outside a Hydra job stays as text), a dataclass instance or a mapping.

    With `drop_missing`, keys left `???` are dropped (an option's file may leave them out).
    Anything else comes back unchanged.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(node, DictConfig | ListConfig):
        try:
            out = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
        except OmegaConfBaseException:
            out = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
        return _drop_missing(out) if drop_missing else out
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return dataclasses.asdict(node)
    if isinstance(node, Mapping):
        return {k: to_plain(v, drop_missing=drop_missing) for k, v in node.items()}
    return node


def _drop_missing(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_missing(v) for k, v in obj.items() if v != "???"}
    if isinstance(obj, list):
        return [_drop_missing(v) for v in obj]
    return obj
