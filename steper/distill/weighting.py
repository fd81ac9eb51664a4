"""How the three step-wise tasks' losses combine into one (docs/method.md §2).

Every weighting takes the unweighted per-task losses L_j (mean token cross-entropy of task j's
examples in the batch, j ∈ first/mid/final) and a mask of the tasks present in the batch, and
returns the scalar to back-propagate:

- `FixedWeighting(λ)`:     L = Σ_j present_j · λ_j · L_j   (Table 2's uniform / first / last)
- `AdaptiveWeighting()`:   L = Σ_j present_j · (0.5·exp(-s_j)·L_j + 0.5·s_j),  s_j = log σ_j²
  (its effective weight 0.5·exp(-s_j) is ½ at the default init s = 0; init = ln ½ makes it 1, and
  `freeze=true` keeps s there: the uniform weighting, for an equivalence check)

The learnable s_j are fp32 whatever the training precision (`_apply` keeps them fp32 under
`.to(bfloat16)`, the math runs with autocast off). A task absent from a batch contributes exactly
zero gradient; since Adam-type optimizers still move a parameter with zero gradient (momentum),
the LightningModule snapshots s before each optimizer step and calls `restore_absent` after it,
so an absent task's s_j stays bit-for-bit where it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from steper.constants import STEP_TASKS
from steper.errors import SteperError

# `TASKS` stays importable for train.py, which reads it from here (steper.constants.STEP_TASKS).
TASKS = STEP_TASKS

PRESETS = {"uniform": (1.0, 1.0, 1.0), "first": (1.5, 1.0, 0.5), "last": (0.5, 1.0, 1.5)}
LAMBDAS_EXPECTED = (
    f"3 finite non-negative numbers for first, mid, final (e.g. weighting.lambdas=[1.5,1.0,0.5]) "
    f"or a preset name ({', '.join(PRESETS)})"
)


def check_lambdas(lambdas: Sequence[float] | str) -> list[float]:
    """`weighting.lambdas` as 3 floats (first, mid, final); a preset name gives its λ."""
    if isinstance(lambdas, str):
        if lambdas not in PRESETS:
            raise SteperError(f"weighting.lambdas: unknown preset {lambdas!r}; expected {LAMBDAS_EXPECTED}")
        return list(PRESETS[lambdas])
    try:
        values = [float(x) for x in lambdas]
        ok = len(values) == len(STEP_TASKS) and all(math.isfinite(x) and x >= 0 for x in values)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        shown = list(lambdas) if isinstance(lambdas, Sequence) else lambdas
        raise SteperError(f"weighting.lambdas must be {LAMBDAS_EXPECTED}, got {shown!r}")
    return values


def _number(key: str, value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SteperError(f"weighting.{key} must be {what}, got {value!r}")
    return float(value)


class TaskWeighting(torch.nn.Module):
    """Base class: combines `task_losses` [3] under the `present` mask [3] into one scalar."""

    lr: float | None = None  # the learning rate of this weighting's own parameters (None: the model's)

    def forward(self, task_losses: Tensor, present: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def effective_weights(self) -> Tensor:  # pragma: no cover - abstract
        """[3] the factor multiplying each L_j."""
        raise NotImplementedError

    def log_tensors(self) -> dict[str, Tensor]:
        """What to log every step, as 0-d tensors (no host sync)."""
        w = self.effective_weights().detach()
        return {f"weight/{t}": w[i] for i, t in enumerate(STEP_TASKS)}

    def log_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.log_tensors().items()}

    # The optimizer-step protocol; a no-op for weightings without parameters.
    def snapshot(self) -> list[Tensor] | None:
        return None

    def restore_absent(self, present: Tensor, snapshot: list[Tensor] | None) -> None:
        return None

    def _apply(self, fn, recurse=True):
        # Keep every floating tensor of a weighting in fp32 (bf16 would round s and λ), while
        # still following device moves: `.to(torch.bfloat16)` / `.half()` leave it fp32.
        def keep_fp32(t: Tensor) -> Tensor:
            out = fn(t)
            if t.is_floating_point() and out.is_floating_point() and out.dtype != torch.float32:
                return t.to(device=out.device, dtype=torch.float32)
            return out

        return super()._apply(keep_fp32, recurse)

    @staticmethod
    def _prepare(task_losses: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        if task_losses.shape != (len(STEP_TASKS),) or present.shape != (len(STEP_TASKS),):
            raise ValueError(
                f"expected task_losses and present of shape [{len(STEP_TASKS)}], got "
                f"{tuple(task_losses.shape)} and {tuple(present.shape)}"
            )
        present = present.to(device=task_losses.device, dtype=torch.bool)
        losses = task_losses.float()
        # An absent task's loss may be 0/0 = NaN upstream: zero it so 0·L stays 0 (and its grads 0).
        losses = torch.where(present, losses, torch.zeros_like(losses))
        return losses, present.float()


class FixedWeighting(TaskWeighting):
    """L = Σ_j present_j · λ_j · L_j with fixed λ = (first, mid, final)."""

    def __init__(self, lambdas: Sequence[float] | str = (1.0, 1.0, 1.0)):
        super().__init__()
        self.register_buffer("lambdas", torch.tensor(check_lambdas(lambdas), dtype=torch.float32))

    def forward(self, task_losses: Tensor, present: Tensor) -> Tensor:
        with torch.autocast(task_losses.device.type, enabled=False):
            losses, mask = self._prepare(task_losses, present)
            return (mask * self.lambdas.to(losses.device) * losses).sum()

    def effective_weights(self) -> Tensor:
        return self.lambdas

    def extra_repr(self) -> str:
        return f"lambdas={tuple(round(x, 4) for x in self.lambdas.tolist())}"


class AdaptiveWeighting(TaskWeighting):
    """Difficulty-aware weighting with learnable s_j = log σ_j² (Kendall, Gal & Cipolla 2018).

    term_j = present_j · (0.5·exp(-s_j)·L_j + 0.5·s_j); s is clamped to [-clamp, clamp] in the
    forward (so a loaded out-of-range value is harmless) and projected back into the range after
    every optimizer step. The total can be negative: never monitor it.
    """

    def __init__(self, init: float = 0.0, clamp: float = 5.0, lr: float | None = None, freeze: bool = False):
        super().__init__()
        clamp = _number("clamp", clamp, "a positive number, the bound of s_j = log σ_j² (default 5.0)")
        if clamp <= 0:
            raise SteperError(
                f"weighting.clamp must be a positive number, got {clamp}: set e.g. weighting.clamp=5.0"
            )
        init = _number("init", init, "a number, the initial s_j = log σ_j² (default 0.0)")
        if not -clamp <= init <= clamp:
            raise SteperError(
                f"weighting.init must lie in [-clamp, clamp] = [{-clamp}, {clamp}], got {init}: "
                "set e.g. weighting.init=0.0"
            )
        if lr is not None and _number("lr", lr, "a positive learning rate or null") <= 0:
            raise SteperError(
                f"weighting.lr must be a positive learning rate or null, got {lr}: set e.g. weighting.lr=1e-3"
            )
        self.clamp = float(clamp)
        self.lr = lr
        self.freeze = bool(freeze)
        # frozen: s_j stays at `init` (no optimizer group), e.g. init = ln ½ gives every task weight 1,
        # the uniform weighting exactly (tests/distill/test_weighting.py)
        self.log_var = torch.nn.Parameter(
            torch.full((len(STEP_TASKS),), float(init), dtype=torch.float32), requires_grad=not self.freeze
        )

    def s(self) -> Tensor:
        return torch.clamp(self.log_var.float(), -self.clamp, self.clamp)

    def forward(self, task_losses: Tensor, present: Tensor) -> Tensor:
        with torch.autocast(task_losses.device.type, enabled=False):
            losses, mask = self._prepare(task_losses, present)
            s = self.s().to(losses.device)
            terms = 0.5 * torch.exp(-s) * losses + 0.5 * s
            return (mask * terms).sum()

    def effective_weights(self) -> Tensor:
        return 0.5 * torch.exp(-self.s())

    def log_tensors(self) -> dict[str, Tensor]:
        out = super().log_tensors()
        s = self.s().detach()
        sigma = torch.exp(0.5 * s)
        for i, t in enumerate(STEP_TASKS):
            out[f"sigma/{t}"] = sigma[i]
            out[f"log_var/{t}"] = s[i]
        return out

    def snapshot(self) -> list[Tensor]:
        return [self.log_var.detach().clone()]

    @torch.no_grad()
    def restore_absent(self, present: Tensor, snapshot: list[Tensor] | None) -> None:
        """After an optimizer step: put back s_j of every task absent since the last step (momentum
        would have moved it) and project s into [-clamp, clamp]."""
        if snapshot is not None:
            absent = ~present.to(device=self.log_var.device, dtype=torch.bool)
            self.log_var.copy_(torch.where(absent, snapshot[0].to(self.log_var.device), self.log_var))
        self.log_var.clamp_(-self.clamp, self.clamp)

    def extra_repr(self) -> str:
        return f"clamp={self.clamp}, lr={self.lr}, freeze={self.freeze}"
