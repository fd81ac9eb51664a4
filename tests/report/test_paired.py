"""CIs and paired differences in the report, on run folders whose predictions are constructed so
the answer is known: identical runs, a run right on 20 more of 200 questions, mismatched question
sets, several seeds, and cards with and without what the student trained on."""

from __future__ import annotations

import csv
import re

import pytest

from steper.report import make_report
from steper.report.__main__ import main
from steper.report.collect import collect_runs
from steper.report.tables import build_tables
from tests.report.runs_fixture import eval_metrics, eval_run, train_run

N = 200


def _rows(right: set[int], n: int = N, start: int = 0) -> list[dict]:
    return [
        {"qid": f"q{i}", "em": float(i in right), "f1": float(i in right), "acc": float(i in right)}
        for i in range(start, start + n)
    ]


def _student(folder, method, right, *, weighting="adaptive", seed=0, n=N, start=0, counts=None, acc=None):
    share = 100 * sum(1 for i in range(start, start + n) if i in right) / n
    metrics = {"em": share, "f1": share, "acc": share if acc is None else acc, **(counts or {})}
    return train_run(
        folder,
        model="qwen0.5b",
        method=method,
        weighting=weighting,
        seed=seed,
        metrics=metrics,
        predictions=_rows(right, n, start),
    )


