"""IRCoT's evaluation subsets of an official dev set, and selection by id lists.

IRCoT (`processing_scripts/subsample_dataset_and_remap_paras.py`) calls `random.seed(13370)` at
module level and is run twice, once per set, as two separate processes:

    python subsample_dataset_and_remap_paras.py <dataset> dev    # dev  = random.sample(all, 100)
    python subsample_dataset_and_remap_paras.py <dataset> test   # test = random.sample(rest, 500)

where `all` is the processed dev file in its original order (the official dev order) and `rest` is
`all` without the questions of the dev subset, in original order. Because each run is a fresh
process, the generator is re-seeded with 13370 before the test sample: the test sample does NOT
continue the random stream of the dev sample. `ircot_subsets` mirrors exactly that.

IRCoT's README warns that rerunning the script may not reproduce the released subsets; to use the
exact released questions, give their id lists (`dataset.dev_ids_path` / `dataset.test_ids_path`,
see `select_by_ids`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from steper.data.schema import Question
from steper.errors import SteperError

IRCOT_SEED = 13370
IRCOT_N_DEV = 100
IRCOT_N_TEST = 500

Q = TypeVar("Q", bound=Question)


def ircot_subsets(
    dev_questions: Sequence[Q],
    n_dev: int = IRCOT_N_DEV,
    n_test: int = IRCOT_N_TEST,
    seed: int = IRCOT_SEED,
    source: str = "",
    alternative: str = "",
) -> tuple[list[Q], list[Q]]:
    """(dev, test) = IRCoT's 100 / 500 questions sampled from an official dev set (see the module doc).
    `alternative`: another way out, added to the error for too small a file.

    No fallback for small inputs: fewer than n_dev + n_test questions is an error (the subsets would
    not be IRCoT's); give id lists instead.
    """
    pool = list(dev_questions)
    if len(pool) < n_dev + n_test:
        where = f" ({source})" if source else ""
        raise SteperError(
            f"IRCoT's dev/test subsets sample {n_dev} + {n_test} questions from the official dev set, but the "
            f"dev file{where} has only {len(pool)}. Use the full official dev file, or give id lists with "
            "dataset.dev_ids_path=... and dataset.test_ids_path=... (one question id a line)"
            + (f"; {alternative}" if alternative else "")
            + "."
        )
    dev = random.Random(seed).sample(pool, n_dev)
    dev_ids = {q.qid for q in dev}
    rest = [q for q in pool if q.qid not in dev_ids]
    if len(rest) < n_test:  # only with duplicate ids
        raise SteperError(
            f"only {len(rest)} questions left for the test subset after the dev subset; duplicate ids?"
        )
    test = random.Random(seed).sample(rest, n_test)  # a fresh process in IRCoT: re-seeded
    return dev, test


def read_ids(path: str | Path) -> list[str]:
    """Question ids of a file, in order, duplicates dropped.

    Accepted: one id a line (blank lines and `#` comments ignored); JSON lines with `question_id`
    / `qid` / `id` / `_id` (so IRCoT's released `dev_subsampled.jsonl` works as is); a JSON list of
    ids or of such objects.
    """
    p = Path(path)
    if not p.is_file():
        raise SteperError(f"id list not found: {p}. Give a file with one question id a line.")
    text = p.read_text(encoding="utf-8")

    def from_obj(obj, where: str) -> str:
        if isinstance(obj, (str, int)):
            return str(obj)
        if isinstance(obj, dict):
            for k in ("question_id", "qid", "id", "_id"):
                if isinstance(obj.get(k), (str, int)):
                    return str(obj[k])
        raise SteperError(
            f"{where}: no question id (expected an id, or an object with question_id/qid/id/_id)"
        )

    ids: list[str] = []
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SteperError(f"{p}: malformed JSON at line {e.lineno}: {e.msg}") from None
        ids = [from_obj(x, f"{p}: item {i}") for i, x in enumerate(data)]
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SteperError(f"{p}:{lineno}: malformed JSON line ({e.msg})") from None
                ids.append(from_obj(obj, f"{p}:{lineno}"))
            else:
                ids.append(line)
    return list(dict.fromkeys(ids))


def select_by_ids(questions: Sequence[Q], ids_path: str | Path, source: str = "") -> list[Q]:
    """The questions whose ids are listed in `ids_path`, in the file's order; missing ids are an error."""
    ids = read_ids(ids_path)
    if not ids:
        raise SteperError(f"{ids_path} lists no question id: give one id a line, or drop the id list")
    by_id: dict[str, Q] = {}
    for q in questions:
        by_id.setdefault(q.qid, q)
    missing = [i for i in ids if i not in by_id]
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        where = f" ({source})" if source else ""
        raise SteperError(
            f"{ids_path}: {len(missing)} of {len(ids)} ids are not among the {len(by_id)} questions{where}: "
            f"{shown}. Check that the id list belongs to this dataset and to its official dev file."
        )
    return [by_id[i] for i in ids]


__all__ = ["IRCOT_N_DEV", "IRCOT_N_TEST", "IRCOT_SEED", "ircot_subsets", "read_ids", "select_by_ids"]
