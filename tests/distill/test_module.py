"""The step-wise distillation LightningModule and the student loader, on a tiny model (CPU)."""

from __future__ import annotations

from functools import partial

import lightning.pytorch as L
import pytest
import torch

from steper.distill.datamodule import StepwiseDataModule
from steper.distill.models import load_student
from steper.distill.module import StepwiseDistillationModule, cosine_with_warmup, group_by_task
from steper.distill.synthetic import synthetic_stepwise_rows
from steper.distill.weighting import AdaptiveWeighting, FixedWeighting
from steper.errors import SteperError
from steper.io import write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"vocab_size": 384, "hidden_size": 64, "num_layers": 2, "intermediate_size": 128}


def stepwise_rows(n: int, seed: int, tasks=("first", "mid", "final")) -> list[dict]:
    return synthetic_stepwise_rows(n, seed, filler=(0, 0), tasks=tasks)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("stepwise")
    write_jsonl(d / "train.jsonl", stepwise_rows(48, 0))
    write_jsonl(d / "validation.jsonl", stepwise_rows(12, 1))
    return d


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-cache")


def setup(data_dir, tiny_cache, peft=None, **dm_kw):
    dm = StepwiseDataModule(str(data_dir), **{"batch_size": 8, **dm_kw})
    model, tok = load_student(
        "tiny", tiny=TINY, texts_fn=dm.texts, cache_dir=tiny_cache, peft=peft, dtype="float32"
    )
    dm.set_tokenizer(tok)
    dm.setup("fit")
    return dm, model, tok


def trainer(**kw) -> L.Trainer:
    base = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**base, **kw})


def test_loss_matches_full_logit_cross_entropy(data_dir, tiny_cache):
    dm, model, _ = setup(data_dir, tiny_cache)
    module = StepwiseDistillationModule(
        model, FixedWeighting((1.5, 1.0, 0.5)), partial(torch.optim.AdamW, lr=1e-3)
    )
    batch = next(iter(dm.train_dataloader()))
    out = module.compute_loss(batch)
    assert module.target_logits_only  # the one-time check accepted the target-only logits
    # By hand: full logits, shifted CE per token, mean per example, mean per task, λ-weighted sum.
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    tok = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), labels, reduction="none", ignore_index=-100
    )
    per_ex = tok.sum(1) / (labels != -100).sum(1)
    want = []
    for j in range(3):
        sel = batch["task_ids"] == j
        want.append(per_ex[sel].mean() if sel.any() else torch.tensor(0.0))
    want = torch.stack(want)
    torch.testing.assert_close(out["task_losses"], want, rtol=1e-5, atol=1e-5)
    present = torch.tensor([bool((batch["task_ids"] == j).any()) for j in range(3)])
    assert out["present"].tolist() == present.tolist()
    lam = torch.tensor([1.5, 1.0, 0.5])
    torch.testing.assert_close(out["total"], (lam * want * present).sum(), rtol=1e-5, atol=1e-5)
    # Padding copies (task id -1) are left out of every task.
    _, counts, _ = group_by_task(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, -1, 0]))
    assert counts.tolist() == [2.0, 0.0, 0.0]


def test_fast_dev_run_trains(data_dir, tiny_cache):
    dm, model, tok = setup(data_dir, tiny_cache)
    module = StepwiseDistillationModule(
        model, AdaptiveWeighting(lr=0.01), partial(torch.optim.AdamW, lr=1e-3)
    )
    module.tokenizer = tok
    before = [p.detach().clone() for p in model.parameters()]
    trainer(fast_dev_run=True).fit(module, datamodule=dm)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert module.weighting.log_var.detach().abs().sum() > 0
    metrics = trainer().validate(module, datamodule=dm, verbose=False)[0]
    assert {"val/loss_first", "val/loss_mid", "val/loss_final", "val/loss_mean"} <= set(metrics)
    want = (metrics["val/loss_first"] + metrics["val/loss_mid"] + metrics["val/loss_final"]) / 3
    assert metrics["val/loss_mean"] == pytest.approx(want)


