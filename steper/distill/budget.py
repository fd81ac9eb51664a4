"""Training budgets: how long a student trains, in epochs, optimizer steps or target tokens.

Methods train on different numbers of examples from the same traces: one epoch of Vanilla-KD is one
example per question, one epoch of StepER one example per reasoning step (about three per
question), so "one epoch each" gives StepER about three times the updates. A comparison of methods
needs one budget for all (docs/method.md §5):

- `training.budget=epochs` (default): `training.max_epochs` passes over the training examples
  (the paper's protocol: 2 epochs for every method, so StepER takes more steps);
- `training.budget=steps`: `training.max_steps` optimizer steps for every method (epochs follow
  from the data: several passes over Vanilla-KD's fewer examples);
- `training.budget=tokens`: the first optimizer step at which the student has trained on
  `training.max_target_tokens` target (loss) tokens.

The batch order is a pure function of (seed, epoch) (`batching.BatchPlan`), so what a run of N
optimizer steps consumes — batches, examples, target tokens — is computed from the plan instead of
counted while training: exact after a resume, the same on every rank, no device sync. A token
budget becomes a step count the same way, before training, so the lr schedule knows its length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from steper.errors import SteperError

BUDGETS = ("epochs", "steps", "tokens")


@dataclass(frozen=True)
class Consumed:
    """What training consumed up to an optimizer step (all ranks together)."""

    optimizer_steps: int
    batches: int  # global batches (one per rank per step, times gradient accumulation)
    examples_seen: int  # real examples (the padding copies that even out ranks' shares not counted)
    target_tokens: int  # tokens with a loss: each example's length minus its input
    epochs: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_budget(training: Any, trainer: Any) -> None:
    """`training.budget` and the key it reads, before anything loads; one error naming the fix."""
    budget = training.get("budget", "epochs")
    if budget not in BUDGETS:
        raise SteperError(
            f"training.budget={budget!r} is not a budget: use one of {', '.join(BUDGETS)} "
            "(epochs = training.max_epochs, steps = training.max_steps, tokens = training.max_target_tokens)"
        )
    if budget == "epochs":
        epochs = training.get("max_epochs")
        until_steps = epochs == -1 and int(trainer.get("max_steps", -1)) > 0  # Lightning's "no epoch limit"
        if not until_steps and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise SteperError(
                f"training.max_epochs must be an integer of at least 1 with training.budget=epochs, got "
                f"{epochs!r} (0 would export an untrained student): set e.g. training.max_epochs=2"
            )
        return
    key = "max_steps" if budget == "steps" else "max_target_tokens"
    value = training.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SteperError(
            f"training.budget={budget} needs training.{key} to be an integer of at least 1, got {value!r}: "
            f"set e.g. training.{key}={25 if budget == 'steps' else 20000}"
        )
    if int(trainer.get("max_steps", -1)) != -1:
        raise SteperError(
            f"trainer.max_steps={trainer.get('max_steps')} and training.budget={budget} both set how long training "
            f"runs: drop trainer.max_steps (training.{key} sets the length), or use training.budget=epochs"
        )


class BudgetPlan:
    """The training examples' batch plan with what each example trains (target tokens)."""

    def __init__(self, plan: Any, targets: np.ndarray, accumulate: int = 1, limit_batches: Any = None):
        self.plan = plan
        self.targets = np.asarray(targets, dtype=np.int64)
        self.accumulate = max(int(accumulate), 1)
        self.limit_batches = limit_batches

    @classmethod
    def from_datamodule(cls, dm: Any, world_size: int, accumulate: int = 1, limit_batches: Any = None):
        """The plan of `dm`'s training split (tokenized) over `world_size` ranks."""
        split = dm.datasets["train"]
        sampler = dm.sampler("train", num_replicas=world_size, rank=0)
        return cls(sampler.plan, split.lengths - split.n_input, accumulate, limit_batches)

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        batches = self.plan.batches(epoch)
        limit = self.limit_batches
        if limit is None or (isinstance(limit, float) and limit == 1.0):
            return batches
        if isinstance(limit, float):
            return batches[: int(len(batches) * limit)]
        return batches[: int(limit)]

    def steps(self) -> Iterator[Consumed]:
        """What is consumed after each optimizer step, step after step (epochs repeat without end).
        Lightning steps the optimizer every `accumulate` batches and at an epoch's last batch."""
        n = len(self.targets)
        step = batches = examples = tokens = 0
        epoch = 0
        while True:
            epoch_batches = self._epoch_batches(epoch)
            if not epoch_batches:
                raise SteperError("the training split has no batch: nothing to train on")
            for i, batch in enumerate(epoch_batches):
                real = batch[batch < n]
                batches += 1
                examples += len(real)
                tokens += int(self.targets[real].sum())
                last = i == len(epoch_batches) - 1
                if (i + 1) % self.accumulate == 0 or last:
                    step += 1
                    yield Consumed(step, batches, examples, tokens, round(epoch + (i + 1) / len(epoch_batches), 4))
            epoch += 1

    def consumed(self, optimizer_steps: int) -> Consumed:
        """What `optimizer_steps` steps consumed (0 steps: nothing)."""
        if optimizer_steps <= 0:
            return Consumed(0, 0, 0, 0, 0.0)
        for c in self.steps():
            if c.optimizer_steps == optimizer_steps:
                return c
        raise AssertionError("unreachable: steps() never ends")

    def steps_for_tokens(self, target_tokens: int) -> int:
        """The first optimizer step at which `target_tokens` target tokens have been trained."""
        for c in self.steps():
            if c.target_tokens >= target_tokens:
                return c.optimizer_steps
        raise AssertionError("unreachable: steps() never ends")

    def epoch_steps(self) -> int:
        """Optimizer steps of one epoch."""
        nb = len(self._epoch_batches(0))
        return -(-nb // self.accumulate)


def apply_budget(trainer: Any, plan: BudgetPlan, training: Any) -> dict[str, Any]:
    """Set the trainer's length from `training.budget`; the budget as the run card records it."""
    budget = training.get("budget", "epochs")
    if budget == "epochs":
        max_steps = None
    elif budget == "steps":
        max_steps = int(training.max_steps)
    else:
        max_steps = plan.steps_for_tokens(int(training.max_target_tokens))
    if max_steps is not None:
        # Lightning reads both at every step and when it sizes the lr schedule
        # (estimated_stepping_batches): max_epochs=-1 lets the steps decide.
        trainer.fit_loop.epoch_loop.max_steps = max_steps
        trainer.fit_loop.max_epochs = -1
    value = {"epochs": training.get("max_epochs"), "steps": training.get("max_steps"),
             "tokens": training.get("max_target_tokens")}[budget]  # fmt: skip
    return {"kind": budget, "value": value, "optimizer_steps": max_steps, "epoch_steps": plan.epoch_steps()}
