"""Lightning callbacks of the training task (train.py)."""

from __future__ import annotations

import lightning.pytorch as L


class TrainableOnlyCheckpoint(L.Callback):
    """Keep only trainable weights in checkpoints when part of the model is frozen (LoRA).

    With LoRA the base model is frozen: saving it in every checkpoint would cost gigabytes and add
    nothing, since a resume loads the same base again. This callback drops every frozen parameter
    from `checkpoint["state_dict"]` (the adapters and the weighting's log σ² stay; buffers stay)
    and makes the module load checkpoints with `strict=False`, so the missing frozen weights are
    simply kept as loaded. With full fine-tuning nothing is frozen and it does nothing.
    """

    def __init__(self) -> None:
        self.frozen: set[str] = set()

    def _frozen_names(self, pl_module: L.LightningModule) -> set[str]:
        # remove_duplicate=False: tied weights (lm_head ↔ embeddings) appear under both names
        return {n for n, p in pl_module.named_parameters(remove_duplicate=False) if not p.requires_grad}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # runs before Lightning restores a checkpoint (trainer.fit(..., ckpt_path=...))
        self.frozen = self._frozen_names(pl_module)
        if self.frozen:
            pl_module.strict_loading = False

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        frozen = self._frozen_names(pl_module)
        if not frozen:
            return
        state = checkpoint.get("state_dict")
        if state is None:  # strategies that save their own format (DeepSpeed) have none here
            return
        for key in [k for k in state if k in frozen]:
            del state[key]
        checkpoint["steper_trainable_only"] = True


class RunIdFile(L.Callback):
    """Write the W&B run id beside the checkpoints (`<ckpt_dir>/wandb_run_id.txt`) once training
    starts, so `ckpt_path=last` continues the same W&B run. Rank 0 only."""

    def __init__(self, ckpt_dir: str, run_id: str):
        self.ckpt_dir = ckpt_dir
        self.run_id = run_id

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            from steper.distill.wandb_utils import write_run_id

            write_run_id(self.ckpt_dir, self.run_id)


class SamplerEpochSync(L.Callback):
    """Seed the training sampler with the epoch being trained, at every epoch start.

    Lightning sets the sampler's epoch from its loop progress, which is one ahead after resuming
    an iteration-based run (max_steps, max_epochs=-1) from a checkpoint saved at an epoch's end:
    the resumed run would then see another epoch's data order than an uninterrupted one.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from lightning.fabric.utilities.data import _set_sampler_epoch

        loaders = trainer.train_dataloader
        if isinstance(loaders, dict):
            loaders = list(loaders.values())
        elif not isinstance(loaders, list | tuple):
            loaders = [loaders]
        for loader in loaders:
            if loader is not None:
                _set_sampler_epoch(loader, trainer.current_epoch)
