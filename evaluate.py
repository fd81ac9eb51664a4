"""Evaluate a student (or the teacher, a baseline, the oracle) on test questions: EM / F1 / Acc.

    python evaluate.py target=student target.path=<train run dir>/student [dataset=hotpot] [mode=single]
    python evaluate.py --help

Thin entry point: compose the config, validate it, call `steper.tasks.evaluate.evaluate_run`.
See conf/evaluate.yaml for the options and steper/tasks/evaluate.py for what is written.
Returns the accuracy (for a sweeper).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from steper.cli import hydra_task
from steper.config import validate


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
@hydra_task
def main(cfg: DictConfig) -> float | None:
    from steper.tasks.evaluate import evaluate_run

    validate(cfg)
    metrics = evaluate_run(cfg)
    return metrics["acc"]


if __name__ == "__main__":
    main()
