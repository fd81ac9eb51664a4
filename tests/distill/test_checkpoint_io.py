"""Checkpoints are atomic: a write that fails (a full disk) leaves nothing under the final name and
the earlier checkpoint intact; a truncated checkpoint given to resume is named as such."""

from __future__ import annotations

import errno

import pytest
import torch
from omegaconf import OmegaConf

from steper.distill.checkpoint_io import AtomicCheckpointIO
from steper.errors import SteperError
from steper.tasks.train_checks import resolve_ckpt_path


def test_a_full_disk_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    before = target.read_bytes()

    def full_disk(obj, f):
        f.write(b"PK\x03\x04 partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(SteperError, match=r"cannot write the checkpoint .*last\.ckpt: no space left"):
        io.save_checkpoint({"step": 2}, target)
    assert target.read_bytes() == before  # the step-1 checkpoint, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind
    assert torch.load(target, weights_only=False)["step"] == 1


@pytest.mark.parametrize("how", ["truncated", "not_zip"])
def test_resuming_from_a_damaged_last_ckpt_is_one_clear_error(tmp_path, how):
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1000)}, ckpt_dir / "last.ckpt")
    data = (ckpt_dir / "last.ckpt").read_bytes()
    (ckpt_dir / "last.ckpt").write_bytes(data[: len(data) // 2] if how == "truncated" else b"garbage")
    cfg = OmegaConf.create({"ckpt_path": "last", "ckpt_dir": str(ckpt_dir)})
    with pytest.raises(SteperError, match=r"ckpt_path=last: .*last\.ckpt is not a checkpoint written by train\.py"):
        resolve_ckpt_path(cfg)
