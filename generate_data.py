"""Teacher traces → step-wise distillation data: `python generate_data.py dataset=toy teacher=oracle`.

Thin entry point: compose the config, validate it, call `steper.tasks.generate_data.generate_data`.
See conf/generate_data.yaml for the options and steper/tasks/generate_data.py for what is written.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from steper.cli import hydra_task
from steper.config import validate


@hydra.main(config_path="conf", config_name="generate_data", version_base="1.3")
@hydra_task
def main(cfg: DictConfig) -> float | None:
    from steper.tasks.generate_data import generate_data

    validate(cfg)
    manifest = generate_data(cfg)
    return manifest["teacher"]["acc"]


if __name__ == "__main__":
    main()
