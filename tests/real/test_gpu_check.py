"""The GPU check's CPU dry mode (scripts/gpu_check.sh --dry): the GPU mode's code path end to end
(random Qwen2 saved and loaded by load_student, bf16-mixed Lightning training through
StepwiseDistillationModule without and with gradient checkpointing, the hf backend generating at
two micro-batch sizes) at tiny sizes, and the JSON a GPU session would record."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from tests.conftest import REPO_ROOT, subprocess_env


def test_gpu_check_dry_mode(tmp_path):
    env = subprocess_env()
    env["PYTHON"] = sys.executable
    env["OUT"] = str(tmp_path)
    r = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--dry"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["mode"] == "dry" and result["device"] == "cpu"

    training = result["training"]
    assert [t["gradient_checkpointing"] for t in training] == [False, True]
    assert [t["checkpointing_active"] for t in training] == [False, True]
    for t in training:
        assert t["timed_steps"] == result["sizes"]["steps"] and t["tokens"] > 0
        assert t["tokens_per_s"] > 0 and math.isfinite(t["tokens_per_s"])
        assert 0 < t["real_token_share"] <= 1
        assert t["model_flops_per_s"] == t["model_flops_per_token"] * t["tokens_per_s"]
        assert t["loss_finite"]
    # both settings train the same batches: same token counts
    assert training[0]["tokens"] == training[1]["tokens"]

    generation = result["generation"]
    assert [g["batch_size"] for g in generation] == list(result["sizes"]["gen_batches"])
    for g in generation:
        assert g["all_returned"]
        assert 0 < g["generated_tokens"] <= g["requests"] * result["sizes"]["max_new_tokens"]
        assert g["generated_tokens_per_s"] > 0
    # the check's own lines, not the libraries' (Lightning's banners, progress bars)
    assert "GPU available" not in r.stdout + r.stderr
    assert "wrote" in r.stdout
