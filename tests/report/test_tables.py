"""Run folders (synthetic, known numbers) → exact table cells, problems, duplicates, W&B exports."""

from __future__ import annotations

import csv
import time

import pytest

from steper.errors import SteperError
from steper.report.collect import collect_runs, mark_teachers
from steper.report.tables import build_tables, model_size, resolve_duplicates
from tests.report.runs_fixture import eval_metrics, eval_run, generate_data_run, multirun_yaml, train_run

# Acc per weighting and seed; mean ± sample std by hand, and the 95% t-interval over the three
# seeds, mean ± t(0.975, df=2) · std / √3 with t(0.975, 2) = 4.3027:
#   uniform  57, 58, 59      mean 58.00, std sqrt((1+0+1)/2) = 1.00        CI 58 ± 2.4841 = [55.5, 60.5]
#   adaptive 60.5, 61, 61.5  mean 61.00, std sqrt((.25+0+.25)/2) = 0.50    CI 61 ± 1.2421 = [59.8, 62.2]
#   first    56, 57.5, 59    mean 57.50, std sqrt((2.25+0+2.25)/2) = 1.50  CI 57.5 ± 3.7262 = [53.8, 61.2]
#   last     58 (seed 0; job 6), seed 1 failed (job 7, its card says failed), seed 2: job folder 8 missing
ACC = {"uniform": [57.0, 58.0, 59.0], "first": [56.0, 57.5, 59.0], "adaptive": [60.5, 61.0, 61.5]}


@pytest.fixture
def table2_sweep(tmp_path):
    mr = tmp_path / "multiruns" / "table2"
    multirun_yaml(mr, {"weighting": "uniform,first,last,adaptive", "seed": "0,1,2"})
    job = 0
    for w in ("uniform", "first", "last", "adaptive"):
        for seed in range(3):
            if w == "last" and seed == 2:
                job += 1  # never started: no folder at all
                continue
            acc = ACC[w][seed] if w in ACC else 58.0
            train_run(
                mr / str(job),
                model="llama8b",
                weighting=w,
                seed=seed,
                em=acc - 10,
                f1=acc + 1,
                acc=acc,
                finished=not (w == "last" and seed == 1),
            )
            job += 1
    return mr


def _row(markdown: str, label: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))


def test_table2_mean_std_over_three_seeds(table2_sweep):
    runs, problems = collect_runs([table2_sweep])
    tables, warnings = build_tables(runs)
    assert warnings == []
    md = tables["table2"].to_markdown()
    assert _row(md, "uniform") == "| uniform | llama8b | 58.00 ± 1.00 (n=3) [55.5, 60.5] |"
    assert _row(md, "first") == "| first | llama8b | 57.50 ± 1.50 (n=3) [53.8, 61.2] |"
    assert _row(md, "last") == "| last | llama8b | 58.00 |"  # one seed, no predictions: no CI
    assert _row(md, "adaptive") == "| adaptive | llama8b | 61.00 ± 0.50 (n=3) [59.8, 62.2] |"
    # row order is the paper's: uniform, first, last, adaptive
    labels = [
        line.split(" | ")[0][2:] for line in md.splitlines() if line.startswith("| ") and "llama8b" in line
    ]
    assert labels == ["uniform", "first", "last", "adaptive"]
    rows = list(csv.reader(tables["table2"].to_csv().splitlines()))
    assert rows[0] == [
        "weighting",
        "model",
        "hotpot/acc",
        "hotpot/acc_std",
        "hotpot/acc_n",
        "hotpot/acc_ci_low",
        "hotpot/acc_ci_high",
    ]
    assert rows[1] == ["uniform", "llama8b", "58", "1", "3", "55.5159", "60.4841"]
    assert rows[2] == ["first", "llama8b", "57.5", "1.5", "3", "53.7738", "61.2262"]
    assert rows[3] == ["last", "llama8b", "58", "", "1", "", ""]
    assert rows[4] == ["adaptive", "llama8b", "61", "0.5", "3", "59.7579", "62.2421"]
    # the failed seed is a note under the table; both missing jobs are problems
    assert any(
        "StepER (last) · llama8b · HotpotQA: 1 of 2 seeds finished" in n and "table2/7 (failed)" in n
        for n in tables["table2"].notes
    )
    assert any(
        p.endswith("table2/7/run.json: the job failed (RuntimeError: CUDA out of memory)") for p in problems
    )
    assert any(
        p.endswith("table2/8: no job folder (the job never started, or was removed)") for p in problems
    )


