"""Config nodes → objects: `hydra.utils.instantiate` without the keys a schema left `???`, and
with steper's own errors passed through as they are (not wrapped in "Error in call to target")."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from steper.errors import SteperError


def present(node: Any) -> Any:
    """A plain container of `node` resolved, without the keys a schema left missing (`???`)."""
    if node is None:
        return None
    if not OmegaConf.is_config(node):
        return node
    if OmegaConf.is_dict(node):
        return {k: present(node[k]) for k in node if not OmegaConf.is_missing(node, k)}
    return [present(v) for v in node]


def build(node: Any, *, drop: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` of a config node; keys missing in the schema and `drop` left out.

    A SteperError raised by the constructor reaches the user as it is; any other error of the
    call names the target class."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    spec = present(node)
    for key in drop:
        spec.pop(key, None)
    try:
        return instantiate(spec, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, SteperError):
            raise cause from None
        raise
