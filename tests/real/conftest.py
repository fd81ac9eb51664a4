"""The integration tier (`make test-real`): real pretrained checkpoints fetched by `make models`
and a real vLLM server. Every test here is marked `real`; a checkpoint that was not fetched is a
failure that says how to fetch it, never a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from steper.models import REGISTRY, fetched_path


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real)


def _fetched(name: str) -> Path:
    folder = fetched_path(REGISTRY[name])
    if folder is None:
        pytest.fail(f"{name} is not fetched: run `make models` (python -m steper.models fetch {name})")
    return folder


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (Llama architecture), converted from its GGUF."""
    return _fetched("smollm2-135m")


@pytest.fixture(scope="session")
def qwen_coder_dir() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct (Qwen2 architecture), converted from its GGUF."""
    return _fetched("qwen2.5-coder-0.5b")