def _table_rows(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _md_row(markdown: str, start: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(start))


def _cells(line: str) -> list[str]:
    """A Markdown table line's cells."""
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def _ci(cell: str) -> tuple[float, float]:
    lo, hi = re.search(r"\[([−+\-]?[\d.]+), ([−+\-]?[\d.]+)\]", cell).groups()
    return float(lo.replace("−", "-")), float(hi.replace("−", "-"))


def test_report_twenty_more_of_200_rejects_and_table_cells_carry_cis(tmp_path):
    _student(tmp_path / "runs" / "vanilla", "vanilla", set(range(100)), weighting="uniform")
    _student(tmp_path / "runs" / "steper", "steper", set(range(120)))
    out = tmp_path / "rep"
    report = make_report([tmp_path / "runs"], out, plots=False)
    assert report.problems == []
    md = (out / "report.md").read_text()

    # Table 1: one seed, so the CI is the bootstrap over the 200 questions; it sits where the
    # normal approximation puts it (50 ± 6.9, 60 ± 6.8), within a point
    vanilla = _md_row(md, "| Vanilla-KD | qwen0.5b |")
    cells = _cells(vanilla)
    assert cells[2].startswith("50.00 [")
    lo, hi = _ci(cells[2])
    assert abs(lo - 43.07) < 1 and abs(hi - 56.93) < 1
    lo, hi = _ci(_cells(_md_row(md, "| StepER (adaptive) | qwen0.5b |"))[4])
    assert abs(lo - 53.2) < 1 and abs(hi - 66.8) < 1
    t1 = _table_rows(out / "table1.csv")
    assert float(t1[0]["hotpot/acc_ci_low"]) < 50 < float(t1[0]["hotpot/acc_ci_high"])

    # the paired row: +10 points, McNemar's exact p = 2 · 0.5^20, the CI above 0
    row = _md_row(md, "| StepER (adaptive) − Vanilla-KD | qwen0.5b | HotpotQA | Acc |")
    assert "| 0 | 200 | +10.00 |" in row
    assert "| 20 / 0 | McNemar (exact) | 1.9e-06 | StepER (adaptive) higher |" in row
    lo, hi = _ci(_cells(row)[7])
    assert 0 < lo < 10 < hi
    paired = _table_rows(out / "paired.csv")
    acc = next(r for r in paired if r["metric"] == "Acc")
    assert acc["comparison"] == "StepER (adaptive) − Vanilla-KD" and acc["questions"] == "200"
    assert float(acc["difference"]) == pytest.approx(10.0)
    assert float(acc["p"]) == pytest.approx(2 * 0.5**20, rel=1e-4)
    assert float(acc["ci_low"]) > 0 and acc["verdict"] == "StepER (adaptive) higher"
    assert {r["metric"] for r in paired} == {"EM", "F1", "Acc"}  # Table 1's three metrics
    assert not (out / "paired_seeds.csv").exists()  # one seed: no per-seed table


def test_identical_runs_are_inside_the_noise(tmp_path):
    right = set(range(0, N, 4))
    _student(tmp_path / "v", "vanilla", right, weighting="uniform")
    _student(tmp_path / "u", "steper", right, weighting="uniform")
    _student(tmp_path / "a", "steper", right)
    _student(tmp_path / "f", "steper", right, weighting="first")
    _student(tmp_path / "l", "steper", right, weighting="last")
    tables, _ = build_tables(collect_runs([tmp_path])[0])
    md = tables["paired"].to_markdown()
    # every comparison the paper makes, and only those: each StepER against Vanilla-KD on three
    # metrics, adaptive against the three manual weightings on Acc
    names = [
        _cells(line)[0] + " · " + _cells(line)[3] for line in md.splitlines()[3:] if line.startswith("| ")
    ]
    assert names == [
        *(
            f"StepER ({w}) − Vanilla-KD · {m}"
            for w in ("uniform", "first", "last", "adaptive")
            for m in ("EM", "F1", "Acc")
        ),
        "StepER adaptive − uniform · Acc",
        "StepER adaptive − first · Acc",
        "StepER adaptive − last · Acc",
    ]
    for name in (
        "StepER (adaptive) − Vanilla-KD",
        "StepER (uniform) − Vanilla-KD",
        "StepER adaptive − uniform",
        "StepER adaptive − last",
    ):
        row = _md_row(md, f"| {name} | qwen0.5b | HotpotQA | Acc |")
        assert row.endswith(
            "| 0 | 200 | +0.00 | [+0.0, +0.0] |  | 0 / 0 | McNemar (exact) | 1.000 | inside the noise |"
        ), row
    rows = list(csv.DictReader(tables["paired"].to_csv().splitlines()))
    assert all(float(r["difference"]) == 0 and float(r["p"]) == 1 for r in rows)
    assert all(r["ci_low"] == "0" and r["ci_high"] == "0" for r in rows)


def test_mismatched_questions_paired_on_the_intersection(tmp_path):
    _student(tmp_path / "v", "vanilla", set(range(100)), weighting="uniform")  # q0..q199
    _student(tmp_path / "s", "steper", set(range(100)), n=180, start=20)  # q20..q199
    tables, _ = build_tables(collect_runs([tmp_path])[0])
    t = tables["paired"]
    row = _md_row(t.to_markdown(), "| StepER (adaptive) − Vanilla-KD | qwen0.5b | HotpotQA | Acc |")
    assert "| 0 | 180 | +0.00 |" in row
    assert any(
        "paired on the 180 questions both answered (StepER (adaptive) 180, Vanilla-KD 200)" in n
        for n in t.notes
    )


def test_several_seeds_summary_and_per_seed_rows(tmp_path):
    # per seed, StepER is right on 20, 10 and 0 more of the 200 questions than Vanilla-KD
    for seed, more in ((0, 20), (1, 10), (2, 0)):
        base = set(range(seed * 10, seed * 10 + 80))
        _student(tmp_path / f"v{seed}", "vanilla", base, weighting="uniform", seed=seed)
        _student(tmp_path / f"s{seed}", "steper", base | set(range(100, 100 + more)), seed=seed)
    out = tmp_path / "rep"
    make_report([tmp_path], out, plots=False)
    md = (out / "report.md").read_text()
    row = _md_row(md, "| StepER (adaptive) − Vanilla-KD | qwen0.5b | HotpotQA | Acc |")
    cells = _cells(row)
    assert cells[4:7] == ["0, 1, 2", "200 × 3", "+5.00"]
    # the seeds' differences are 10, 5, 0 points: t-interval 5 ± 4.3027 · 5 / √3 = [−7.4, +17.4]
    assert cells[8] == "[−7.4, +17.4]"
    q_lo, _ = _ci(cells[7])
    assert q_lo > 0  # on these questions the advantage is clear ...
    assert "| 30 / 0 | McNemar (exact), pooled | 1.9e-09 |" in row  # ... p = 2 · 0.5^30
    assert cells[-1] == "inside the noise"  # ... but the seeds disagree too much to call it
    per_seed = _table_rows(out / "paired_seeds.csv")
    acc = [r for r in per_seed if r["metric"] == "Acc"]
    assert [(r["seed"], float(r["difference"])) for r in acc] == [("0", 10.0), ("1", 5.0), ("2", 0.0)]
    assert acc[0]["verdict"] == "StepER (adaptive) higher" and acc[2]["verdict"] == "inside the noise"
    assert "### Paired differences per seed" in md
    # Table 1 over three seeds: mean ± std and the t-interval of the seed means (50, 45, 40 → 45 ± 12.4)
    cell = _cells(_md_row(md, "| StepER (adaptive) | qwen0.5b |"))[4]
    assert cell == "45.00 ± 5.00 (n=3) [32.6, 57.4]"


def test_training_counts_columns_and_old_cards(tmp_path):
    counts = {"optimizer_steps": 25, "examples_seen": 100, "target_tokens": 12345}
    _student(tmp_path / "new", "steper", set(range(50)), counts=counts)
    _student(tmp_path / "old", "vanilla", set(range(40)), weighting="uniform")  # an older card
    eval_run(tmp_path / "teacher", metrics=eval_metrics(40.0, 50.0, 60.0))
    runs, problems = collect_runs([tmp_path])
    assert problems == []
    tables, _ = build_tables(runs)
    md = tables["table1"].to_markdown()
    header = md.splitlines()[2]
    assert header.endswith("| HotpotQA Acc | HotpotQA steps | HotpotQA examples | HotpotQA target tokens |")
    assert _md_row(md, "| StepER (adaptive) |").endswith("| 25 | 100 | 12,345 |")
    assert _md_row(md, "| Vanilla-KD |").endswith("| – | – | – |")  # not recorded
    assert _md_row(md, "| Teacher (multistep) |").endswith("| 60.00 |  |  |  |")  # does not apply
    assert _md_row(tables["table2"].to_markdown(), "| adaptive |").endswith("| 25 | 100 | 12,345 |")
    t1 = list(csv.DictReader(tables["table1"].to_csv().splitlines()))
    steper = next(r for r in t1 if r["method"] == "StepER (adaptive)")
    assert (steper["hotpot/optimizer_steps"], steper["hotpot/target_tokens"]) == ("25", "12345")
    assert "hotpot/acc_ci_low" in steper and "hotpot/optimizer_steps_ci_low" not in steper  # counts: no CI
    from steper.report.run_tables import runs_table

    runs_md = runs_table(runs).to_markdown()
    assert "| steps | examples | target tokens |" in runs_md.splitlines()[2]
    # without any card that has them, no such columns at all
    tables, _ = build_tables([r for r in runs if "optimizer_steps" not in r.extra])
    assert "steps" not in tables["table1"].to_markdown().splitlines()[2]


def test_bad_counts_and_mismatched_predictions_are_problems(tmp_path):
    _student(tmp_path / "a", "steper", set(range(50)), counts={"optimizer_steps": 2.5}, acc=30.0)
    runs, problems = collect_runs([tmp_path])
    assert any("metrics.optimizer_steps is 2.5, not a whole number >= 0" in p for p in problems)
    assert any("mean acc 25.00 differs from the card's 30.00" in p for p in problems)
    (r,) = runs
    assert "acc" not in r.scores and "em" in r.scores  # no CI from another evaluation's file
    cell = _cells(_md_row(build_tables(runs)[0]["table1"].to_markdown(), "| StepER (adaptive) |"))
    assert cell[4] == "30.00" and "[" in cell[2]


def test_no_predictions_one_note_and_cli_prints_paired(tmp_path, capsys):
    train_run(tmp_path / "old" / "v", method="vanilla", acc=40.0)
    train_run(tmp_path / "old" / "s", method="steper", acc=45.0)
    assert main([str(tmp_path / "old"), "--out", str(tmp_path / "r1"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "paired differences: 2 compared runs have no per-question scores" in printed
    md = (tmp_path / "r1" / "report.md").read_text()
    assert "No paired differences (no two runs that the paper compares" in md

    _student(tmp_path / "new" / "v", "vanilla", set(range(100)), weighting="uniform")
    _student(tmp_path / "new" / "s", "steper", set(range(120)))
    assert main([str(tmp_path / "new"), "--out", str(tmp_path / "r2")]) == 0
    printed = capsys.readouterr().out
    assert "Paired differences" in printed and "1.9e-06" in printed and "StepER (adaptive) higher" in printed
    assert "50.00 [" in printed  # Table 1's cell with its CI
    assert (tmp_path / "r2" / "acc_ci.png").stat().st_size > 0
    assert "![acc_ci](acc_ci.png)" in (tmp_path / "r2" / "report.md").read_text()