def test_short_run_lowers_every_task_loss(data_dir, tiny_cache):
    L.seed_everything(0, verbose=False)
    dm, model, tok = setup(data_dir, tiny_cache)
    module = StepwiseDistillationModule(
        model, FixedWeighting(), partial(torch.optim.AdamW, lr=3e-3), warmup_ratio=0.1, weight_decay=0.01
    )
    evaluated = []
    module.answer_evaluator = lambda m, t: evaluated.append(1) or {"acc": 0.25, "val/em": 0.5}
    start = trainer().validate(module, datamodule=dm, verbose=False)[0]
    t = trainer(max_steps=60, val_check_interval=30, check_val_every_n_epoch=None, log_every_n_steps=1)
    t.fit(module, datamodule=dm)
    end = trainer().validate(module, datamodule=dm, verbose=False)[0]
    for task in ("first", "mid", "final"):
        print(f"val/loss_{task}: {start[f'val/loss_{task}']:.3f} -> {end[f'val/loss_{task}']:.3f}")
        assert end[f"val/loss_{task}"] <= 0.7 * start[f"val/loss_{task}"]
    assert end["val/acc"] == 0.25 and end["val/em"] == 0.5 and len(evaluated) >= 3
    logged = t.logged_metrics
    for key in (
        "train/loss",
        "train/loss_first",
        "weight/mid",
        "train/lr",
        "train/tokens_per_s",
        "val/loss_mean",
    ):
        assert key in logged, key
    assert logged["train/tokens_per_s"] > logged["train/target_tokens_per_s"] > 0
    assert logged["train/lr"] < 3e-3 * 0.05  # cosine decayed to ~0 at the last step


def test_adaptive_sigma_moves_and_absent_task_sigma_does_not(tmp_path, tiny_cache):
    # Through Lightning: no mid example at all → s_mid exactly at its init after training.
    write_jsonl(tmp_path / "train.jsonl", stepwise_rows(16, 0, tasks=("first", "final")))
    write_jsonl(tmp_path / "validation.jsonl", stepwise_rows(4, 1, tasks=("first", "final")))
    dm, model, _ = setup(tmp_path, tiny_cache)
    w = AdaptiveWeighting(init=0.0, lr=0.05)
    module = StepwiseDistillationModule(model, w, partial(torch.optim.AdamW, lr=1e-3), scheduler=False)
    trainer(max_steps=6, limit_val_batches=0).fit(module, datamodule=dm)
    s = w.log_var.detach()
    assert s[1].item() == 0.0 and s[0].item() != 0.0 and s[2].item() != 0.0
    assert module.optimizers().param_groups[-1]["lr"] == 0.05

    # Through the module's optimizer_step: mid present in the first 3 steps (momentum), then absent.
    dm, model, _ = setup(tmp_path.parent / "full", tiny_cache) if False else (dm, model, None)
    w2 = AdaptiveWeighting(lr=0.05)
    module = StepwiseDistillationModule(model, w2, partial(torch.optim.AdamW, lr=1e-3))
    opt = module.optimizer_factory(module.parameter_groups())
    batches = list(dm.train_dataloader())
    history = []
    for step in range(7):
        batch = dict(batches[step % len(batches)])
        batch["task_ids"] = batch["task_ids"].clone()
        if step < 3:
            batch["task_ids"][0] = 1  # one example counted as mid
        opt.zero_grad()

        def closure(batch=batch):
            loss = module.training_step(batch, 0)
            loss.backward()
            return loss

        module.optimizer_step(0, step, opt, closure)
        history.append(w2.log_var.detach().clone())
    assert history[2][1].item() != 0.0
    assert all(h[1].item() == history[2][1].item() for h in history[3:])
    assert history[-1][0].item() != history[2][0].item()


def test_bf16_autocast_keeps_weighting_fp32(data_dir, tiny_cache):
    dm, model, _ = setup(data_dir, tiny_cache)
    module = StepwiseDistillationModule(model, AdaptiveWeighting(), partial(torch.optim.AdamW, lr=1e-3))
    batch = next(iter(dm.train_dataloader()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.compute_loss(batch)
    assert out["total"].dtype == torch.float32 and out["task_losses"].dtype == torch.float32
    assert module.weighting.log_var.dtype == torch.float32
    out["total"].backward()
    assert module.weighting.log_var.grad.dtype == torch.float32


def test_lora_trains_adapters_only(data_dir, tiny_cache):
    peft = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    dm, model, _ = setup(data_dir, tiny_cache, peft=peft)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    assert base and all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    module = StepwiseDistillationModule(
        model, FixedWeighting(), partial(torch.optim.AdamW, lr=1e-2), scheduler=False
    )
    opt = module.optimizer_factory(module.parameter_groups())
    batch = next(iter(dm.train_dataloader()))
    for _ in range(2):  # lora_B starts at 0: the second step gives lora_A a gradient too
        opt.zero_grad()
        module.compute_loss(batch)["total"].backward()
        lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
        opt.step()
    assert module.target_logits_only  # LoRA layers sit inside the base model: the fast path holds
    assert lora and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora.values())
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)


