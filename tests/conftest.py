"""Shared fixtures. Everything offline: no hub, no W&B server."""

from __future__ import annotations

import os

for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "TOKENIZERS_PARALLELISM": "false",
    # Tiny models run faster on one thread than on two contended ones, and results stay stable.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}.items():
    os.environ[_k] = _v

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


TINY_TEXTS = [
    "Wikipedia Title: Zorvak Telu\nZorvak Telu is a 1998 film directed by Mirel Okana.",
    "Wikipedia Title: Mirel Okana\nMirel Okana is a film director born in Dresavo Pint.",
    "Q: Answer the following question by reasoning step-by-step.\nWhere was the director of Zorvak Telu born?",
    "A: Zorvak Telu was directed by Mirel Okana. Mirel Okana was born in Dresavo Pint. So the answer is: Dresavo Pint.",
] * 20


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved random tiny Qwen2 + locally trained tokenizer (built once per test session)."""
    from steper.distill.tiny import load_or_build_tiny

    cache = tmp_path_factory.mktemp("tiny")
    return load_or_build_tiny(cache, lambda: TINY_TEXTS, vocab_size=512, hidden_size=64, num_layers=2)
