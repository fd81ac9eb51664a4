"""`python -m steper.report` end to end: files written, plots are images, errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from steper.report.__main__ import main
from steper.report.collect import collect_runs
from steper.report.plots import make_plots
from tests.conftest import REPO_ROOT
from tests.report.runs_fixture import eval_metrics, eval_run, multirun_yaml, train_run


def _history(n: int = 8) -> list[dict]:
    rows = []
    for k in range(n):
        s = 0.06 * k
        rows.append(
            {
                "step": 10 * k,
                "epoch": 0,
                "train/loss_first": 2.0 - 0.1 * k,
                "sigma/first": 1.0 - s / 2,
                "sigma/mid": 1.0 + s / 3,
                "sigma/final": 1.0 - s,
                "weight/first": 0.5 / (1.0 - s / 2) ** 2,
                "weight/mid": 0.5 / (1.0 + s / 3) ** 2,
                "weight/final": 0.5 / (1.0 - s) ** 2,
            }
        )
        if k % 2:
            rows.append(
                {
                    "step": 10 * k,
                    "epoch": 0,
                    "val/loss_first": 2.1 - 0.1 * k,
                    "val/loss_mid": 1.9 - 0.08 * k,
                    "val/loss_final": 1.2 - 0.05 * k,
                    "val/loss_mean": 1.7,
                }
            )
    return rows


@pytest.fixture
def sweep(tmp_path):
    """A scaling sweep (4 sizes x steper/vanilla, one failed job) + a teacher evaluation."""
    mr = tmp_path / "multiruns" / "scaling"
    multirun_yaml(mr, {"model": "qwen0.5b,qwen1.5b,qwen3b,qwen7b", "method": "steper,vanilla"})
    job = 0
    for i, model in enumerate(("qwen0.5b", "qwen1.5b", "qwen3b", "qwen7b")):
        for method, acc in (("steper", 42.0 + 3 * i), ("vanilla", 37.0 + 3 * i)):
            failed = model == "qwen3b" and method == "vanilla"
            train_run(
                mr / str(job),
                model=model,
                method=method,
                acc=acc,
                em=acc - 6,
                f1=acc + 4,
                finished=not failed,
                history=_history() if method == "steper" else None,
                eval_metrics=None if failed else eval_metrics(acc - 6, acc + 4, acc, latency=0.5 * (i + 1)),
            )
            job += 1
    eval_run(tmp_path / "teacher", metrics=eval_metrics(40.0, 52.0, 47.0, latency=20.0))
    return tmp_path


def test_report_writes_everything(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(sweep / "multiruns"), str(sweep / "teacher"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "Scaling" in printed and "scaling/5/run.json: the job failed" in printed
    for name in (
        "report.md",
        "table1.csv",
        "table2.csv",
        "scaling.csv",
        "runs.csv",
        "scaling.png",
        "latency.png",
        "val_loss_hotpot.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    sigma = sorted(out.glob("sigma_*.png"))
    assert len(sigma) == 4  # one per steper run
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "scaling.png")
    assert img.ndim == 3 and img.shape[0] >= 400 and img.shape[1] >= 600
    report = (out / "report.md").read_text()
    assert "| qwen3b | 3 | 48.00 | — |  |" in report  # the failed vanilla job: a gap
    assert "| Teacher (multistep) | qwen72b | 40.00 | 52.00 | 47.00 |" in report
    assert "![scaling](scaling.png)" in report
    assert "scaling/5/run.json: the job failed (RuntimeError: CUDA out of memory)" in report
    assert "## Reasoning-ability judge" in report and "Not judged" in report
    scaling_csv = (out / "scaling.csv").read_text().splitlines()
    assert (
        scaling_csv[0]
        == "model,size (B),hotpot/steper_acc,hotpot/steper_acc_std,hotpot/steper_acc_n,hotpot/vanilla_acc,hotpot/vanilla_acc_std,hotpot/vanilla_acc_n,hotpot/teacher_acc,hotpot/teacher_acc_std,hotpot/teacher_acc_n"
    )
    assert scaling_csv[1] == "qwen0.5b,0.5,42,,1,37,,1,,,"
    assert scaling_csv[-1] == "qwen72b,72,,,,,,,47,,1"


def test_plots_skip_without_data(tmp_path, capsys):
    train_run(tmp_path / "r", acc=50.0)  # no history, no latency, one size
    runs, _ = collect_runs([tmp_path])
    files, skipped = make_plots(runs, tmp_path / "out")
    assert files == []
    assert len(skipped) == 5 and any(s.startswith("scaling plot:") for s in skipped)
    assert any(s.startswith("Acc CI plot:") for s in skipped)
    assert any(s.startswith("latency plot:") for s in skipped)


def test_partial_tables_exit_0(tmp_path):
    train_run(tmp_path / "ok", acc=50.0)
    train_run(tmp_path / "bad", finished=False)
    assert main([str(tmp_path), "--out", str(tmp_path / "rep"), "--no-plots", "--quiet"]) == 0
    assert (tmp_path / "rep" / "table1.csv").is_file()


def _run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steper.report", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def test_no_runs_is_one_clear_line_exit_2(tmp_path):
    (tmp_path / "nothing_here").mkdir()
    p = _run_cli(str(tmp_path / "nothing_here"), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert (
        lines[0].startswith("error: no runs found under ")
        and "pass job folders (with a run.json card) or multirun folders" in lines[0]
    )
    assert not (tmp_path / "rep").exists()
    p = _run_cli("--help", cwd=tmp_path)
    assert p.returncode == 0 and "--judge-base-url" in p.stdout and "table2.csv" in p.stdout


def test_out_is_a_file_is_one_clear_line(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "taken").write_text("x")
    p = _run_cli(str(tmp_path / "runs"), "--out", str(tmp_path / "taken"), cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"error: --out {tmp_path / 'taken'} is a file, not a folder: give a folder for the report"]
