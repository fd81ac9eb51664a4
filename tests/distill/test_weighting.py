"""Task weightings (docs/method.md §2): the formulas, absent tasks, the fp32 σ under bf16."""

from __future__ import annotations

import math

import pytest
import torch

from steper.constants import STEP_TASKS
from steper.distill.weighting import PRESETS, AdaptiveWeighting, FixedWeighting
from steper.errors import SteperError

pytestmark = pytest.mark.usefixtures("one_thread")

LOSSES = torch.tensor([2.0, 3.0, 0.5])


@pytest.mark.parametrize("name", ["uniform", "first", "last"])
def test_fixed_weighting_equals_formula(name):
    lam = PRESETS[name]
    w = FixedWeighting(name)  # a preset name gives its λ
    for present in ([True, True, True], [True, False, True], [False, False, True], [False, False, False]):
        got = w(LOSSES, torch.tensor(present))
        want = sum(lam[j] * float(LOSSES[j]) for j in range(3) if present[j])
        assert got.item() == pytest.approx(want, abs=1e-6)
    assert w.log_dict() == {f"weight/{t}": pytest.approx(lam[j]) for j, t in enumerate(STEP_TASKS)}
    assert PRESETS == {"uniform": (1, 1, 1), "first": (1.5, 1, 0.5), "last": (0.5, 1, 1.5)}


def test_fixed_weighting_validates_and_ignores_nan_of_absent_tasks():
    with pytest.raises(SteperError, match="weighting.lambdas must be 3 finite non-negative numbers"):
        FixedWeighting((1.0, 2.0))
    w = FixedWeighting((1.0, 1.0, 1.0))
    # An absent task's loss may be 0/0 upstream: it must not poison the total.
    assert w(torch.tensor([1.0, float("nan"), 2.0]), torch.tensor([True, False, True])).item() == 3.0


def test_adaptive_weighting_equals_formula_with_absent_tasks():
    w = AdaptiveWeighting(init=0.0, clamp=5.0)
    s = [0.3, -1.2, 2.0]
    with torch.no_grad():
        w.log_var.copy_(torch.tensor(s))
    present = [True, False, True]
    got = w(LOSSES, torch.tensor(present))
    want = sum(0.5 * math.exp(-s[j]) * float(LOSSES[j]) + 0.5 * s[j] for j in range(3) if present[j])
    assert got.item() == pytest.approx(want, rel=1e-6)
    got.backward()
    grad = w.log_var.grad
    for j in range(3):
        expected = (-0.5 * math.exp(-s[j]) * float(LOSSES[j]) + 0.5) if present[j] else 0.0
        assert grad[j].item() == pytest.approx(expected, rel=1e-6, abs=0)
    assert grad[1].item() == 0.0  # exactly zero, not just small
    logs = w.log_dict()
    assert logs["weight/first"] == pytest.approx(0.5 * math.exp(-0.3), rel=1e-6)
    assert logs["sigma/mid"] == pytest.approx(math.exp(0.5 * -1.2), rel=1e-6)
    # The total can be negative (never monitor it).
    with torch.no_grad():
        w.log_var.fill_(-5.0)
    assert w(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([True, True, True])).item() < 0


def test_adaptive_clamp_in_forward_and_after_step():
    w = AdaptiveWeighting(clamp=2.0)
    with torch.no_grad():
        w.log_var.copy_(torch.tensor([3.0, -7.0, 1.0]))
    assert w.effective_weights().tolist() == pytest.approx(
        [0.5 * math.exp(-2.0), 0.5 * math.exp(2.0), 0.5 * math.exp(-1.0)]
    )
    w.restore_absent(torch.tensor([True, True, True]), None)
    assert w.log_var.tolist() == [2.0, -2.0, 1.0]
    with pytest.raises(
        SteperError, match=r"weighting.init must lie in \[-clamp, clamp\] = \[-2.0, 2.0\], got 3.0"
    ):
        AdaptiveWeighting(init=3.0, clamp=2.0)


