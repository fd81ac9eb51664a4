"""The step-wise training data: JSONL rows → tokenized examples → length-grouped, mixed-task batches.

A data directory (written by `generate_data.py`) holds `train.jsonl` and `validation.jsonl`, one
example per line: `{"qid", "task": first|mid|final|vanilla, "step", "prompt", "prefix", "target"}`.

Each example is tokenized exactly as the student meets it in the loop: the input is
`render(prompt, prefix, tokenizer, chat)`, the trained part `continuation(target, prefix, chat)`,
followed by EOS where generation ends (`eos_after`); labels are -100 everywhere else
(`loss_on_prefix=True` moves the reasoning prefix into the trained part, method.md §1).

`eos_after=final` (default) ends only the answer step ("So the answer is: …", and the vanilla
chain) with EOS. A first or mid step r_s gets none: the loop cuts each generation at its first
sentence anyway, and an EOS after r_s would teach "stop after r_s" in the very context where the
step-(s+1) example teaches "go on with r_{s+1}" (the two inputs differ only by the passages
retrieved in between). Measured on the pretrained demo student, EOS after every step made it stop
at step 2 with an empty sentence on most questions. `eos_after=every` restores it. An example longer than `max_length` loses passage
words (never the question, the prefix or the target; `prompts.fit_passages`); one that does not
fit even without passages is dropped and counted.

Batches mix all tasks, each example carrying its task id (0 first, 1 mid, 2 final; vanilla rows
count as final). Training batches are length-grouped: shuffled megabatches of
`megabatch × batch_size × world_size` examples are sorted by length and cut into batches whose
order is shuffled again (seeded, deterministic per epoch, the longest batch first so an
out-of-memory shows at step 1). Under DDP every rank gets a disjoint, equally long share; the few
copies that even out the shares carry task id -1 and are left out of every loss. The training
loader is resumable: a run resumed from a mid-epoch checkpoint continues with the next unseen batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from steper.data.schema import Paragraph
from steper.distill.weighting import TASK_IDS, TASKS
from steper.errors import SteperError
from steper.io import iter_jsonl
from steper.reasoning.prompts import INSTRUCTION, build_prompt, continuation, fit_passages, render, uses_chat

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")
METHODS = {"steper": ("first", "mid", "final"), "vanilla": ("vanilla",)}
# the tasks whose target ends the generation (EOS after it under eos_after=final)
ANSWER_TASKS = ("final", "vanilla")
EOS_AFTER = ("final", "every")
IGNORE_INDEX = -100
PADDING_TASK = -1  # task id of the copies that even out DDP shares: no loss
HOW_TO_MAKE = (
    "make it with `python generate_data.py dataset=<name>` (writes train.jsonl and validation.jsonl)"
)
_TITLE = "Wikipedia Title: "
_QUESTION_HEAD = f"Q: {INSTRUCTION}\n"


# --------------------------------------------------------------------------- text → token ids


def encode_input(tokenizer, texts: str | list[str], chat: bool):
    """Token ids of rendered model inputs, as the loop must encode them too: a chat template's
    text already holds its special tokens; plain text gets the tokenizer's own (e.g. a BOS)."""
    return tokenizer(texts, add_special_tokens=not chat)["input_ids"]


def parse_prompt(prompt: str) -> tuple[str, list[Paragraph], str] | None:
    """Split a `build_prompt` text back into (question, passages, demos); None when it is not one.

    The question is the last `Q: <instruction>` block; demonstrations (if any) end with an earlier
    `Q:` block; the passages are the `Wikipedia Title:` blocks between. Only an exact round trip
    through `build_prompt` counts, so a prompt of another layout is never silently rewritten.
    """
    blocks = prompt.split("\n\n")
    heads = [i for i, b in enumerate(blocks) if b.startswith(_QUESTION_HEAD)]
    if not heads:
        return None
    qi = heads[-1]
    question = "\n\n".join(blocks[qi:])[len(_QUESTION_HEAD) :]
    earlier = [i for i, b in enumerate(blocks[:qi]) if b.startswith("Q: ")]
    start = earlier[-1] + 1 if earlier else 0
    demos = "\n\n".join(blocks[:start])
    raw: list[str] = []
    for b in blocks[start:qi]:
        if b.startswith(_TITLE):
            raw.append(b[len(_TITLE) :])
        elif raw:  # a passage text holding a blank line
            raw[-1] += "\n\n" + b
        else:
            return None
    passages = []
    for body in raw:
        title, _, text = body.partition("\n")
        passages.append(Paragraph(title, text))
    if build_prompt(question, passages, demos) != prompt:
        return None
    return question, passages, demos


