"""train.py's config tree: every group option composes and validates, nothing is downloaded."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from steper.config import validate
from steper.errors import SteperError
from tests.conftest import compose_plain

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

GROUPS = (
    "model",
    "weighting",
    "method",
    "peft",
    "trainer",
    "logger",
    "callbacks",
    "stepwise",
    "eval",
    "experiment",
    "debug",
)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_train(overrides: list[str] | None = None, hydra: bool = False):
    """Compose conf/train.yaml; `paths.output_dir` (Hydra's run dir at run time) is set to a path
    that is never written, so that interpolations resolve outside a Hydra run."""
    overrides = ["paths.output_dir=/nonexistent/steper-compose-test", *(overrides or [])]
    return compose_plain("train", overrides, hydra=hydra)


def has_plugin(name: str) -> bool:
    try:  # without any plugin installed, the hydra_plugins namespace package itself is missing
        return importlib.util.find_spec(f"hydra_plugins.{name}") is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


def test_defaults_compose_and_validate():
    cfg = validate(compose_train())
    assert cfg.model.name == "tiny" and cfg.weighting.name == "adaptive" and cfg.method.name == "steper"
    assert cfg.optimized_metric == "val/loss_mean" and cfg.ckpt_path is None and cfg.export is True
    assert cfg.eval.enabled is True and cfg.eval.limit == 100  # evaluated in the loop after training
    assert cfg.stepwise.data_dir.endswith("stepwise/toy-oracle-ircot/stepwise")
    assert "wandb" in cfg.logger and cfg.logger.wandb.offline == "auto"


EXPECTED_MODELS = {
    "qwen0.5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
    "qwen3b": "Qwen/Qwen2.5-3B-Instruct",
    "qwen7b": "Qwen/Qwen2.5-7B-Instruct",
    "llama8b": "meta-llama/Llama-3.1-8B-Instruct",
    "tiny": "tiny",
    # the offline pretrained checkpoints (steper.models): CPU-sized settings
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "qwen2.5-coder-0.5b": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
}
OFFLINE_MODELS = {"smollm2-135m", "qwen2.5-coder-0.5b"}


def test_model_options_are_the_documented_ones():
    assert set(options("model")) == set(EXPECTED_MODELS)


@pytest.mark.parametrize("model", sorted(EXPECTED_MODELS))
def test_every_model_composes(model):
    cfg = validate(compose_train([f"model={model}"]))
    assert cfg.model.name == model
    assert cfg.model.name_or_path == EXPECTED_MODELS[model]
    if model == "tiny":
        assert cfg.model.tiny.hidden_size == 128 and cfg.model.tiny.num_layers == 4
        assert cfg.training.lr >= 1e-3 and cfg.trainer.max_epochs == cfg.training.max_epochs
    elif model in OFFLINE_MODELS:  # fp32 on CPU, an lr that moves a small model in minutes
        assert 1e-5 <= cfg.training.lr <= 1e-3 and cfg.trainer.precision == "32-true"
    else:  # the paper's setup
        assert cfg.training.lr == pytest.approx(5e-6)
        assert cfg.trainer.max_epochs == 2
        assert cfg.trainer.precision == "bf16-mixed"
        assert cfg.module.scheduler._target_.endswith("cosine_with_warmup")
    assert cfg.module.optimizer._partial_ is True
    assert cfg.module.optimizer.lr == cfg.training.lr


def test_local_model_path_override():
    cfg = validate(compose_train(["model=qwen1.5b", "model.name_or_path=/models/my-qwen"]))
    assert cfg.model.name_or_path == "/models/my-qwen"


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(group, option):
    cfg = validate(compose_train([f"{group}={option}"]))
    OmegaConf.to_container(cfg.trainer, resolve=True)  # interpolations resolve
    OmegaConf.to_container(cfg.stepwise, resolve=False)


def test_weighting_lambdas_match_the_paper():
    from steper.distill.weighting import AdaptiveWeighting, FixedWeighting
    from steper.instantiate import build

    expected = {"uniform": (1.0, 1.0, 1.0), "first": (1.5, 1.0, 0.5), "last": (0.5, 1.0, 1.5)}
    for name, lambdas in expected.items():
        w = build(validate(compose_train([f"weighting={name}"])).weighting, drop=("name",))
        assert isinstance(w, FixedWeighting) and tuple(w.lambdas.tolist()) == lambdas
    w = build(validate(compose_train(["weighting=adaptive"])).weighting, drop=("name",))
    assert isinstance(w, AdaptiveWeighting) and w.clamp == 5.0


def test_checkpoint_monitors_val_loss_mean_never_the_total():
    from steper.plain import to_plain

    for option in options("callbacks"):
        cfg = validate(compose_train([f"callbacks={option}"]))
        for name, node in (to_plain(cfg.callbacks) or {}).items():
            if node and "monitor" in node:
                assert node["monitor"] == "val/loss_mean", (option, name)
    cfg = compose_train()
    ckpt = cfg.callbacks.model_checkpoint
    assert ckpt.mode == "min" and ckpt.save_last is True
    assert ckpt.dirpath == "/nonexistent/steper-compose-test/checkpoints"


def test_monitoring_the_weighted_total_is_refused():
    from steper.tasks.train_checks import check_monitors

    with pytest.raises(SteperError, match="WEIGHTED total"):
        check_monitors(validate(compose_train(["callbacks.model_checkpoint.monitor=train/loss"])))
    with pytest.raises(SteperError, match="(?i)weighted total"):
        check_monitors(validate(compose_train(["optimized_metric=train/loss"])))


def test_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(MissingConfigException) as e:
        compose_train(["weighting=median"])
    msg = str(e.value)
    for name in ("adaptive", "first", "last", "uniform"):
        assert name in msg
    with pytest.raises(MissingConfigException) as e:
        compose_train(["model=gpt5"])
    assert "qwen0.5b" in str(e.value) and "llama8b" in str(e.value)


def test_bad_key_or_type_is_a_steper_error():
    with pytest.raises(SteperError, match="trainer"):
        validate(compose_train(["+trainer.max_epoch=3"]))
    with pytest.raises(SteperError, match="training"):
        validate(compose_train(["training.lr=fast"]))
    with pytest.raises(SteperError, match="stepwise"):
        validate(compose_train(["stepwise.batch_size=many"]))


def test_missing_schema_keys_are_not_passed_on():
    from steper.plain import to_plain

    cfg = validate(compose_train(["weighting=uniform"]))
    spec = to_plain(cfg.weighting)
    assert set(spec) == {"name", "_target_", "lambdas"}


def test_fsdp_strategy_instantiates_on_cpu():
    import torch
    from hydra.utils import instantiate
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

    cfg = validate(compose_train(["trainer=fsdp"]))
    if not torch.distributed.is_available():  # pragma: no cover
        pytest.skip("torch.distributed unavailable")
    strategy = instantiate(cfg.trainer.strategy)
    assert type(strategy).__name__ == "FSDPStrategy"
    policy = cfg.trainer.strategy.auto_wrap_policy
    assert instantiate(policy.module_classes[0]) is Qwen2DecoderLayer


def test_llama_fsdp_wraps_llama_layers():
    cfg = validate(compose_train(["trainer=fsdp", "model=llama8b"]))
    assert cfg.trainer.strategy.auto_wrap_policy.module_classes[0].path.endswith("LlamaDecoderLayer")


def test_deepspeed_is_zero3_and_paper_preset():
    cfg = validate(compose_train(["trainer=deepspeed"]))
    assert cfg.trainer.strategy.stage == 3 and cfg.trainer.accelerator == "gpu"
    cfg = validate(compose_train(["experiment=paper_llama8b"]))
    assert cfg.model.name == "llama8b" and cfg.model.gradient_checkpointing is True
    assert cfg.trainer.strategy._target_.endswith("DeepSpeedStrategy") and cfg.trainer.devices == 4
    assert cfg.weighting.name == "adaptive" and cfg.method.name == "steper" and cfg.dataset.name == "hotpot"
    assert cfg.training.lr == pytest.approx(5e-6) and cfg.trainer.max_epochs == 2
    cfg = validate(compose_train(["experiment=paper_vanilla_llama8b"]))
    assert cfg.method.name == "vanilla" and cfg.model.name == "llama8b"


def test_experiment_may_set_top_level_keys():
    cfg = validate(compose_train(["experiment=toy_tiny"]))
    assert list(cfg.tags) == ["toy"]


def test_ddp_trainer_config():
    cfg = validate(compose_train(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]))
    assert cfg.trainer.strategy._target_.endswith("DDPStrategy")
    assert cfg.trainer.strategy.process_group_backend is None  # gloo on CPU, nccl on GPU


@pytest.mark.parametrize(
    "sweep,params",
    [
        ("table1", {"method": "vanilla,steper", "dataset": "hotpot,2wiki,musique"}),
        ("table2", {"weighting": "uniform,first,last,adaptive", "dataset": "hotpot,musique"}),
        ("scaling", {"model": "qwen0.5b,qwen1.5b,qwen3b,qwen7b", "method": "steper,vanilla"}),
    ],
)
def test_sweep_files(sweep, params):
    cfg = compose_train([f"sweep={sweep}"], hydra=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert dict(cfg.hydra.sweeper.params) == params
    for group, values in params.items():  # every value is an option of its group
        assert set(values.split(",")) <= set(options(group)), group
    if sweep == "table1":
        assert cfg.weighting.name == "adaptive"  # StepER's row of Table 1 is the adaptive one
    # and from the command line, as a user checks a sweep before launching it
    for what in ("job", "hydra"):
        r = subprocess.run(
            [sys.executable, "train.py", f"sweep={sweep}", "--cfg", what],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    for group, values in params.items():
        assert f"{group}: {values}" in r.stdout


def test_table1_baselines_sweep_for_evaluate():
    """`python evaluate.py sweep=table1_baselines --cfg hydra` composes: 3 modes x 3 datasets."""
    r = subprocess.run(
        [sys.executable, "evaluate.py", "sweep=table1_baselines", "target=oracle", "--cfg", "hydra"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "mode: MULTIRUN" in r.stdout
    assert "mode: multistep,single,noretrieval" in r.stdout and "dataset: hotpot,2wiki,musique" in r.stdout


@pytest.mark.skipif(
    not has_plugin("hydra_joblib_launcher"), reason="hydra-joblib-launcher not installed (.[sweep])"
)
def test_joblib_launcher_composes():
    cfg = compose_train(["hydra/launcher=parallel"], hydra=True)
    assert "JoblibLauncher" in cfg.hydra.launcher._target_ and cfg.hydra.launcher.n_jobs == 2


@pytest.mark.skipif(
    not has_plugin("hydra_submitit_launcher"), reason="hydra-submitit-launcher not installed (.[sweep])"
)
def test_slurm_launcher_composes():
    cfg = compose_train(["hydra/launcher=slurm", "experiment=paper_llama8b"], hydra=True)
    assert "SlurmLauncher" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.tasks_per_node == cfg.trainer.devices == 4


def _run_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["trainer=fsdp"],
        ["trainer=deepspeed"],
        ["experiment=paper_llama8b"],
        ["sweep=table2"],
    ],
    ids=["default", "fsdp", "deepspeed", "paper_llama8b", "table2"],
)
def test_cfg_job_cli(overrides):
    r = _run_cli("--cfg", "job", *overrides)
    assert r.returncode == 0, r.stderr
    printed = OmegaConf.create(r.stdout)
    assert "trainer" in printed and "model" in printed


def test_cli_unknown_option_message():
    r = _run_cli("weighting=median")
    assert r.returncode != 0
    assert "Available options" in r.stderr and "adaptive" in r.stderr and "uniform" in r.stderr


def test_an_output_folder_under_a_file_is_one_clear_error(tmp_path):
    """hydra.run.dir / hydra.sweep.dir / STEPER_ROOT naming a file: one line naming the setting, exit 2,
    nothing created (was Hydra's FileExistsError / NotADirectoryError traceback)."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    r = _run_cli("model=tiny", f"hydra.run.dir={afile}/run")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"error: hydra.run.dir={afile}/run: {afile} is a file, not a folder" in r.stderr
    r = _run_cli("-m", "model=tiny", "weighting=uniform,adaptive", f"hydra.sweep.dir={afile}")
    assert r.returncode == 2 and f"error: hydra.sweep.dir={afile}: {afile} is a file" in r.stderr, r.stderr
    env = {**os.environ, "STEPER_ROOT": str(afile)}
    r = subprocess.run([sys.executable, "train.py", "model=tiny"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 2 and f"error: STEPER_ROOT={afile}: {afile} is a file" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# --------------------------------------------------------------------------- W&B and DDP helpers


def test_secret_keys_are_masked():
    from steper.distill.wandb_utils import MASK, is_secret_key, scrub

    for key in ("api_key", "hf_token", "WANDB_API_KEY", "password", "client_secret", "key", "openai-apikey"):
        assert is_secret_key(key), key
    for key in ("max_tokens", "tokenizer", "num_key_value_heads", "monitor", "keyword_args", "name"):
        assert not is_secret_key(key), key
    cfg = {"teacher": {"api_key": "sk-123", "model": "x"}, "runs": [{"hf_token": "hf_1"}], "token": None}
    assert scrub(cfg) == {
        "teacher": {"api_key": MASK, "model": "x"},
        "runs": [{"hf_token": MASK}],
        "token": None,
    }


def test_offline_auto(monkeypatch, tmp_path):
    from steper.distill.wandb_utils import resolve_offline

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert resolve_offline("auto") is True  # no key anywhere
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    assert resolve_offline("auto") is False  # `wandb login` wrote a netrc entry
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_offline("auto") is True
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert resolve_offline("auto") is False
    assert resolve_offline(True) is True and resolve_offline("false") is False
    with pytest.raises(SteperError):
        resolve_offline("sometimes")


def test_ddp_children_join_the_job_folder(monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from steper.distill import launch

    cfg = compose_train(["weighting=first", "sweep=table2"], hydra=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = "/runs/sweep-1/3"
        cfg.hydra.overrides.task = ["weighting=first", "dataset=musique", "sweep=table2"]
    HydraConfig.instance().set_config(cfg)
    monkeypatch.setattr(sys, "argv", ["train.py", "-m", "-cn", "train", "sweep=table2"])
    # As when started as `python train.py` (not `python -m ...`, which pytest itself may be).
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    command, _ = launch.hydra_child_command(1)
    args = command[2:]
    assert "-m" not in args and args[:2] == ["-cn", "train"]
    assert args[2:5] == ["weighting=first", "dataset=musique", "sweep=table2"]
    assert "hydra.mode=RUN" in args and 'hydra.run.dir="/runs/sweep-1/3"' in args
    assert "hydra.output_subdir=null" in args
    assert launch.install()
    from lightning.pytorch.strategies.launchers import subprocess_script

    assert subprocess_script._hydra_subprocess_cmd is launch.hydra_child_command


def test_demo_experiment_is_the_pretrained_student_on_short_toy_passages():
    cfg = validate(compose_train(["experiment=demo"]))
    assert cfg.model.name == "smollm2-135m" and cfg.peft.enabled and cfg.dataset.paragraphs == "facts"
    assert cfg.retriever.top_k == 2 and cfg.eval.limit == 50 and cfg.training.batch_size <= 4
    cfg = validate(compose_train(["experiment=demo_tiny"]))
    assert cfg.model.name == "tiny" and cfg.dataset.paragraphs == "full"


def test_toy_fidelity_sweep_trains_on_three_worlds_and_tests_on_an_unseen_one():
    cfg = compose_train(["sweep=toy_fidelity", "seed=2"], hydra=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN" and dict(cfg.hydra.sweeper.params) == {"seed": "0,1,2"}
    assert cfg.model.name == "smollm2-135m" and cfg.dataset.seed == 100  # the demo's student, world 100
    assert cfg.stepwise.data_dir.endswith("/stepwise/toy-world2-facts-oracle-ircot/stepwise")
    r = subprocess.run(
        [sys.executable, "train.py", "sweep=toy_fidelity", "method=vanilla", "weighting=uniform", "--cfg", "job"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "toy-world${seed}-facts-oracle-ircot" in r.stdout and "name: vanilla" in r.stdout
