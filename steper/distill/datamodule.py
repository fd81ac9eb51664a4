"""The step-wise training data: JSONL rows → tokenized examples → length-grouped, mixed-task batches.

A data directory (written by `generate_data.py`) holds `train.jsonl` and `validation.jsonl`, one
structured example per line (`stepwise.STEPWISE_FIELDS`: qid, task, step, question, passages,
demos, prefix, target; read and checked by `stepwise.read_rows`). Rows become token ids in
`encoding` (the one place they are rendered: exactly the loop's input, EOS where generation ends,
over-long examples losing passage words) and batches in `batching` (length-grouped, mixed tasks,
DDP shares, a loader that resumes mid-epoch). This module holds the LightningDataModule tying
them to the `stepwise` config node, whose settings it checks on construction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader

from steper.constants import STEP_TASKS, STEPWISE_SPLITS, TASK_IDS
from steper.distill.batching import (
    IGNORE_INDEX,
    PADDING_TASK,
    ResumableDataLoader,
    StepwiseCollator,
    StepwiseSampler,
    TokenizedSplit,
    real_token_share,
)
from steper.distill.encoding import EOS_AFTER, Encoded, RowEncoder, encode_input, row_text
from steper.distill.stepwise import HOW_TO_MAKE, read_rows
from steper.errors import SteperError
from steper.reasoning.prompts import uses_chat

__all__ = [
    "EOS_AFTER",
    "IGNORE_INDEX",
    "METHODS",
    "PADDING_TASK",
    "ResumableDataLoader",
    "StepwiseCollator",
    "StepwiseDataModule",
    "StepwiseSampler",
    "TokenizedSplit",
    "encode_input",
    "read_rows",
    "real_token_share",
]

log = logging.getLogger(__name__)

METHODS = {"steper": STEP_TASKS, "vanilla": ("vanilla",)}


# stepwise.<key> → (least value, what it is, an example value, whether null is allowed)
COUNTS = {
    "batch_size": (1, "the training examples per batch on each device", 8, False),
    "eval_batch_size": (1, "the validation examples per batch; null = batch_size", 16, True),
    "max_length": (2, "the most tokens of one example, input and target", 2048, False),
    "num_workers": (0, "the data-loading worker processes; 0 = load in the main process", 0, False),
    "limit_train": (0, "the most training examples used; null = all", 1000, True),
    "limit_val": (0, "the most validation examples used; null = all", 200, True),
    "megabatch": (1, "the batches sorted by length together", 50, False),
    "pad_to_multiple_of": (1, "each batch's width is rounded up to a multiple of it; null = none", 8, True),
}
CHOICES = {
    "method": (
        tuple(METHODS),
        "steper = first/mid/final examples, vanilla = the whole-chain view; method=<name>",
    ),
    "chat": (("auto", "true", "false"), "auto = the tokenizer's chat template when it has one"),
    "eos_after": (EOS_AFTER, "final = EOS after the answer step only, every = after each step"),
}


def _count(key: str, value):
    """`stepwise.<key>` checked against `COUNTS`; one error naming the key, the value and the fix."""
    low, what, example, nullable = COUNTS[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "" if isinstance(value, int) and not isinstance(value, bool) else "an integer of "
        raise SteperError(
            f"stepwise.{key} must be {kind}at least {low}{' or null' if nullable else ''}, got {value!r} "
            f"({what}): set e.g. stepwise.{key}={example}"
        )
    return value


def _choice(key: str, value) -> str:
    allowed, what = CHOICES[key]
    if not isinstance(value, str) or value.lower() not in allowed:
        raise SteperError(f"stepwise.{key} must be one of {', '.join(allowed)}, got {value!r} ({what})")
    return value.lower()


def _chat_setting(chat) -> str | bool:
    """`stepwise.chat` as `uses_chat` takes it: True, False or "auto"."""
    if isinstance(chat, bool):
        return chat
    setting = _choice("chat", chat)
    return setting if setting == "auto" else setting == "true"


class StepwiseDataModule(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str,
        method: str = "steper",
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        max_length: int = 2048,
        chat: str | bool = "auto",
        loss_on_prefix: bool = False,
        eos_after: str = "final",
        length_grouped: bool = True,
        num_workers: int = 0,
        seed: int = 0,
        limit_train: int | None = None,
        limit_val: int | None = None,
        megabatch: int = 50,
        pad_to_multiple_of: int | None = None,
    ):
        super().__init__()
        self.data_dir = Path(data_dir)
        self.method = _choice("method", method)
        self.batch_size = _count("batch_size", batch_size)
        self.eval_batch_size = _count("eval_batch_size", eval_batch_size) or batch_size
        self.max_length = _count("max_length", max_length)
        self.chat = chat
        self._chat = _chat_setting(chat)
        self.loss_on_prefix = loss_on_prefix
        self.eos_after = _choice("eos_after", eos_after)
        self.length_grouped = length_grouped
        self.num_workers = _count("num_workers", num_workers)
        self.seed = seed
        self.limits = {
            "train": _count("limit_train", limit_train),
            "validation": _count("limit_val", limit_val),
        }
        self.megabatch = _count("megabatch", megabatch)
        self.pad_to_multiple_of = _count("pad_to_multiple_of", pad_to_multiple_of)
        self.tokenizer = None
        self.use_chat = False
        self.datasets: dict[str, TokenizedSplit] = {}
        self.dropped: dict[str, int] = {}
        self.truncated: dict[str, int] = {}
        self._rows: dict[str, list[dict]] = {}
        self._train_sampler: StepwiseSampler | None = None
        self._pending_resume: tuple[int, int] | None = None

    # ---- rows (no tokenizer needed)

    def rows(self, split: str) -> list[dict]:
        """The selected rows of a split (method and limit applied)."""
        if split not in self._rows:
            if not self.data_dir.is_dir():
                raise SteperError(f"step-wise data directory {self.data_dir} not found: {HOW_TO_MAKE}")
            path = self.data_dir / f"{split}.jsonl"
            wanted = METHODS[self.method]
            rows = [r for r in read_rows(path) if r["task"] in wanted]
            limit = self.limits[split]
            if limit is not None:
                rows = rows[:limit]
            if not rows and limit != 0:
                raise SteperError(
                    f"{path} holds no example for method={self.method} (tasks {', '.join(wanted)}): "
                    f"{HOW_TO_MAKE}" + (" with its vanilla view" if self.method == "vanilla" else "")
                )
            self._rows[split] = rows
        return self._rows[split]

    def task_counts(self) -> dict[str, int]:
        """Examples per split and task after method selection and limits, keys `train/first` …
        (vanilla rows count as `final`). Examples dropped for length (known after `setup`) are in
        `self.dropped`."""
        out = {}
        for split in STEPWISE_SPLITS:
            ids = [TASK_IDS[r["task"]] for r in self.rows(split)]
            for j, task in enumerate(STEP_TASKS):
                out[f"{split}/{task}"] = ids.count(j)
        return out

    def texts(self) -> Iterator[str]:
        """Every example's plain-text input + target (e.g. to train the tiny tokenizer)."""
        for split in STEPWISE_SPLITS:
            yield from (row_text(r) for r in self.rows(split))

    # ---- tokenization

    def set_tokenizer(self, tokenizer) -> None:
        if tokenizer.eos_token_id is None:
            raise SteperError("the tokenizer has no EOS token: targets must end with one")
        self.use_chat = uses_chat(tokenizer, self._chat)
        if self.use_chat and not getattr(tokenizer, "chat_template", None):
            raise SteperError(
                "stepwise.chat=true but the tokenizer has no chat template: set stepwise.chat=auto or false"
            )
        if tokenizer is not self.tokenizer:
            self.datasets = {}
        self.tokenizer = tokenizer

    def encoder(self) -> RowEncoder:
        """The row → token ids encoder of the current tokenizer and settings."""
        return RowEncoder(self.tokenizer, self.use_chat, self.max_length, self.loss_on_prefix, self.eos_after)

    def _tokenize_split(self, split: str) -> TokenizedSplit:
        rows = self.rows(split)
        enc: Encoded = self.encoder().encode(rows)
        self.dropped[split], self.truncated[split] = enc.dropped, enc.truncated
        if rows and not enc.ids:
            raise SteperError(
                f"max_length {self.max_length} too small for any target (shortest needs {enc.shortest} tokens) "
                f"in {self.data_dir / (split + '.jsonl')}"
            )
        if enc.dropped or enc.truncated:
            log.warning(
                "%s: %d of %d examples had passages cut to fit max_length=%d, %d dropped (too long without passages)",
                split,
                enc.truncated,
                len(rows),
                self.max_length,
                enc.dropped,
            )
        return TokenizedSplit(enc.ids, enc.n_input, enc.tasks)

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is None:
            raise SteperError("StepwiseDataModule.set_tokenizer(tokenizer) must be called before setup")
        for split in STEPWISE_SPLITS:
            if split == "train" and stage not in (None, "fit"):
                continue
            if split not in self.datasets:
                self.datasets[split] = self._tokenize_split(split)

    # ---- loaders

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def sampler(
        self, split: str, *, num_replicas: int | None = None, rank: int | None = None
    ) -> StepwiseSampler:
        r, w = self._rank_world()
        train = split == "train"
        return StepwiseSampler(
            self.datasets[split].lengths,
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            length_grouped=self.length_grouped or not train,
            megabatch=self.megabatch,
            seed=self.seed,
            num_replicas=w if num_replicas is None else num_replicas,
            rank=r if rank is None else rank,
        )

    def collator(self) -> StepwiseCollator:
        pad = self.tokenizer.pad_token_id
        return StepwiseCollator(self.tokenizer.eos_token_id if pad is None else pad, self.pad_to_multiple_of)

    def _train_position(self) -> int | None:
        """Batches of the current epoch already trained (Lightning's progress), for resuming."""
        trainer = getattr(self, "trainer", None)
        try:
            return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        except AttributeError:
            return None

    # Mid-epoch resume. Lightning saves `state_dict()` in checkpoints and calls `load_state_dict()`
    # on resume, before or after it built the training loader (it builds one early to estimate the
    # number of steps for the lr schedule), so the position goes to the current sampler and to the
    # next one made.

    def state_dict(self) -> dict:
        position = self._train_position()
        if self._train_sampler is None or position is None:
            return {}
        return {"train_epoch": int(self._train_sampler.epoch), "train_batches": position}

    def load_state_dict(self, state_dict: dict) -> None:
        if "train_epoch" not in state_dict:
            return
        resume = (int(state_dict["train_epoch"]), int(state_dict["train_batches"]))
        if self._train_sampler is not None:
            self._train_sampler.resume(*resume)
        else:
            self._pending_resume = resume

    def _loader(self, split: str) -> DataLoader:
        if split not in self.datasets:
            self.setup("fit" if split == "train" else "validate")
        train = split == "train"
        sampler = self.sampler(split)
        if train:
            self._train_sampler = sampler
            if self._pending_resume is not None:
                sampler.resume(*self._pending_resume)
                self._pending_resume = None
        return (ResumableDataLoader if train else DataLoader)(
            self.datasets[split],
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            collate_fn=self.collator(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
            **({"position_fn": self._train_position} if train else {}),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")
