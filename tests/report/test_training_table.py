"""The report's training table: per-task validation loss where it started and where it ended."""

from __future__ import annotations

from steper.report.records import RunRecord
from steper.report.run_tables import training_table


def test_training_table_start_end_ratio():
    history = {
        "step": [0, 5, 10, 20],
        "val/loss_first": [6.0, None, 3.0, 1.5],
        "val/loss_mid": [5.0, None, None, 4.0],
        "val/loss_final": [None, None, None, 2.0],  # one value only: no start/end
    }
    run = RunRecord(
        path="sweep/0",
        kind="train",
        dataset="toy",
        model="tiny",
        method="steper",
        weighting="uniform",
        seed=0,
        history=history,
    )
    evaluation = RunRecord(path="eval", kind="evaluate", dataset="toy", history=history)
    table = training_table([run, evaluation])
    assert len(table.rows) == 1
    keys, cells = table.rows[0]
    assert keys[2:] == ["tiny", "toy", "0"]
    assert [table.cell_text(c) for c in cells] == ["6.00", "1.50", "5.00", "4.00", "—", "—"]
    csv_text = table.to_csv()
    assert "first_start" in csv_text.splitlines()[0] and ",6,,1,1.5,,1," in csv_text
