"""Tokenized examples → length-grouped, mixed-task batches, and a loader that resumes mid-epoch.

Batches mix all tasks, each example carrying its task id (0 first, 1 mid, 2 final; vanilla rows
count as final). Training batches are length-grouped: shuffled megabatches of
`megabatch × batch_size × world_size` examples are sorted by length and cut into batches whose
order is shuffled again (seeded, deterministic per epoch, the longest batch first so an
out-of-memory shows at step 1). Under DDP every rank gets a disjoint, equally long share; the few
copies that even out the shares carry task id -1 and are left out of every loss. The training
loader is resumable: a run resumed from a mid-epoch checkpoint continues with the next unseen batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from steper.constants import STEP_TASKS

IGNORE_INDEX = -100
PADDING_TASK = -1  # task id of the copies that even out DDP shares: no loss


class TokenizedSplit(Dataset):
    """Tokenized examples of one split: item i = (token ids, number of input tokens, task id).

    Indices ≥ len(self) are padding copies of example i - len(self) (task id -1, no loss).
    """

    def __init__(self, ids: list[np.ndarray], n_input: Sequence[int], tasks: Sequence[int]):
        self.ids = ids
        self.n_input = np.asarray(n_input, dtype=np.int64)
        self.tasks = np.asarray(tasks, dtype=np.int64)
        self.lengths = np.asarray([len(x) for x in ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        n = len(self.ids)
        if i >= n:
            i -= n
            return self.ids[i], int(self.n_input[i]), PADDING_TASK
        return self.ids[i], int(self.n_input[i]), int(self.tasks[i])


class StepwiseCollator:
    """Right-pads a list of examples into `input_ids`, `attention_mask`, `labels` (-100 outside the
    targets), `task_ids`, `n_target_tokens` [B], and `stats` (plain ints, no device sync needed:
    `task_counts` per task, `tokens` non-pad, `target_tokens`, `padded` = B·T)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, items: list[tuple[np.ndarray, int, int]]) -> dict:
        lengths = [len(ids) for ids, _, _ in items]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        b = len(items)
        input_ids = torch.full((b, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((b, width), dtype=torch.long)
        labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
        task_ids = torch.empty(b, dtype=torch.long)
        n_target = torch.empty(b, dtype=torch.long)
        counts = [0] * len(STEP_TASKS)
        for row, (ids, n_in, task) in enumerate(items):
            t = torch.from_numpy(np.asarray(ids, dtype=np.int64))
            n = len(t)
            input_ids[row, :n] = t
            attention_mask[row, :n] = 1
            labels[row, n_in:n] = t[n_in:]
            task_ids[row] = task
            n_target[row] = n - n_in
            if task >= 0:
                counts[task] += 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "task_ids": task_ids,
            "n_target_tokens": n_target,
            "stats": {
                "task_counts": counts,
                "tokens": int(sum(lengths)),
                "target_tokens": int(n_target.sum()),
                "padded": b * width,
            },
        }


@dataclass(frozen=True)
class BatchPlan:
    """How one epoch's examples become the batches of all ranks together: each `batch_size ×
    num_replicas` examples (the last may be smaller), indices ≥ n marking the padding copies that
    even out the ranks' shares. Shuffled (seeded by (seed, epoch)) and length-grouped in megabatches
    for training; in length order for evaluation."""

    lengths: np.ndarray
    batch_size: int
    shuffle: bool = True
    length_grouped: bool = True
    megabatch: int = 50
    seed: int = 0
    num_replicas: int = 1

    @property
    def total_size(self) -> int:
        n = len(self.lengths)
        return n + (-n) % self.num_replicas

    def _grouped(self, order: np.ndarray, group: int) -> np.ndarray:
        """`order` sorted by length (longest first) within each megabatch (the whole epoch unshuffled)."""
        lengths = self.lengths[order % len(self.lengths)] if len(self.lengths) else self.lengths
        chunk = self.megabatch * group if self.shuffle else len(order)
        pieces = []
        for i in range(0, len(order), max(chunk, 1)):
            part = slice(i, i + chunk)
            pieces.append(order[part][np.argsort(-lengths[part], kind="stable")])
        return np.concatenate(pieces) if pieces else order

    def batches(self, epoch: int) -> list[np.ndarray]:
        n, g = len(self.lengths), self.batch_size * self.num_replicas
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.total_size > n:
            order = np.concatenate([order, np.resize(order, self.total_size - n) + n])
        if self.length_grouped:
            order = self._grouped(order, g)
        batches = [order[i : i + g] for i in range(0, len(order), g)]
        if self.shuffle and batches:
            tail = [batches.pop()] if len(batches[-1]) < g else []
            batches = [batches[i] for i in rng.permutation(len(batches))] + tail
            if self.length_grouped and batches:
                longest = max(range(len(batches)), key=lambda i: int(self.lengths[batches[i] % n].max()))
                batches[0], batches[longest] = batches[longest], batches[0]
        return batches


class StepwiseSampler(DistributedSampler):
    """Yields this rank's example indices so that consecutive `batch_size` chunks are its batches.

    A `DistributedSampler` subclass (its own rank logic, no process group needed) so Lightning
    neither replaces it under DDP nor forgets to call `set_epoch`. Every rank gets the same number
    of examples; ranks' batches at one step come from one length-sorted global batch (`BatchPlan`).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        length_grouped: bool = True,
        megabatch: int = 50,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        # DistributedSampler.__init__ is skipped on purpose: it requires an initialised process group.
        if batch_size < 1 or megabatch < 1:
            raise ValueError("batch_size and megabatch must be >= 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        lengths = np.asarray(lengths, dtype=np.int64)
        self.plan = BatchPlan(lengths, batch_size, shuffle, length_grouped, megabatch, seed, num_replicas)
        # the attributes a DistributedSampler has
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0
        self.shuffle, self.seed, self.drop_last = shuffle, seed, False
        self.total_size = self.plan.total_size
        self.num_samples = self.total_size // num_replicas
        self._cache: tuple[int, list[np.ndarray]] | None = None
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, batches: int) -> None:
        """Continue epoch `epoch` after its first `batches` batches (once; a checkpoint's position)."""
        self.epoch = epoch
        self._resume = (epoch, batches)

    def global_batches(self) -> list[np.ndarray]:
        """All ranks' batches of this epoch (`BatchPlan.batches`, cached per epoch)."""
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self.plan.batches(self.epoch))
        return self._cache[1]

    def rank_batches(self) -> list[np.ndarray]:
        return [b[self.rank :: self.num_replicas] for b in self.global_batches()]

    def __iter__(self) -> Iterator[int]:
        batches = self.rank_batches()
        if self._resume is not None:
            epoch, skip = self._resume
            self._resume = None
            if epoch == self.epoch:
                batches = batches[skip:]
        for b in batches:
            yield from (int(i) for i in b)

    def __len__(self) -> int:
        return self.num_samples


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `StepwiseSampler` whose place in the epoch survives a checkpoint.

    Lightning stores `state_dict()` in the checkpoint and calls `load_state_dict()` on resume: the
    resumed run continues with the first batch not yet trained, in the same epoch's order (a plain
    DataLoader would restart the epoch, training its first batches twice and never its last ones).
    `position_fn` returns the batches consumed in the current epoch (the trainer's progress).
    """

    def __init__(self, *args, position_fn: Callable[[], int | None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._position_fn = position_fn

    def state_dict(self) -> dict:
        batches = self._position_fn() if self._position_fn is not None else None
        return {"epoch": int(self.sampler.epoch), "batches": None if batches is None else int(batches)}

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.sampler, StepwiseSampler):
            self.sampler.resume(int(state.get("epoch", 0)), int(state.get("batches") or 0))


def real_token_share(dataset: TokenizedSplit, batches: Sequence[Sequence[int]]) -> float:
    """Non-padding tokens / all tokens over right-padded batches of `dataset`."""
    n = len(dataset)
    real = total = 0
    for b in batches:
        lens = dataset.lengths[np.asarray(b) % n]
        real += int(lens.sum())
        total += int(lens.max()) * len(lens)
    return real / total if total else 1.0
