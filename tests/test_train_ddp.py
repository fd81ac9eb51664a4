"""trainer=ddp on CPU: 2 processes over gloo, started by re-running train.py (Lightning's subprocess
launcher). A job must write ONE run folder and ONE W&B run, however Hydra names its folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import REPO, train_overrides, write_stepwise  # noqa: E402

pytestmark = pytest.mark.slow

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_steps=2", "logger=wandb"]


def _train(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    data = write_stepwise(tmp_path / "data")
    cmd = [
        sys.executable,
        "train.py",
        *args,
        *DDP,
        *train_overrides(data, tmp_path / "cache"),
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=540)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


def _check_job_folder(job: Path) -> None:
    log = (job / "train.log").read_text()
    assert (
        "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    )  # both ranks wrote here
    assert len(list((job / "wandb").glob("offline-run-*"))) == 1  # one W&B run, from rank 0
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and "val/loss_mean" in metrics
    assert (job / "student" / "model.safetensors").is_file()
    assert (job / "checkpoints" / "last.ckpt").is_file()
    assert (job / ".hydra" / "config.yaml").is_file()


def test_ddp_single_run_one_folder(tmp_path):
    # no hydra.run.dir: the default, time-stamped one (children must not make their own)
    _train(tmp_path)
    runs = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 1, runs
    assert not (tmp_path / "logs" / "train" / "multiruns").exists()
    _check_job_folder(runs[0])


def test_ddp_in_a_multirun(tmp_path):
    # the children of each job join that job's folder; no job re-runs the sweep
    _train(tmp_path, "-m", "weighting=uniform,adaptive")
    assert not (tmp_path / "logs" / "train" / "runs").exists()
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job in jobs:
        _check_job_folder(job)