def test_table1_exact_cells_and_gap_for_failed_job(tmp_path):
    mr = tmp_path / "mr"
    multirun_yaml(mr, {"method": "steper,vanilla", "dataset": "hotpot,musique"})
    train_run(mr / "0", model="llama8b", method="steper", dataset="hotpot", em=51.0, f1=62.8, acc=61.0)
    train_run(mr / "1", model="llama8b", method="steper", dataset="musique", acc=34.07, em=25.0, f1=33.3)
    train_run(mr / "2", model="llama8b", method="vanilla", dataset="hotpot", em=46.4, f1=57.28, acc=54.8)
    train_run(mr / "3", model="llama8b", method="vanilla", dataset="musique", finished=False)
    eval_run(tmp_path / "teacher", metrics=eval_metrics(50.0, 60.0, 65.5, latency=20.0))
    runs, problems = collect_runs([mr, tmp_path / "teacher"])
    assert len(runs) == 5
    assert any(
        p.endswith("mr/3/run.json: the job failed (RuntimeError: CUDA out of memory)") for p in problems
    )
    t1 = build_tables(runs)[0]["table1"]
    md = t1.to_markdown()
    header = md.splitlines()[2]
    assert header == (
        "| method | model | HotpotQA EM | HotpotQA F1 | HotpotQA Acc | MuSiQue EM | MuSiQue F1 | MuSiQue Acc |"
    )
    assert (
        _row(md, "Teacher (multistep)")
        == "| Teacher (multistep) | qwen72b | 50.00 | 60.00 | 65.50 | — | — | — |"
    )
    assert _row(md, "Vanilla-KD") == "| Vanilla-KD | llama8b | 46.40 | 57.28 | 54.80 | — | — | — |"
    assert (
        _row(md, "StepER (adaptive)")
        == "| StepER (adaptive) | llama8b | 51.00 | 62.80 | 61.00 | 25.00 | 33.30 | 34.07 |"
    )
    # rows: baselines first, then Vanilla-KD, then StepER
    order = [line.split(" | ")[0][2:] for line in md.splitlines()[4:7]]
    assert order == ["Teacher (multistep)", "Vanilla-KD", "StepER (adaptive)"]
    gaps = t1.gap_lines()
    assert any(
        g.startswith("Vanilla-KD · llama8b · MuSiQue: no finished run: ") and g.endswith("mr/3 (failed)")
        for g in gaps
    )
    assert "Teacher (multistep) · qwen72b · MuSiQue: no run" in gaps
    csv_rows = list(csv.reader(t1.to_csv().splitlines()))
    assert csv_rows[0][:7] == [
        "method",
        "model",
        "hotpot/em",
        "hotpot/em_std",
        "hotpot/em_n",
        "hotpot/em_ci_low",
        "hotpot/em_ci_high",
    ]
    vanilla = next(r for r in csv_rows if r[0] == "Vanilla-KD")
    # one seed and no predictions file: no std, no CI
    assert vanilla[2:17] == ["46.4", "", "1", "", "", "57.28", "", "1", "", "", "54.8", "", "1", "", ""]
    assert vanilla[17:] == [""] * 15  # the failed musique run: empty cells


