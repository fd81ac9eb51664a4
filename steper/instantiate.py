"""Config nodes → objects: `hydra.utils.instantiate` without the keys a schema left `???`, and
with steper's own errors passed through as they are (not wrapped in "Error in call to target")."""

from __future__ import annotations

from typing import Any

from steper.errors import SteperError
from steper.plain import to_plain


def build(node: Any, *, drop: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` of a config node; keys missing in the schema and `drop` left out.

    A SteperError raised by the constructor reaches the user as it is; any other error of the
    call names the target class."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    spec = to_plain(node)
    for key in drop:
        spec.pop(key, None)
    try:
        return instantiate(spec, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, SteperError):
            raise cause from None
        raise
