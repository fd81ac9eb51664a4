"""The step-wise distillation LightningModule: one forward per mixed-task batch, per-task losses,
a `TaskWeighting` combining them (docs/method.md §1–2, §5).

Loss: for each example the mean cross-entropy over its target tokens (shifted, -100 ignored);
L_j = the mean over task j's examples in the batch; `present_j` = task j has an example. By
default logits are computed only at target positions (hidden states → LM head on those rows),
which saves the [B, T, vocab] logits tensor; a one-time numerical check against the model's own
forward falls back to full logits for models whose head does more than a linear map.

Logged: `train/loss_<task>` (unweighted, when present), `train/loss` (weighted total, may be
negative under `adaptive`: never monitor it), the weighting's `weight/*`, `sigma/*`, `train/lr`,
`train/tokens_per_s`, `train/target_tokens_per_s` (per device), `train/grad_norm` (before clipping)
and `train/clipped` (1 when clipping changed the step); `val/loss_<task>` (mean over all
of the task's validation examples) and `val/loss_mean` (mean over present tasks: the checkpoint
monitor).
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable
from functools import partial

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

from steper.constants import STEP_TASKS
from steper.distill.batching import IGNORE_INDEX
from steper.distill.weighting import TaskWeighting

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- schedules


def _cosine_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _constant_lambda(step: int, warmup: int) -> float:
    return (step + 1) / (warmup + 1) if step < warmup else 1.0


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    warmup_ratio: float = 0.03,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """Linear warm-up over `warmup_ratio · num_training_steps` optimizer steps, then cosine decay to
    `min_lr_ratio · lr` at `num_training_steps` (docs/method.md §5). Stepped once per optimizer step."""
    warmup = int(round(warmup_ratio * num_training_steps))
    return LambdaLR(
        optimizer, partial(_cosine_lambda, warmup=warmup, total=num_training_steps, min_ratio=min_lr_ratio)
    )


def constant_with_warmup(
    optimizer: torch.optim.Optimizer, num_training_steps: int, warmup_ratio: float = 0.03
) -> LambdaLR:
    warmup = int(round(warmup_ratio * num_training_steps))
    return LambdaLR(optimizer, partial(_constant_lambda, warmup=warmup))


# --------------------------------------------------------------------------- loss helpers


def _unwrap(model):
    """The HF PreTrainedModel inside a PEFT wrapper (LoRA layers are injected in place)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def group_by_task(per_example: Tensor, task_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-task sums, counts and means of per-example losses; task id < 0 (padding copies) is ignored."""
    valid = (task_ids >= 0).to(per_example.dtype)
    idx = task_ids.clamp(min=0)
    sums = torch.zeros(len(STEP_TASKS), dtype=per_example.dtype, device=per_example.device).index_add(
        0, idx, per_example * valid
    )
    counts = torch.zeros(len(STEP_TASKS), dtype=per_example.dtype, device=per_example.device).index_add(
        0, idx, valid
    )
    return sums, counts, sums / counts.clamp(min=1)


class StepwiseDistillationModule(L.LightningModule):
    """Trains `model` on mixed first/mid/final batches, the per-task losses combined by `weighting`.

    `optimizer`: a partial taking the parameter groups (e.g. `partial(torch.optim.AdamW, lr=5e-6)`).
    `scheduler`: a partial `(optimizer, num_training_steps[, warmup_ratio]) -> LRScheduler`; None
    → `cosine_with_warmup`; False → constant lr. `warmup_ratio` is passed to it when it accepts one.
    `weighting_lr`: lr of the weighting's parameters (default: `weighting.lr`, else the model's).
    `target_logits_only`: compute logits at target positions only (checked once, see module doc).
    Attributes set by the task function: `tokenizer`, `answer_evaluator` (callable(model,
    tokenizer) -> dict of metrics, run at each validation end, logged under `val/`).
    """

    def __init__(
        self,
        model,
        weighting: TaskWeighting,
        optimizer: Callable,
        scheduler: Callable | None | bool = None,
        warmup_ratio: float = 0.03,
        weight_decay: float = 0.0,
        weighting_lr: float | None = None,
        target_logits_only: bool = True,
    ):
        super().__init__()
        self.model = model
        self.weighting = weighting
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.weighting_lr = weighting_lr
        self.target_logits_only = target_logits_only
        self.save_hyperparameters(ignore=["model", "weighting", "optimizer", "scheduler"])
        self.tokenizer = None
        self.answer_evaluator: Callable | None = None
        self._logits_checked = False
        self._present_since_step = torch.zeros(len(STEP_TASKS), dtype=torch.bool)
        self._val_sums: Tensor | None = None
        self._val_counts: Tensor | None = None
        self._last_tick: float | None = None
        self._last_tokens = (0, 0)

    # ---- forward / loss

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def _target_logits(self, input_ids: Tensor, attention_mask: Tensor, mask: Tensor) -> Tensor:
        """Logits [N, vocab] at the positions predicting a label (mask over [B, T-1])."""
        if self.target_logits_only:
            if not self._logits_checked:
                self._check_target_logits(input_ids[:1], attention_mask[:1])
            if self.target_logits_only:
                hf = _unwrap(self.model)
                hidden = hf.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
                return hf.get_output_embeddings()(hidden[:, :-1][mask])
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.logits[:, :-1][mask]

    @torch.no_grad()
    def _check_target_logits(self, input_ids: Tensor, attention_mask: Tensor) -> None:
        """Once: does `lm_head(base_model(x))` equal the model's own logits? Else use full logits."""
        self._logits_checked = True
        hf = _unwrap(self.model)
        ok = False
        if hf.get_output_embeddings() is not None and hf.base_model is not hf:
            n = int(attention_mask[0].sum())
            ids, att = input_ids[:, : min(n, 64)], attention_mask[:, : min(n, 64)]
            was_training = self.model.training
            self.model.eval()
            try:
                full = self.model(input_ids=ids, attention_mask=att, use_cache=False).logits.float()
                ours = hf.get_output_embeddings()(
                    hf.base_model(input_ids=ids, attention_mask=att, use_cache=False)[0]
                )
                ours = ours.float()
                tol = 1e-3 if full.dtype == torch.float32 and ours.dtype == torch.float32 else 5e-2
                ok = full.shape == ours.shape and bool(
                    torch.allclose(full, ours, atol=tol * (1.0 + float(full.abs().max())), rtol=tol)
                )
            except Exception as e:  # pragma: no cover - exotic models
                log.info("target-only logits unavailable (%s): using full logits", e)
            finally:
                self.model.train(was_training)
        if not ok:
            log.warning("logits at target positions only do not match the model's forward: using full logits")
            self.target_logits_only = False

    def per_example_loss(self, batch: dict) -> Tensor:
        """[B] mean token cross-entropy over each example's labelled tokens (fp32)."""
        labels = batch["labels"][:, 1:]
        mask = labels.ne(IGNORE_INDEX)
        logits = self._target_logits(batch["input_ids"], batch["attention_mask"], mask)
        token_loss = F.cross_entropy(logits.float(), labels[mask], reduction="none")
        b = labels.shape[0]
        rows = torch.arange(b, device=labels.device).unsqueeze(1).expand_as(labels)[mask]
        sums = torch.zeros(b, dtype=token_loss.dtype, device=token_loss.device).index_add(0, rows, token_loss)
        return sums / mask.sum(1).clamp(min=1).to(sums.dtype)

    def compute_loss(self, batch: dict) -> dict[str, Tensor]:
        """One forward: `total` (weighted), `task_losses` [3], `present` [3], `sums`/`counts` [3]."""
        per_example = self.per_example_loss(batch)
        sums, counts, means = group_by_task(per_example, batch["task_ids"])
        present = counts > 0
        total = self.weighting(means, present)
        return {"total": total, "task_losses": means, "present": present, "sums": sums, "counts": counts}

    # ---- training

    def _throughput(self, stats: dict | None) -> dict[str, float]:
        """Tokens/s of the previous step (time between consecutive step starts)."""
        now = time.perf_counter()
        out = {}
        if self._last_tick is not None and now > self._last_tick:
            dt = now - self._last_tick
            out = {
                "train/tokens_per_s": self._last_tokens[0] / dt,
                "train/target_tokens_per_s": self._last_tokens[1] / dt,
            }
        self._last_tick = now
        if stats:
            self._last_tokens = (stats["tokens"], stats["target_tokens"])
        return out

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        rates = self._throughput(batch.get("stats"))
        out = self.compute_loss(batch)
        bs = batch["input_ids"].shape[0]
        self._present_since_step = (
            self._present_since_step.to(out["present"].device) | out["present"].detach()
        )
        counts = batch["stats"]["task_counts"] if "stats" in batch else None
        metrics: dict[str, Tensor | float] = {"train/loss": out["total"].detach()}
        for j, task in enumerate(STEP_TASKS):
            if counts is None or counts[j] > 0:
                metrics[f"train/loss_{task}"] = out["task_losses"][j].detach()
        metrics.update(self.weighting.log_tensors())
        if self._trainer is None:  # a plain loop: nothing to log into
            return out["total"]
        for group in self.optimizers(use_pl_optimizer=False).param_groups:
            name = group.get("name", "model")
            if name == "model":
                metrics["train/lr"] = group["lr"]
            elif name == "weighting":
                metrics["train/lr_weighting"] = group["lr"]
        metrics.update(rates)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=bs)
        self.log(
            "loss",
            out["total"].detach(),
            on_step=True,
            on_epoch=False,
            prog_bar=True,
            logger=False,
            batch_size=bs,
        )
        return out["total"]

    def on_fit_start(self) -> None:
        self.train()  # from_pretrained returns eval mode (dropout off); Lightning keeps modes as found

    def on_train_start(self) -> None:
        initial = getattr(self, "_initial_val", None)
        self._initial_val = None
        if initial and self.global_step == 0 and self.trainer.is_global_zero:
            for logger in self.trainer.loggers:
                logger.log_metrics(initial, step=0)

    def on_train_epoch_start(self) -> None:
        self._last_tick = None

    def on_validation_end(self) -> None:
        self._last_tick = None  # validation time is not training time

    def _present_across_ranks(self) -> Tensor:
        present = self._present_since_step
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            present = trainer.strategy.reduce(present.float(), reduce_op="sum") > 0
        return present

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        # The closure (forward + backward) runs inside optimizer.step; s is snapshotted before it and
        # tasks absent since the last step get their s_j back after it (momentum would move it).
        snapshot = self.weighting.snapshot()
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if snapshot is not None:
            self.weighting.restore_absent(self._present_across_ranks(), snapshot)
        self._present_since_step = torch.zeros_like(self._present_since_step)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # Log the gradient norm before clipping and whether clipping changed it (`trainer.
        # gradient_clip_val`): under AdamW a constant factor on the loss (adaptive's ½·exp(-s))
        # cancels out of the update except where clipping or eps sees it, so this is what tells.
        # Sharded strategies (FSDP, DeepSpeed) hold partial gradients per rank: not logged there.
        from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

        if gradient_clip_val and isinstance(self.trainer.strategy, SingleDeviceStrategy | DDPStrategy):
            grads = [p.grad for p in self.parameters() if p.grad is not None]
            if grads:
                norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
                clipped = norm > float(gradient_clip_val) if (gradient_clip_algorithm or "norm") == "norm" else None
                logged = {"train/grad_norm": norm.detach()}
                if clipped is not None:
                    logged["train/clipped"] = clipped.float()
                self.log_dict(logged, on_step=True, on_epoch=False, batch_size=1)
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    # ---- validation

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(len(STEP_TASKS), dtype=torch.float64, device=self.device)
        self._val_counts = torch.zeros(len(STEP_TASKS), dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        per_example = self.per_example_loss(batch)
        sums, counts, _ = group_by_task(per_example, batch["task_ids"])
        if self._val_sums is None:
            self.on_validation_epoch_start()
        self._val_sums += sums.double()
        self._val_counts += counts.double()

    def validation_summary(self) -> dict[str, float]:
        """`val/loss_<task>` for tasks with examples and `val/loss_mean`, reduced over ranks."""
        sums, counts = self._val_sums, self._val_counts
        if sums is None:
            return {}
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            sums = trainer.strategy.reduce(sums, reduce_op="sum")
            counts = trainer.strategy.reduce(counts, reduce_op="sum")
        out = {}
        for j, task in enumerate(STEP_TASKS):
            if counts[j] > 0:
                out[f"val/loss_{task}"] = float(sums[j] / counts[j])
        if out:
            out["val/loss_mean"] = sum(out.values()) / len(out)
        return out

    def on_validation_epoch_end(self) -> None:
        losses = self.validation_summary()
        if self._trainer is not None and self.trainer.sanity_checking:
            # Lightning discards what is logged during the sanity check; keep it and log it at
            # step 0 when training starts: the per-task losses before any update (where it started).
            self._initial_val = dict(losses)
        mean = losses.pop("val/loss_mean", None)
        # Already reduced over ranks, so every rank holds the same values: sync_dist's mean is exact
        # (and keeps Lightning from warning about epoch-level metrics under DDP).
        if losses:
            self.log_dict(losses, on_step=False, on_epoch=True, sync_dist=True)
        if mean is not None:
            self.log("val/loss_mean", mean, on_step=False, on_epoch=True, sync_dist=True, prog_bar=True)
        self._val_sums = self._val_counts = None
        if self.answer_evaluator is None or (self._trainer is not None and self.trainer.sanity_checking):
            return
        answers = {}
        for key, value in (self.answer_evaluator(self.model, self.tokenizer) or {}).items():
            if isinstance(value, int | float) or (torch.is_tensor(value) and value.numel() == 1):
                answers[key if key.startswith("val/") else f"val/{key}"] = float(value)
        if answers:  # as the evaluator returns them on each rank: no sync
            self.log_dict(answers, on_step=False, on_epoch=True, sync_dist=False)

    # ---- optimizers

    def parameter_groups(self) -> list[dict]:
        """Model params with weight decay (matrices) / without (biases, norms: ndim < 2); the
        weighting's params in their own group (weight decay 0, lr `weighting_lr`)."""
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
        groups = []
        if decay:
            groups.append({"params": decay, "weight_decay": self.weight_decay, "name": "model"})
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0, "name": "model_no_decay"})
        weighting_params = [p for p in self.weighting.parameters() if p.requires_grad]
        if weighting_params:
            group = {"params": weighting_params, "weight_decay": 0.0, "name": "weighting"}
            lr = self.weighting_lr if self.weighting_lr is not None else getattr(self.weighting, "lr", None)
            if lr is not None:
                group["lr"] = float(lr)
            groups.append(group)
        if not groups:
            raise ValueError("no trainable parameter: the model is fully frozen and the weighting has none")
        return groups

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameter_groups())
        factory = self.scheduler_factory
        if factory is False:
            return optimizer
        if factory is None:
            factory = cosine_with_warmup
        steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(steps):
            raise ValueError("the lr schedule needs a finite run: set trainer.max_steps or max_epochs")
        kwargs = {}
        bound = getattr(factory, "keywords", None) or {}
        try:
            params = inspect.signature(factory).parameters
            accepts = "warmup_ratio" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            accepts = False
        if accepts and "warmup_ratio" not in bound:
            kwargs["warmup_ratio"] = self.warmup_ratio
        scheduler = factory(optimizer, num_training_steps=int(steps), **kwargs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }
