"""One run folder per job under DDP / FSDP / DeepSpeed started from a Hydra entry point.

Lightning starts the extra processes of these strategies by re-running the script
(`_SubprocessScriptLauncher`): `python train.py <sys.argv[1:]> hydra.run.dir=<run.dir> ...`.
Two things go wrong with Hydra (lightning-hydra-template #393, hydra #2070):
- `hydra.run.dir` is re-resolved from its interpolation, so with a time-stamped (or job-numbered)
  run dir the children could land elsewhere, and in a multirun `run.dir` is not the job's folder;
- in a multirun `sys.argv` still holds `-m` and the whole sweep, so each child would start a
  sweep of its own.

`install()` replaces Lightning's command builder: the children get THIS job's overrides
(`hydra.overrides.task`, so the sweep's choice for this job), `hydra.mode=RUN` and the job's actual
output folder as `hydra.run.dir`, and do not write their own `.hydra/`. So a job writes ONE run
folder (and, rank 0 only, ONE W&B run), single run and multirun alike. Under SLURM (submitit) or
torchrun the processes are started externally and none of this applies.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


def hydra_child_command(local_rank: int) -> tuple[Sequence[str], str]:
    """(command, cwd) that starts the process of `local_rank` inside the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hc = HydraConfig.get()
    if getattr(__main__, "__spec__", None) is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += _config_flags(sys.argv[1:])
    command += [str(o) for o in hc.overrides.task]
    out = str(hc.runtime.output_dir)
    command += [
        "hydra.mode=RUN",
        f'hydra.run.dir="{out}"',
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


def _config_flags(argv: Sequence[str]) -> list[str]:
    """The config-path/name/dir flags of the original command line (both `-cn x` and `-cn=x`)."""
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        arg = argv[i]
        if arg in _CONFIG_FLAGS and i + 1 < len(argv):
            out += [arg, argv[i + 1]]
            next(it, None)
        elif any(arg.startswith(f + "=") for f in _CONFIG_FLAGS):
            out.append(arg)
    return out


def install() -> bool:
    """Patch Lightning's Hydra command builder (idempotent). False when this Lightning has none
    (then its own behaviour stays)."""
    patched = False
    for name in (
        "lightning.fabric.strategies.launchers.subprocess_script",
        "lightning.pytorch.strategies.launchers.subprocess_script",
    ):
        try:
            module = __import__(name, fromlist=["_hydra_subprocess_cmd"])
        except ImportError:  # pragma: no cover - lightning layout changed
            continue
        if hasattr(module, "_hydra_subprocess_cmd"):
            if module._hydra_subprocess_cmd is not hydra_child_command:
                module._hydra_subprocess_cmd = hydra_child_command
            patched = True
    return patched
