"""Where a fetched checkpoint lives, and what a `model=` / `*.model_name_or_path=` value means.

A value that names a registry model (its short name or its hub id) resolves to the fetched folder
when there is one, else to its hub id (the hub, or the HF cache offline); offline, a registry model
that is neither fetched nor in the HF cache is an error that says how to fetch it. Every other value (a local folder, any other hub id) passes through unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from steper.errors import SteperError
from steper.models.registry import REGISTRY, OfflineModel, find

# written last into a converted folder: its presence means the conversion finished
MARKER = "steper_model.json"


def models_dir() -> Path:
    """`$STEPER_MODELS_DIR`, else ~/.cache/steper/models (shared by every clone, like the HF cache)."""
    env = os.environ.get("STEPER_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "steper" / "models"


def fetched_path(model: OfflineModel) -> Path | None:
    folder = models_dir() / model.name
    return folder if (folder / MARKER).is_file() else None


def _hub_offline() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hf_cache(hub_id: str) -> bool:
    """Downloaded from the hub earlier (the HF cache), so loadable offline as it is."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def resolve_model(name_or_path: str | os.PathLike | None) -> str | None:
    """The folder or hub id to load for `name_or_path` (see the module docstring)."""
    if name_or_path is None or str(name_or_path) == "":
        return name_or_path  # type: ignore[return-value]
    text = str(name_or_path)
    if Path(text).expanduser().exists():
        return text
    model = find(text)
    if model is None:
        return text
    folder = fetched_path(model)
    if folder is not None:
        return str(folder)
    if _hub_offline() and not _in_hf_cache(model.hub_id):
        raise SteperError(
            f"model {text!r} ({model.hub_id}) is not fetched and the hub is off (HF_HUB_OFFLINE=1): "
            f"{models_dir() / model.name} holds no finished conversion. "
            f"Run `python -m steper.models fetch {model.name}` (or `make models`), or set STEPER_MODELS_DIR "
            "to the folder you fetched it into"
        )
    return model.hub_id


def known_names() -> str:
    return ", ".join(sorted(REGISTRY))
