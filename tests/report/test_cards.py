"""The report reads run cards only: a missing, old, broken or odd card is one problem line naming the
file (and the key), never a crash and never silence; W&B export columns map onto card fields."""

from __future__ import annotations

import csv
import json

import pytest

from steper.errors import SteperError
from steper.report import make_report
from steper.report.cards import Problems
from steper.report.collect import collect_runs
from steper.report.run_tables import training_table
from steper.report.tables import build_tables
from steper.report.wandb_csv import card_from_row, read_wandb_csv
from tests.report.runs_fixture import eval_metrics, eval_run, multirun_yaml, train_run


def _edit_card(folder, **fields):
    path = folder / "run.json"
    card = json.loads(path.read_text())
    card.update(fields)
    path.write_text(json.dumps(card))
    return card


def _only(problems, folder):
    return [p for p in problems if f"{folder.name}/run.json" in p]


def test_folder_without_card_is_a_problem(tmp_path):
    train_run(tmp_path / "good", acc=50.0)
    (tmp_path / "old" / ".hydra").mkdir(parents=True)  # a Hydra job folder that never wrote a card
    (tmp_path / "old" / ".hydra" / "config.yaml").write_text("task_name: train\n")
    runs, problems = collect_runs([tmp_path])
    assert [r.path for r in runs] == [str(tmp_path / "good")]
    (line,) = problems
    assert line.endswith("old/run.json: no run card (the job stopped before it started, or an older "
                         "steper wrote this folder); rerun the job")  # fmt: skip


def test_multirun_job_without_card_and_missing_job(tmp_path):
    mr = tmp_path / "mr"
    multirun_yaml(mr, {"seed": "0,1,2"})
    train_run(mr / "0", seed=0, acc=50.0)
    (mr / "1").mkdir()  # a numbered job folder, no card, no .hydra
    runs, problems = collect_runs([mr])
    assert len(runs) == 1
    assert any(p.endswith("mr/1/run.json: no run card (the job stopped before it started, or an older "
                          "steper wrote this folder); rerun the job") for p in problems)  # fmt: skip
    assert any(p.endswith("mr/2: no job folder (the job never started, or was removed)") for p in problems)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"card": 0}, "run card version 0, this steper reads version 1: rerun the job"),
        ({"metrics": "x"}, "run card field `metrics` is str, expected dict"),
        ({"job": "sweep"}, "job 'sweep' is not one of generate_data, train, evaluate"),
        ({"colour": "blue"}, "unknown run card fields ['colour']"),
    ],
)
def test_bad_card_is_one_problem_line(tmp_path, edit, message):
    train_run(tmp_path / "good", acc=50.0)
    bad = train_run(tmp_path / "bad", acc=60.0)
    _edit_card(bad, **edit)
    runs, problems = collect_runs([tmp_path])
    assert len(runs) == 1 and runs[0].metrics["acc"] == 50.0
    (line,) = _only(problems, bad)
    assert "bad/run.json: " in line and message in line


