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


@pytest.fixture(scope="session")
def noisy_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with larger random weights, saved: greedy outputs then depend on the prompt
    (the stock init repeats one token, which would hide a padding or batching bug)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("noisy-tiny")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def subprocess_env() -> dict[str, str]:
    """The environment for entry points started by a test: offline, one thread, unbuffered, and
    no W&B key (runs stay offline)."""
    env = dict(os.environ)  # holds the offline settings above
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("WANDB_API_KEY", None)
    return env


def compose_cfg(config_name: str, overrides: list[str], run_dir: Path):
    """conf/<config_name>.yaml composed like a Hydra run into `run_dir` (HydraConfig set, the
    `hydra` node removed), for calling a task function in-process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name=config_name,
            overrides=[*overrides, f"hydra.run.dir={run_dir}"],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.paths.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    return cfg


def compose_plain(config_name: str, overrides: list[str] | tuple[str, ...] = (), hydra: bool = False):
    """conf/<config_name>.yaml composed without a Hydra run (`${hydra:...}` left unresolved; the
    `hydra` node kept with `hydra=True`)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=hydra)


def _composer(config_name: str):
    from hydra.core.global_hydra import GlobalHydra

    def make(overrides: list[str], run_dir: Path):
        return compose_cfg(config_name, overrides, run_dir)

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture
def cfg_train():
    """`cfg_train(overrides, run_dir)`: conf/train.yaml as train.py composes it for a run in run_dir."""
    yield from _composer("train")


@pytest.fixture
def cfg_evaluate():
    """`cfg_evaluate(overrides, run_dir)`: conf/evaluate.yaml as evaluate.py composes it."""
    yield from _composer("evaluate")


@pytest.fixture
def cfg_generate_data():
    """`cfg_generate_data(overrides, run_dir)`: conf/generate_data.yaml as generate_data.py composes it."""
    yield from _composer("generate_data")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: torch's intra-op threads only add synchronisation (much slower on a busy
    2-core machine). Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