# --------------------------------------------------------------------------- rows


def read_rows(path: Path) -> list[dict]:
    """The rows of one step-wise JSONL file, checked; errors name file and line."""
    if not path.is_file():
        raise SteperError(f"step-wise data file {path} not found: {HOW_TO_MAKE}")
    rows = []
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        for key in ("qid", "task", "prompt", "target"):
            if key not in row:
                raise SteperError(
                    f"{where}: missing field {key!r} (expected qid, task, step, prompt, prefix, target)"
                )
        if row["task"] not in TASK_IDS:
            raise SteperError(f"{where}: unknown task {row['task']!r}; expected one of {sorted(TASK_IDS)}")
        for key in ("prompt", "prefix", "target"):
            if not isinstance(row.get(key, ""), str):
                raise SteperError(f"{where}: field {key!r} must be a string")
        if not row["target"].strip():
            raise SteperError(f"{where}: empty target")
        rows.append(
            {
                "qid": str(row["qid"]),
                "task": row["task"],
                "step": row.get("step"),
                "prompt": row["prompt"],
                "prefix": row.get("prefix") or "",
                "target": row["target"],
            }
        )
    if not rows:
        raise SteperError(f"step-wise data file {path} is empty: {HOW_TO_MAKE}")
    return rows


# --------------------------------------------------------------------------- dataset, collate, sampler


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
        counts = [0] * len(TASKS)
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


class StepwiseSampler(DistributedSampler):
    """Yields this rank's example indices so that consecutive `batch_size` chunks are its batches.

    A `DistributedSampler` subclass (its own rank logic, no process group needed) so Lightning
    neither replaces it under DDP nor forgets to call `set_epoch`. Every rank gets the same number
    of examples; ranks' batches at one step come from one length-sorted global batch.
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
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.length_grouped = length_grouped
        self.megabatch = megabatch
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = False
        n = len(self.lengths)
        self.total_size = n + (-n) % num_replicas
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
        """All ranks' batches of this epoch, each `batch_size × num_replicas` examples (the last may be
        smaller); index ≥ n marks a padding copy."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        n, w = len(self.lengths), self.num_replicas
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.total_size > n:
            order = np.concatenate([order, np.resize(order, self.total_size - n) + n])
        g = self.batch_size * w
        lengths = self.lengths[order % n] if n else self.lengths
        if self.length_grouped:
            chunk = self.megabatch * g if self.shuffle else len(order)
            pieces = []
            for i in range(0, len(order), max(chunk, 1)):
                part = slice(i, i + chunk)
                pieces.append(order[part][np.argsort(-lengths[part], kind="stable")])
            order = np.concatenate(pieces) if pieces else order
        batches = [order[i : i + g] for i in range(0, len(order), g)]
        if self.shuffle and batches:
            tail = [batches.pop()] if len(batches[-1]) < g else []
            batches = [batches[i] for i in rng.permutation(len(batches))] + tail
            if self.length_grouped and batches:
                longest = max(range(len(batches)), key=lambda i: int(self.lengths[batches[i] % n].max()))
                batches[0], batches[longest] = batches[longest], batches[0]
        self._cache = (self.epoch, batches)
        return batches

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


