"""Training budgets (steper.distill.budget): what N optimizer steps consume, computed from the
batch plan, equals what the loader serves; budget=steps gives every method the same steps, and
budget=tokens stops at the first step past the target tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from steper.distill.batching import BatchPlan
from steper.distill.budget import BudgetPlan, check_budget
from steper.errors import SteperError
from tests.test_train import make_cfg, run_train, stepwise_dir, tiny_cache  # noqa: F401  (fixtures)


def _plan(n: int = 10, batch_size: int = 3, replicas: int = 1, accumulate: int = 1) -> BudgetPlan:
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 60, n)
    targets = rng.integers(1, 10, n)
    return BudgetPlan(BatchPlan(lengths, batch_size, seed=1, num_replicas=replicas), targets, accumulate)


def _walked(plan: BudgetPlan, steps: int) -> tuple[int, int, int]:
    """(batches, examples, target tokens) of the first `steps` optimizer steps, counted by hand."""
    n = len(plan.targets)
    done = batches = examples = tokens = 0
    epoch = 0
    while done < steps:
        epoch_batches = plan.plan.batches(epoch)
        for i, b in enumerate(epoch_batches):
            real = b[b < n]
            batches, examples, tokens = batches + 1, examples + len(real), tokens + int(plan.targets[real].sum())
            if (i + 1) % plan.accumulate == 0 or i == len(epoch_batches) - 1:
                done += 1
                if done == steps:
                    return batches, examples, tokens
        epoch += 1
    return batches, examples, tokens


@pytest.mark.parametrize(("replicas", "accumulate"), [(1, 1), (2, 1), (1, 3)])
def test_consumed_counts_real_examples_and_target_tokens(replicas, accumulate):
    plan = _plan(replicas=replicas, accumulate=accumulate)
    for steps in (1, 3, 4, 9):
        c = plan.consumed(steps)
        assert c.optimizer_steps == steps
        assert (c.batches, c.examples_seen, c.target_tokens) == _walked(plan, steps)
    # one epoch: every example once, the padding copies of an uneven DDP share not counted
    epoch = plan.consumed(plan.epoch_steps())
    assert epoch.examples_seen == 10 and epoch.target_tokens == int(plan.targets.sum()) and epoch.epochs == 1.0
    assert plan.consumed(0).examples_seen == 0


def test_token_budget_is_the_first_step_past_it():
    plan = _plan()
    for budget in (1, 50, 137, 400):
        steps = plan.steps_for_tokens(budget)
        assert plan.consumed(steps).target_tokens >= budget
        assert steps == 1 or plan.consumed(steps - 1).target_tokens < budget


def test_plan_equals_what_the_loader_serves(make_cfg):  # noqa: F811
    """The plan's batches are the training loader's batches, epoch after epoch."""
    from steper.instantiate import build
    from steper.tasks.train_setup import load_model

    cfg = make_cfg()
    dm = build(cfg.stepwise)
    _, tokenizer = load_model(cfg, dm.data_dir)
    dm.set_tokenizer(tokenizer)
    dm.setup("fit")
    plan = BudgetPlan.from_datamodule(dm, world_size=1)
    served = {"examples": 0, "tokens": 0}
    loader = dm.train_dataloader()
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            real = batch["task_ids"] >= 0
            served["examples"] += int(real.sum())
            served["tokens"] += int(batch["n_target_tokens"][real].sum())
    c = plan.consumed(3 * plan.epoch_steps())
    assert (c.examples_seen, c.target_tokens) == (served["examples"], served["tokens"])


def test_matched_steps_give_every_method_the_same_updates(make_cfg):  # noqa: F811
    """One epoch is 6 Vanilla-KD examples (2 steps at batch 4) but 18 StepER examples (5 steps):
    budget=steps trains both for 7, and the card says what each saw."""
    cards = {}
    for method in ("vanilla", "steper"):
        cfg = make_cfg(f"method={method}", "weighting=uniform", "training.budget=steps", "training.max_steps=7",
                       "logger=csv", name=method)  # fmt: skip
        metrics = run_train(cfg)
        assert metrics["global_step"] == 7 and metrics["optimizer_steps"] == 7
        cards[method] = json.loads((Path(cfg.paths.output_dir) / "run.json").read_text())
    for method, card in cards.items():
        assert card["metrics"]["optimizer_steps"] == 7
        assert card["data"]["budget"] == {"kind": "steps", "value": 7, "optimizer_steps": 7,
                                          "epoch_steps": {"vanilla": 2, "steper": 5}[method]}  # fmt: skip
    # same steps, different data: vanilla passes over its 6 examples several times
    assert cards["vanilla"]["metrics"]["examples_seen"] == 6 * 3 + 4  # 3 epochs of 2 steps, then 4 + 0
    assert cards["steper"]["metrics"]["examples_seen"] > cards["vanilla"]["metrics"]["examples_seen"]


def test_token_budget_through_training(make_cfg):  # noqa: F811
    cfg = make_cfg("training.budget=tokens", "training.max_target_tokens=300", "logger=csv")
    metrics = run_train(cfg)
    assert metrics["target_tokens"] >= 300 and metrics["optimizer_steps"] == metrics["global_step"] >= 1


@pytest.mark.parametrize(
    ("training", "trainer", "match"),
    [
        ({"budget": "updates"}, {}, r"training\.budget='updates' is not a budget: use one of epochs, steps, tokens"),
        ({"budget": "steps", "max_steps": None}, {}, r"training\.budget=steps needs training\.max_steps"),
        ({"budget": "tokens", "max_target_tokens": 0}, {}, r"training\.max_target_tokens=20000"),
        ({"budget": "steps", "max_steps": 5}, {"max_steps": 3}, r"drop trainer\.max_steps"),
        ({"budget": "epochs", "max_epochs": 0}, {}, r"training\.max_epochs must be an integer of at least 1"),
    ],
)
def test_bad_budget_is_one_clear_error(training, trainer, match):
    with pytest.raises(SteperError, match=match):
        check_budget(training, {"max_steps": -1, **trainer})
    check_budget({"budget": "epochs", "max_epochs": 1}, {"max_steps": 3})  # with trainer.max_steps: as before
    check_budget({"budget": "epochs", "max_epochs": -1}, {"max_steps": 3})  # no epoch limit, steps decide