def test_gradient_checkpointing_with_lora(data_dir, tiny_cache):
    dm = StepwiseDataModule(str(data_dir), batch_size=4)
    model, tok = load_student(
        "tiny", tiny=TINY, texts_fn=dm.texts, cache_dir=tiny_cache, gradient_checkpointing=True, peft={"r": 2}
    )
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    dm.set_tokenizer(tok)
    dm.setup("fit")
    module = StepwiseDistillationModule(model.train(), FixedWeighting(), partial(torch.optim.AdamW, lr=1e-3))
    module.compute_loss(next(iter(dm.train_dataloader())))["total"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_optimizer_groups_and_schedule(data_dir, tiny_cache):
    dm, model, _ = setup(data_dir, tiny_cache)
    module = StepwiseDistillationModule(
        model, AdaptiveWeighting(), partial(torch.optim.AdamW, lr=1e-3), weight_decay=0.1, weighting_lr=0.02
    )
    groups = {g["name"]: g for g in module.parameter_groups()}
    assert groups["model"]["weight_decay"] == 0.1 and groups["model_no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in groups["model"]["params"]) and all(
        p.ndim < 2 for p in groups["model_no_decay"]["params"]
    )
    assert groups["weighting"] == {
        "params": [module.weighting.log_var],
        "weight_decay": 0.0,
        "name": "weighting",
        "lr": 0.02,
    }
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_with_warmup(opt, num_training_steps=100, warmup_ratio=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert (
        lrs[0] == pytest.approx(1 / 11) and lrs[9] == pytest.approx(10 / 11) and lrs[10] == pytest.approx(1.0)
    )
    assert lrs[55] == pytest.approx(0.5, abs=0.01) and lrs[-1] < 0.001
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_load_student_errors(tmp_path):
    with pytest.raises(SteperError, match="does-not-exist"):
        load_student(str(tmp_path / "does-not-exist"))
    with pytest.raises(SteperError, match="no config.json"):
        load_student(str(tmp_path))
    with pytest.raises(SteperError, match="texts"):
        load_student("tiny")
    with pytest.raises(SteperError, match="HF_HUB_OFFLINE"):
        load_student("nobody-xyz/not-a-model")


class _RecordBatches(L.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.current_epoch, tuple(batch["input_ids"][:, :8].sum(1).tolist())))


@pytest.mark.parametrize("scheduler", [None, False], ids=["cosine", "no-schedule"])
def test_mid_epoch_resume_continues_with_the_next_unseen_batch(tmp_path, tiny_cache, scheduler):
    # With a schedule Lightning builds the train loader before restoring the checkpoint (to count
    # the steps), without one after: the position must reach the loader either way.
    write_jsonl(tmp_path / "train.jsonl", stepwise_rows(8, 0))  # 24 examples: 6 batches of 4
    write_jsonl(tmp_path / "validation.jsonl", stepwise_rows(2, 1))
    kw = dict(limit_val_batches=0, max_epochs=2)

    def run(ckpt_path=None, **extra):
        dm, model, _ = setup(tmp_path, tiny_cache, batch_size=4)
        module = StepwiseDistillationModule(
            model, AdaptiveWeighting(lr=0.01), partial(torch.optim.AdamW, lr=1e-3), scheduler=scheduler
        )
        rec = _RecordBatches()
        callbacks = [rec, *extra.pop("callbacks", [])]
        trainer(**{**kw, **extra}, callbacks=callbacks).fit(module, datamodule=dm, ckpt_path=ckpt_path)
        return rec.seen

    whole = run()
    assert len(whole) == 12 and whole[:6] != whole[6:]  # a new order in epoch 2
    ckpt = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    first = run(max_steps=4, callbacks=[ckpt], enable_checkpointing=True)
    rest = run(ckpt_path=str(tmp_path / "ckpt" / "epoch=0-step=4.ckpt"))
    assert first + rest == whole


def test_sanity_check_losses_are_logged_at_step_zero(data_dir, tiny_cache, tmp_path):
    """With a full sanity check, the per-task validation losses before any update are logged at
    step 0, so a run's history shows where each task started."""
    import csv

    from lightning.pytorch.loggers import CSVLogger

    dm, model, _ = setup(data_dir, tiny_cache)
    module = StepwiseDistillationModule(model, FixedWeighting(), partial(torch.optim.AdamW, lr=1e-3))
    before = trainer().validate(module, datamodule=dm, verbose=False)[0]
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer(max_steps=2, num_sanity_val_steps=-1, logger=logger).fit(module, datamodule=dm)
    rows = list(csv.DictReader(open(tmp_path / "csv" / "metrics.csv")))
    start = [r for r in rows if r["step"] == "0" and r.get("val/loss_first")]
    assert len(start) == 1
    for key in ("val/loss_first", "val/loss_mid", "val/loss_final", "val/loss_mean"):
        assert float(start[0][key]) == pytest.approx(before[key], rel=1e-5)
