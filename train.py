"""Train a student on step-wise distillation data (StepER or Vanilla-KD).

    python train.py [group=option ...] [key=value ...]        python train.py --help

A thin Hydra entry point: the work is `steper.tasks.train.train`. Returns the `optimized_metric`
(default val/loss_mean), so a Hydra sweeper can minimise it.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from steper.cli import hydra_task


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@hydra_task
def main(cfg: DictConfig) -> float | None:
    from steper.tasks.train import run

    return run(cfg)


if __name__ == "__main__":
    main()