def _adamw_run(restore: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
    """8 AdamW steps; 'mid' present in steps 0-2 (builds momentum), absent in steps 3-7."""
    torch.manual_seed(0)
    w = AdaptiveWeighting(lr=0.05)
    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))  # stands in for the model
    opt = torch.optim.AdamW(
        [{"params": [theta], "weight_decay": 0.01}, {"params": [w.log_var], "weight_decay": 0.0, "lr": 0.05}],
        lr=0.01,
    )
    history = []
    for step in range(8):
        present = torch.tensor([True, step < 3, True])
        losses = theta**2 * torch.tensor([1.0, 2.0, 0.5])
        opt.zero_grad()
        w(torch.where(present, losses, torch.zeros_like(losses)), present).backward()
        if not present[1]:
            assert w.log_var.grad[1].item() == 0.0
        snap = w.snapshot()
        opt.step()
        if restore:
            w.restore_absent(present, snap)
        history.append(w.log_var.detach().clone())
    return history, theta.detach()


def test_absent_task_sigma_does_not_move_under_adamw_momentum():
    history, _ = _adamw_run(restore=True)
    assert history[2][1].item() != 0.0  # mid moved while present
    for h in history[3:]:
        assert h[1].item() == history[2][1].item()  # bit-for-bit frozen while absent
    assert history[-1][0].item() != history[2][0].item() and history[-1][2].item() != history[2][2].item()
    # Without the restore, Adam's momentum drifts the absent task's s (what the restore prevents).
    drifting, _ = _adamw_run(restore=False)
    assert drifting[-1][1].item() != drifting[2][1].item()


def test_sigma_stays_fp32_under_bf16():
    w = AdaptiveWeighting()
    w.to(torch.bfloat16)
    assert w.log_var.dtype == torch.float32
    f = FixedWeighting((0.5, 1.0, 1.5)).to(torch.bfloat16)
    assert f.lambdas.dtype == torch.float32
    losses = torch.tensor([2.0, 3.0, 0.5], dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = w(losses, torch.tensor([True, True, False]))
        assert total.dtype == torch.float32
        assert f(losses, torch.tensor([True, True, True])).dtype == torch.float32
    total.backward()
    assert w.log_var.grad.dtype == torch.float32


@pytest.mark.parametrize(
    "lambdas, got",
    [
        (["a", 1, 1], "['a', 1, 1]"),
        ([1.0, 1.0], "[1.0, 1.0]"),
        ([1.0, -1.0, 1.0], "[1.0, -1.0, 1.0]"),
        ([1.0, float("inf"), 1.0], "[1.0, inf, 1.0]"),
        (5, "5"),
    ],
)
def test_bad_lambdas_name_the_key_the_value_and_what_is_expected(lambdas, got):
    with pytest.raises(SteperError) as e:
        FixedWeighting(lambdas)
    assert str(e.value) == (
        "weighting.lambdas must be 3 finite non-negative numbers for first, mid, final "
        f"(e.g. weighting.lambdas=[1.5,1.0,0.5]) or a preset name (uniform, first, last), got {got}"
    )
    with pytest.raises(SteperError, match=r"weighting.lambdas: unknown preset 'middle'; expected 3 finite"):
        FixedWeighting("middle")


def test_lambdas_from_a_hydra_list_and_bad_adaptive_settings():
    from omegaconf import OmegaConf

    assert FixedWeighting(OmegaConf.create([0.5, 1, 1.5])).lambdas.tolist() == [0.5, 1.0, 1.5]
    with pytest.raises(SteperError, match=r"got \['a', 1, 1\]"):
        FixedWeighting(OmegaConf.create(["a", 1, 1]))
    with pytest.raises(
        SteperError, match="weighting.clamp must be a positive number, got -1.0: set e.g. weighting.clamp=5.0"
    ):
        AdaptiveWeighting(clamp=-1)
    with pytest.raises(
        SteperError, match="weighting.clamp must be a positive number, the bound of .*, got 'big'"
    ):
        AdaptiveWeighting(clamp="big")
    with pytest.raises(SteperError, match="weighting.lr must be a positive learning rate or null, got 0"):
        AdaptiveWeighting(lr=0)
    assert AdaptiveWeighting(lr=1e-3).lr == 1e-3