def test_same_cell_same_seed_twice_later_wins(tmp_path):
    now = time.time()
    a = train_run(tmp_path / "a", seed=1, acc=40.0, mtime=now - 100)
    b = train_run(tmp_path / "b", seed=1, acc=44.0, mtime=now)
    runs, _ = collect_runs([tmp_path])
    kept, warnings = resolve_duplicates(runs)
    assert len(kept) == 1 and kept[0].metrics["acc"] == 44.0
    assert len(warnings) == 1
    assert str(a.name) in warnings[0] and str(b.name) in warnings[0] and "seed 1" in warnings[0]
    assert warnings[0].rstrip().endswith("(later)")
    # the other way round: the folder that finished later wins whatever its name
    train_run(a, seed=1, acc=40.0, mtime=now + 50)
    kept, _ = resolve_duplicates(collect_runs([tmp_path])[0])
    assert kept[0].metrics["acc"] == 40.0
    # and a finished run beats a failed one that claims the same cell
    train_run(a, seed=1, finished=False, mtime=now + 60)
    kept, warnings = resolve_duplicates(collect_runs([tmp_path])[0])
    assert kept[0].metrics["acc"] == 44.0 and "(finished)" in warnings[0]


def test_scaling_table_orders_sizes_and_adds_teacher(tmp_path):
    for i, (model, s, v) in enumerate(
        [("qwen7b", 50.0, 45.0), ("qwen0.5b", 42.0, 37.0), ("qwen1.5b", 45.0, 40.0)]
    ):
        train_run(tmp_path / f"s{i}", model=model, method="steper", acc=s)
        train_run(tmp_path / f"v{i}", model=model, method="vanilla", acc=v)
    eval_run(
        tmp_path / "t",
        target={"target": "openai", "name": "Qwen/Qwen2.5-72B-Instruct"},
        metrics=eval_metrics(40, 50, 47.0),
    )
    runs, _ = collect_runs([tmp_path])
    assert mark_teachers(runs, ["Qwen2.5-72B-Instruct"]) == 1
    t = build_tables(runs)[0]["scaling"]
    md = t.to_markdown()
    assert (
        md.splitlines()[2]
        == "| model | size (B) | HotpotQA StepER | HotpotQA Vanilla-KD | HotpotQA Teacher |"
    )
    body = md.splitlines()[4:8]
    assert body == [
        "| qwen0.5b | 0.5 | 42.00 | 37.00 |  |",
        "| qwen1.5b | 1.5 | 45.00 | 40.00 |  |",
        "| qwen7b | 7 | 50.00 | 45.00 |  |",
        "| Qwen/Qwen2.5-72B-Instruct | 72 |  |  | 47.00 |",
    ]
    assert t.gaps == []


def test_wandb_csv_export(tmp_path):
    path = tmp_path / "wandb_export.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "Name",
                "State",
                "dataset",
                "model",
                "method",
                "weighting",
                "seed",
                "test/acc",
                "test/em",
                "test/f1",
            ]
        )
        w.writerow(["run-a", "finished", "hotpot", "llama8b", "steper", "uniform", "0", "58.4", "50", "60"])
        w.writerow(["run-b", "finished", "hotpot", "llama8b", "steper", "uniform", "1", "58.6", "51", "61"])
        w.writerow(["run-c", "crashed", "musique", "llama8b", "steper", "uniform", "0", "", "", ""])
        w.writerow(["run-d", "finished", "musique", "llama8b", "steper", "adaptive", "0", "34.07", "", ""])
    runs, problems = collect_runs([path])
    assert len(runs) == 4
    assert any("wandb_export.csv#run-c: the job failed (W&B state 'crashed')" in p for p in problems)
    t2 = build_tables(runs)[0]["table2"].to_markdown()
    # t(0.975, df=1) = 12.706: two seeds give a wide interval, 58.5 ± 12.706 · 0.1414 / √2
    assert _row(t2, "uniform") == "| uniform | llama8b | 58.50 ± 0.14 (n=2) [57.2, 59.8] | — |"
    assert _row(t2, "adaptive") == "| adaptive | llama8b | — | 34.07 |"
    t1 = build_tables(runs)[0]["table1"]
    assert any("EM, F1 not reported" in g for g in t1.gap_lines())  # run-d has only test/acc


