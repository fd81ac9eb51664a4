"""The HF `hotpot_qa` distractor layout: its rows from LOCAL files (never a download), mapped to the
official HotpotQA row layout so one parser serves both."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from steper.data.readers.rows import BadRow, check_file, get_field, get_text, row_label
from steper.errors import SteperError


def _hf_files(path: str | Path) -> list[str]:
    s = str(path)
    if any(ch in s for ch in "*?["):
        files = sorted(glob.glob(s))
        if not files:
            check_file(s)
        return files
    p = check_file(s)
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet"))
        if not files:
            raise SteperError(f"{p}: no .parquet files in this folder; point to the split's file(s) instead")
        return files
    return [str(p)]


def _load(path: str | Path, cache_dir: str | None):
    p = Path(path)
    if p.is_dir() and (p / "dataset_info.json").exists():  # a `save_to_disk` folder
        from datasets import load_from_disk

        return load_from_disk(str(p))
    from datasets import load_dataset

    files = _hf_files(path)
    if all(Path(f).stat().st_size == 0 for f in files):
        return []  # empty files hold no rows (the datasets library would fail without a reason)
    suffix = Path(files[0]).suffix.lower()
    builder = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}.get(suffix)
    if builder is None:
        raise SteperError(
            f"{files[0]}: unknown file type {suffix!r} for hotpot_hf (use .parquet, .json(l), .arrow)"
        )
    try:
        return load_dataset(builder, data_files=files, split="train", cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001 - the datasets library raises many kinds
        raise SteperError(f"{path}: could not read as the HF hotpot_qa layout: {e}") from None


def rows_hf(path: str | Path, cache_dir: str | None = None) -> Iterator[tuple[str, Any]]:
    """(label, row) of a .parquet/.json(l)/.arrow file, a glob of them, a folder of .parquet files,
    or a `save_to_disk` folder."""
    for i, row in enumerate(_load(path, cache_dir)):
        yield f"row {i}{row_label(row)}", row


def hf_to_official(row: Any) -> dict:
    """One row of the HF `hotpot_qa` layout → the official HotpotQA JSON layout."""
    sf = get_field(row, "supporting_facts", dict)
    ctx = get_field(row, "context", dict)
    for key, d in (("title", sf), ("sent_id", sf), ("title", ctx), ("sentences", ctx)):
        if not isinstance(d.get(key), list):
            field = ("supporting_facts" if d is sf else "context") + f".{key}"
            raise BadRow(field, "missing or not a list")
    if len(sf["title"]) != len(sf["sent_id"]):
        raise BadRow("supporting_facts", "title and sent_id have different lengths")
    if len(ctx["title"]) != len(ctx["sentences"]):
        raise BadRow("context", "title and sentences have different lengths")
    return {
        "_id": get_text(row, "id"),
        "question": row.get("question"),
        "answer": row.get("answer"),
        "type": row.get("type"),
        "level": row.get("level"),
        "supporting_facts": [[t, i] for t, i in zip(sf["title"], sf["sent_id"])],
        "context": [[t, s] for t, s in zip(ctx["title"], ctx["sentences"])],
    }