# --------------------------------------------------------------------------- the DataModule


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
        if method not in METHODS:
            raise SteperError(f"unknown method {method!r}; use one of {sorted(METHODS)}")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise SteperError("batch_size and eval_batch_size must be >= 1")
        if max_length < 2:
            raise SteperError(f"max_length must be >= 2, got {max_length}")
        self.data_dir = Path(data_dir)
        self.method = method
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.max_length = max_length
        self.chat = chat
        self.loss_on_prefix = loss_on_prefix
        if eos_after not in EOS_AFTER:
            raise SteperError(f"data.eos_after must be one of {', '.join(EOS_AFTER)}, got {eos_after!r}")
        self.eos_after = eos_after
        self.length_grouped = length_grouped
        self.num_workers = num_workers
        self.seed = seed
        self.limits = {"train": limit_train, "validation": limit_val}
        self.megabatch = megabatch
        self.pad_to_multiple_of = pad_to_multiple_of
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
                rows = rows[: max(int(limit), 0)]
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
        for split in SPLITS:
            ids = [TASK_IDS[r["task"]] for r in self.rows(split)]
            for j, task in enumerate(TASKS):
                out[f"{split}/{task}"] = ids.count(j)
        return out

    def texts(self) -> Iterator[str]:
        """Every example's plain-text input + target (e.g. to train the tiny tokenizer)."""
        for split in SPLITS:
            for r in self.rows(split):
                yield render(r["prompt"], r["prefix"]) + continuation(r["target"], r["prefix"])

    # ---- tokenization

    def set_tokenizer(self, tokenizer) -> None:
        if tokenizer.eos_token_id is None:
            raise SteperError("the tokenizer has no EOS token: targets must end with one")
        try:
            self.use_chat = uses_chat(tokenizer, self.chat)
        except Exception as e:  # pragma: no cover - defensive
            raise SteperError(f"chat={self.chat!r}: {e}") from None
        if self.use_chat and not getattr(tokenizer, "chat_template", None):
            raise SteperError("chat=true but the tokenizer has no chat template; set chat=auto or false")
        if tokenizer is not self.tokenizer:
            self.datasets = {}
        self.tokenizer = tokenizer

    def _texts(self, prompt: str, prefix: str, target: str) -> tuple[str, str]:
        if self.loss_on_prefix:
            trained = f"{prefix} {target}" if prefix else target
            return render(prompt, "", self.tokenizer, self.use_chat), continuation(trained, "", self.use_chat)
        return render(prompt, prefix, self.tokenizer, self.use_chat), continuation(
            target, prefix, self.use_chat
        )

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return encode_input(self.tokenizer, texts, self.use_chat)

    def _shrink(self, row: dict, budget: int) -> tuple[list[int] | None, int]:
        """Input ids of the row's prompt with passages cut to fit `budget` tokens, or None; and the
        input length with no passage at all."""
        parsed = parse_prompt(row["prompt"])
        if parsed is None:
            return None, len(self._encode([self._texts(row["prompt"], row["prefix"], row["target"])[0]])[0])
        question, passages, demos = parsed

        def ids_of(prompt: str) -> list[int]:
            return self._encode([self._texts(prompt, row["prefix"], row["target"])[0]])[0]

        prompt, _ = fit_passages(question, passages, lambda p: len(ids_of(p)) <= budget, demos)
        ids = ids_of(prompt)
        if len(ids) <= budget:
            return ids, len(ids)
        return None, len(ids_of(build_prompt(question, [], demos)))

    def _tokenize_split(self, split: str) -> TokenizedSplit:
        tok = self.tokenizer
        eos = tok.eos_token_id
        rows = self.rows(split)
        ids_out: list[np.ndarray] = []
        n_input: list[int] = []
        tasks: list[int] = []
        dropped, truncated, shortest = 0, 0, math.inf
        chunk = 1024
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            pairs = [self._texts(r["prompt"], r["prefix"], r["target"]) for r in part]
            inputs = self._encode([p[0] for p in pairs])
            targets = tok([p[1] for p in pairs], add_special_tokens=False)["input_ids"]
            for row, inp, tgt in zip(part, inputs, targets):
                if self.eos_after == "every" or row["task"] in ANSWER_TASKS:
                    tgt = [*tgt, eos]
                if len(inp) + len(tgt) > self.max_length:
                    inp, bare = self._shrink(row, self.max_length - len(tgt))
                    if inp is None:
                        dropped += 1
                        shortest = min(shortest, bare + len(tgt))
                        continue
                    truncated += 1
                ids_out.append(np.asarray([*inp, *tgt], dtype=np.int32))
                n_input.append(len(inp))
                tasks.append(TASK_IDS[row["task"]])
        self.dropped[split], self.truncated[split] = dropped, truncated
        if rows and not ids_out:
            raise SteperError(
                f"max_length {self.max_length} too small for any target (shortest needs {shortest} tokens) "
                f"in {self.data_dir / (split + '.jsonl')}"
            )
        if dropped or truncated:
            log.warning(
                "%s: %d of %d examples had passages cut to fit max_length=%d, %d dropped (too long without passages)",
                split,
                truncated,
                len(rows),
                self.max_length,
                dropped,
            )
        return TokenizedSplit(ids_out, n_input, tasks)

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is None:
            raise SteperError("StepwiseDataModule.set_tokenizer(tokenizer) must be called before setup")
        for split in SPLITS:
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