def test_card_that_does_not_parse(tmp_path):
    train_run(tmp_path / "good", acc=50.0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text('{"job": "train", "status": ')
    (tmp_path / "old").mkdir()  # today's evaluate.py layout: a run.json without a card version
    (tmp_path / "old" / "run.json").write_text(json.dumps({"task": "evaluate", "target": {"label": "x"}}))
    runs, problems = collect_runs([tmp_path])
    assert len(runs) == 1
    assert any("bad/run.json: malformed JSON at line 1" in p for p in problems)
    assert any("old/run.json: run card version None" in p for p in problems)


def test_only_bad_cards_error_names_the_first_problem(tmp_path):
    bad = train_run(tmp_path / "bad", acc=60.0)
    _edit_card(bad, card=2)
    with pytest.raises(SteperError, match=r"no runs found under .*bad/run.json: run card version 2"):
        collect_runs([tmp_path])


def test_non_numeric_metric_is_a_problem_naming_file_and_key(tmp_path, monkeypatch):
    """QA: `"em": "abc"` printed "EM not reported" and 0 problems."""
    monkeypatch.chdir(tmp_path)
    train_run(tmp_path / "r", metrics={"em": "abc", "f1": 60.0, "acc": 61.0})
    runs, problems = collect_runs([tmp_path])
    assert problems == ["r/run.json: metrics.em is 'abc', not a number; left out"]
    (r,) = runs
    assert r.ok and r.metrics == {"f1": 60.0, "acc": 61.0}
    gaps = build_tables(runs)[0]["table1"].gap_lines()
    assert any(g.endswith("EM not reported") for g in gaps)
    report = make_report([tmp_path], tmp_path / "rep", plots=False)
    assert any("metrics.em is 'abc', not a number" in p for p in report.problems)
    assert "metrics.em is 'abc', not a number; left out" in (tmp_path / "rep" / "report.md").read_text()


def test_other_bad_metric_values(tmp_path):
    run = train_run(
        tmp_path / "r",
        metrics={"em": [50, 51], "f1": float("nan"), "acc": 250.0, "latency_s": {"mean": "slow"}, "n": True},
    )
    runs, problems = collect_runs([tmp_path])
    mine = _only(problems, run)
    assert any(p.endswith("metrics.em is [50, 51], not a number; left out") for p in mine)
    assert any(p.endswith("metrics.f1 is nan, not a finite number; left out") for p in mine)
    assert any(
        p.endswith("metrics.acc is 250.0, outside 0-100 (answer metrics are percent); left out") for p in mine
    )
    assert any(p.endswith("metrics.latency_s.mean is 'slow', not a number; left out") for p in mine)
    assert any(p.endswith("metrics.n is True, not a number; left out") for p in mine)
    # no usable acc: the run is listed as finished without answer metrics, with its reason
    assert any(
        p.endswith("r/run.json: no metrics.acc (evaluation after training did not run?)") for p in mine
    )
    (r,) = runs
    assert r.status == "no-test-metrics" and r.metrics == {} and r.latency_s is None


def test_running_card_is_a_failed_record(tmp_path):
    run = train_run(tmp_path / "r", acc=50.0)
    _edit_card(run, status="running", finished=None)
    runs, problems = collect_runs([tmp_path])
    assert runs[0].status == "failed" and runs[0].metrics == {}
    assert _only(problems, run)[0].endswith("r/run.json: status 'running' (killed, or still running?)")


def _history():
    return [
        {"step": 0, "val/loss_first": 3.0, "val/loss_mid": 2.5, "val/loss_final": 2.0},
        {"step": 5, "train/loss": 1.0},
        {"step": 10, "val/loss_first": 1.5, "val/loss_mid": 1.25, "val/loss_final": 1.0},
    ]


def test_training_table_reads_where_history(tmp_path):
    run = train_run(tmp_path / "r", acc=50.0, history=_history())
    (r,) = collect_runs([tmp_path])[0]
    assert r.history_path == str(run / "csv" / "metrics.csv")
    table = training_table([r])
    assert [table.cell_text(c) for c in table.rows[0][1]] == ["3.00", "1.50", "2.50", "1.25", "2.00", "1.00"]
    # the card is the one pointer: a history elsewhere is read from where it says
    (run / "csv" / "metrics.csv").rename(run / "history.csv")
    _edit_card(run, where={"history": "history.csv"})
    (r,) = collect_runs([tmp_path])[0]
    assert training_table([r]).rows
    # a card naming a history that is not there: a problem, no table row
    (run / "history.csv").unlink()
    runs, problems = collect_runs([tmp_path])
    assert not training_table(runs).rows
    assert any(
        "r/run.json: where.history names" in p and "history.csv, which is not there" in p for p in problems
    )


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_wandb_columns_map_onto_card_fields():
    row = {
        "Name": "eval-1",
        "State": "finished",
        "dataset.name": "{'name': 'musique', 'format': 'musique'}",
        "eval/mode": "single",
        "target.name": "openai",
        "target.model": "Qwen/Qwen2.5-72B-Instruct",
        "eval/em": "30",
        "eval/f1": "40.5",
        "eval/acc": "45",
        "eval/latency_s/mean": "2.5",
    }
    problems = Problems("x.csv#eval-1")
    card = card_from_row(row, problems)
    assert problems == []
    assert (card.job, card.status) == ("evaluate", "done")
    assert card.data == {"dataset": "musique", "mode": "single"}
    assert card.model == {"target": "openai", "name": "Qwen/Qwen2.5-72B-Instruct"}
    assert card.metrics == {"em": 30.0, "f1": 40.5, "acc": 45.0, "latency_s": 2.5}
    train = card_from_row(
        {"State": "crashed", "model": "qwen7b", "method": "steper", "weighting": "last", "seed": "3"},
        problems,
    )
    assert (train.job, train.status, train.error) == ("train", "failed", "W&B state 'crashed'")
    assert train.model == {"name": "qwen7b", "method": "steper", "weighting": "last", "seed": "3"}


def test_wandb_bad_number_names_the_column(tmp_path):
    path = _write_csv(
        tmp_path / "export.csv",
        "Name State dataset model method weighting seed test/acc test/em test/f1".split(),
        [["run-a", "finished", "hotpot", "llama8b", "steper", "uniform", "0", "58.4", "abc", "inf"]],
    )
    (r,), problems = read_wandb_csv(path)
    assert r.ok and r.metrics == {"acc": 58.4} and r.seed == 0
    assert any(
        p.endswith("export.csv#run-a: column test/em is 'abc', not a number; left out") for p in problems
    )
    assert any(
        p.endswith("export.csv#run-a: metrics.f1 is inf, not a finite number; left out") for p in problems
    )


def test_wandb_evaluate_rows_become_baselines_and_students(tmp_path):
    path = _write_csv(
        tmp_path / "export.csv",
        ["Name", "dataset", "target.name", "target.label", "target.model", "model", "method", "weighting",
         "seed", "eval/acc"],
        [
            ["t", "hotpot", "openai", "teacher", "llama70b", "", "", "", "", "65"],
            ["s", "hotpot", "student", "", "", "qwen3b", "steper", "first", "7", "33"],
        ],
    )  # fmt: skip
    runs, problems = collect_runs([path])
    assert problems == []
    labels = sorted((r.label, r.model, r.role, r.seed) for r in runs)
    assert labels == [
        ("StepER (first)", "qwen3b", "student", 7),
        ("Teacher (multistep)", "llama70b", "baseline", None),
    ]
    # and an evaluate card gives the same record as its W&B row
    eval_run(tmp_path / "ev", target={"target": "openai", "name": "llama70b", "label": "teacher"},
             metrics=eval_metrics(1, 2, 65.0))  # fmt: skip
    (folder,) = collect_runs([tmp_path / "ev"])[0]
    (row,) = [r for r in runs if r.role == "baseline"]
    assert (folder.label, folder.model, folder.teacher, folder.metrics["acc"]) == (
        row.label, row.model, row.teacher, row.metrics["acc"])  # fmt: skip