def test_evaluate_run_of_a_trained_student(tmp_path):
    """evaluate.py target=student: its card names the student's model, method, weighting and seed."""
    student = train_run(tmp_path / "train_run", model="qwen3b", method="steper", weighting="first", seed=7)
    ev = eval_run(
        tmp_path / "ev",
        dataset="musique",
        target={
            "target": "student",
            "label": None,
            "name": "qwen3b",
            "path": str(student / "student"),
            "method": "steper",
            "weighting": "first",
            "seed": 7,
        },
        metrics=eval_metrics(20.0, 30.0, 33.0, latency=1.5),
    )
    runs, _ = collect_runs([ev])
    (r,) = runs
    assert (r.role, r.model, r.method, r.weighting, r.seed, r.dataset) == (
        "student",
        "qwen3b",
        "steper",
        "first",
        7,
        "musique",
    )
    assert r.label == "StepER (first)" and r.latency_s == 1.5
    t1 = build_tables(runs)[0]["table1"].to_markdown()
    assert _row(t1, "StepER (first)") == "| StepER (first) | qwen3b | 20.00 | 30.00 | 33.00 |"


def test_baseline_labels_and_no_runs(tmp_path):
    eval_run(
        tmp_path / "icl",
        mode="noretrieval",
        target={"target": "hf", "name": "/models/Qwen2.5-7B", "label": None},
        metrics=eval_metrics(1, 2, 3),
    )
    eval_run(
        tmp_path / "k",
        target={"target": "openai", "name": "llama70b", "label": "teacher"},
        metrics=eval_metrics(1, 2, 3),
    )
    runs, _ = collect_runs([tmp_path])
    labels = sorted((r.label, r.model, r.teacher) for r in runs)
    assert labels == [("ICL (noretrieval)", "Qwen2.5-7B", False), ("Teacher (multistep)", "llama70b", True)]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SteperError, match="no runs found under .*empty: pass job folders"):
        collect_runs([empty])


def test_model_size():
    assert [
        model_size(m)
        for m in ("qwen0.5b", "qwen1.5b", "llama8b", "Llama-3.1-70B-Instruct", "tiny", "smol-135m")
    ] == [
        0.5,
        1.5,
        8.0,
        70.0,
        None,
        0.135,
    ]


def test_swept_hyperparameter_makes_separate_rows(tmp_path):
    """A sweep over a setting outside the cell's coordinates (model.lr) gives one row per value, not duplicates."""
    for i, (lr, seed, acc) in enumerate(
        [("1e-5", 0, 50.0), ("1e-5", 1, 52.0), ("5e-6", 0, 40.0), ("5e-6", 1, 42.0)]
    ):
        train_run(
            tmp_path / "mr" / str(i),
            model="qwen7b",
            seed=seed,
            acc=acc,
            overrides=[f"model.lr={lr}", f"seed={seed}", "trainer=gpu", "sweep=table2"],
        )
    runs, _ = collect_runs([tmp_path / "mr"])
    tables, warnings = build_tables(runs)
    assert warnings == []
    md = tables["table1"].to_markdown()
    assert "| StepER (adaptive) [model.lr=1e-5] | qwen7b | — | — | 51.00 ± 1.41 (n=2) [38.3, 63.7] |" in md
    assert "| StepER (adaptive) [model.lr=5e-6] | qwen7b | — | — | 41.00 ± 1.41 (n=2) [28.3, 53.7] |" in md


def test_generate_data_runs_are_skipped(tmp_path):
    gen = generate_data_run(tmp_path / "outputs" / "generate_data" / "runs" / "x")
    # its Hydra run folder, without a card (generate_data writes it into its out_dir)
    hydra_dir = tmp_path / "outputs" / "generate_data" / "runs" / "y" / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "config.yaml").write_text("task_name: generate_data\ndataset:\n  name: toy\n")
    train_run(tmp_path / "outputs" / "debug" / "runs" / "y", acc=10.0)
    runs, problems = collect_runs([tmp_path / "outputs"])
    assert len(runs) == 1 and problems == []
    with pytest.raises(SteperError, match="no runs found"):
        collect_runs([gen])
