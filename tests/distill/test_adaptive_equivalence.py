"""weighting=adaptive with s frozen at ln ½ (effective weight 0.5·exp(-s) = 1 for every task) is
the uniform weighting: the loss differs by the constant Σ ½·s_j, so training moves the student's
weights the same way, step for step (fp32 rounding of exp(ln 2) aside)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tests.test_train import make_cfg, run_train, stepwise_dir, tiny_cache  # noqa: F401  (fixtures)

LN_HALF = math.log(0.5)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("model.")}


def test_frozen_adaptive_at_ln_half_trains_what_uniform_trains(make_cfg):  # noqa: F811
    common = ["training.budget=steps", "training.max_steps=6", "logger=csv", "training.lr=1e-2", "export=false"]
    runs = {
        "uniform": make_cfg(*common, "weighting=uniform", name="uniform"),
        "frozen": make_cfg(*common, "weighting=adaptive", f"weighting.init={LN_HALF}", "weighting.freeze=true",
                           name="frozen"),  # fmt: skip
        "adaptive": make_cfg(*common, "weighting=adaptive", f"weighting.init={LN_HALF}", "weighting.lr=0.1",
                             name="adaptive"),  # fmt: skip
    }
    metrics = {name: run_train(cfg) for name, cfg in runs.items()}
    weights = {name: _weights(Path(cfg.paths.output_dir)) for name, cfg in runs.items()}
    start = _weights_at_start(runs["uniform"])
    moved = max((weights["uniform"][k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-3  # training did move the weights
    for k, w in weights["uniform"].items():
        torch.testing.assert_close(weights["frozen"][k], w, rtol=1e-5, atol=1e-6)
    frozen = metrics["frozen"]["weights"]
    assert [frozen[f"weight/{t}"] for t in ("first", "mid", "final")] == [1.0, 1.0, 1.0]
    assert frozen["log_var/first"] == frozen["log_var/final"] == float(torch.tensor(LN_HALF))  # not trained
    # the same start with s learning is not the same training: the check can tell them apart
    diff = max((weights["adaptive"][k] - weights["uniform"][k]).abs().max().item() for k in start)
    assert diff > 1e-5


def _weights_at_start(cfg) -> dict[str, torch.Tensor]:
    """The student's weights before training (the tiny model as built, from the shared cache)."""
    from steper.instantiate import build
    from steper.tasks.train_setup import load_model

    model, _ = load_model(cfg, Path(str(build(cfg.stepwise).data_dir)))
    return {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}


def test_half_weight_is_the_same_training_under_adamw_without_clipping(make_cfg):  # noqa: F811
    """The default start s = 0 weighs every task ½, not 1. AdamW divides a loss factor out of its
    update (m / √v), so without gradient clipping the ½ changes nothing but eps's share: a constant
    factor on the loss is not a smaller learning rate. With clipping, steps whose gradient norm is
    above the threshold are clipped for uniform and may not be for ½ — the one place it can act."""
    common = ["training.budget=steps", "training.max_steps=6", "logger=csv", "training.lr=1e-2", "export=false",
              "trainer.gradient_clip_val=null"]  # fmt: skip
    uniform = make_cfg(*common, "weighting=uniform", name="uniform")
    half = make_cfg(*common, "weighting=adaptive", "weighting.init=0.0", "weighting.freeze=true", name="half")
    run_train(uniform)
    run_train(half)
    a, b = _weights(Path(uniform.paths.output_dir)), _weights(Path(half.paths.output_dir))
    start = _weights_at_start(uniform)
    du = torch.cat([(a[k] - start[k]).flatten() for k in start])
    dh = torch.cat([(b[k] - start[k]).flatten() for k in start])
    # the updates agree to a small fraction of their size; what differs is eps's share, largest
    # where gradients are tiny (rare tokens' embedding rows)
    rel = float((dh - du).norm() / du.norm())
    assert rel < 0.01, rel  # measured 1.2e-3 on this tiny model
