"""Rows of a dataset file: field access that names what is wrong, the row sources, and the reading loop.

A row whose layout is wrong raises `BadRow(field, problem)`; `collect` turns that into a
`SteperError` naming the file, the row/line and the field (strict), or skips the row and counts it
in one warning ("skipped 2 of 50 rows of FILE: ...").
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.io import iter_jsonl, read_json

log = logging.getLogger(__name__)

# format → (the layout's name in messages, how its files hold rows: one JSON array | JSON Lines | HF files)
FORMAT_LAYOUTS: dict[str, tuple[str, str]] = {
    "hotpot": ("HotpotQA official JSON", "array"),
    "hotpot_hf": ("HF `hotpot_qa` distractor", "hf"),
    "2wiki": ("2WikiMultihopQA official JSON", "array"),
    "musique": ("MuSiQue v1.0 JSONL", "lines"),
    "ircot": ("IRCoT processed JSONL", "lines"),
}
FORMAT_LABELS = {fmt: label for fmt, (label, _) in FORMAT_LAYOUTS.items()}

_HOP_PREFIX = re.compile(r"^(\d+)hop")


class BadRow(Exception):
    """A row of a dataset file that does not have the expected layout."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field {field!r}: {problem}")
        self.field = field
        self.problem = problem


def get_field(
    row: Any, key: str, kind: type | tuple[type, ...] | None = None, *, optional: bool = False
) -> Any:
    """`row[key]`, checked to be a `kind`; a BadRow when missing (unless `optional`) or of another type."""
    if not isinstance(row, dict):
        raise BadRow("(row)", f"expected a JSON object, got {type(row).__name__}")
    if key not in row or row[key] is None:
        if optional:
            return None
        raise BadRow(key, "missing")
    value = row[key]
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRow(key, f"expected {names}, got {type(value).__name__}")
    return value


def get_text(row: Any, key: str, *, optional: bool = False) -> str | None:
    value = get_field(row, key, (str, int, float), optional=optional)
    return None if value is None else str(value)


def qid_prefix(qid: str) -> tuple[str | None, int | None]:
    """The id's prefix before "__" (MuSiQue's "2hop", "3hop1", ...) and the hop count it names."""
    prefix = qid.split("__", 1)[0] if "__" in qid else None
    m = _HOP_PREFIX.match(prefix or "")
    return prefix, int(m.group(1)) if m else None


def row_label(row: Any) -> str:
    """The row's id as ` (id 'x')` for a message, or "" when the row has none."""
    if isinstance(row, dict):
        for k in ("_id", "id", "question_id", "qid"):
            if isinstance(row.get(k), (str, int)):
                return f" (id {row[k]!r})"
    return ""


def check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise SteperError(
            f"file not found: {p}. Put the dataset files there as described in the README section "
            '"Real datasets", or point the dataset config at them (e.g. dataset.dev_path=...).'
        )
    if p.is_dir():
        raise SteperError(
            f"{p} is a folder, not a dataset file: point the dataset path at the file itself "
            "(e.g. dataset.train_path=<folder>/train.json)"
        )
    return p


def rows_json_list(path: Path, fmt: str) -> Iterator[tuple[str, Any]]:
    """The rows of a file holding one JSON array (an empty file holds none)."""
    if _is_blank(path):
        return
    try:
        data = read_json(path)
    except SteperError:
        if _is_json_lines(path):
            raise SteperError(_json_lines_message(path, fmt)) from None
        raise
    if not isinstance(data, list):
        raise SteperError(f"{path}: expected a JSON list of question rows, got a {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"row {i}{row_label(row)}", row


def _is_blank(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return not head.strip() and path.stat().st_size <= len(head)


def _is_json_lines(path: Path) -> bool:
    """Whether the file's first two non-empty lines are each one JSON object (JSON Lines)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line for line in (next(f, "") for _ in range(50)) if line.strip()][:2]
    try:
        return len(lines) == 2 and all(isinstance(json.loads(line), dict) for line in lines)
    except ValueError:
        return False


# The official layout of each one-JSON-array format, as messages name it.
_ARRAY_LAYOUTS = {
    "hotpot": "HotpotQA's own layout, as in hotpot_train_v1.1.json",
    "2wiki": "2WikiMultihopQA's own layout, as in train.json",
}


def _json_lines_message(path: Path, fmt: str) -> str:
    head = (
        f"{path} is JSON Lines (one JSON object a line), but dataset.format={fmt} expects one JSON "
        f"array of rows ({_ARRAY_LAYOUTS.get(fmt, FORMAT_LABELS.get(fmt, fmt))}). "
    )
    with open(path, encoding="utf-8") as f:
        first = json.loads(next(line for line in f if line.strip()))
    guess = row_layout(first)
    if guess is not None and guess != fmt:
        return head + f"Its rows look like the {FORMAT_LABELS[guess]} layout: set dataset.format={guess}."
    also = (
        " (hotpot_hf reads JSON Lines, but only rows of the HF `hotpot_qa` layout)" if fmt == "hotpot" else ""
    )
    return head + (
        f"No dataset.format reads these rows as JSON Lines{also}: convert the file to one JSON array, e.g. "
        'python -c "import json, sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1]) if l.strip()]))" '
        f"{path} > {path.with_suffix('.json')}, and point the dataset config at the new file."
    )


def rows_jsonl(path: Path, strict: bool, malformed: list) -> Iterator[tuple[str, Any]]:
    """The rows of a JSON Lines file; malformed lines raise (strict) or go into `malformed`."""
    try:
        for lineno, row in iter_jsonl(path, strict=strict, skipped=malformed):
            yield f"line {lineno}{row_label(row)}", row
    except SteperError as e:
        raise SteperError(
            f"{e} Fix or remove the line, or set dataset.strict=false to skip bad rows."
        ) from None


def row_layout(row: Any) -> str | None:
    """The format whose layout a raw row has, by its keys (None when it has none of them)."""
    if not isinstance(row, dict):
        return None
    if "question_id" in row and ("contexts" in row or "question_text" in row):
        return "ircot"
    if "question_decomposition" in row or "paragraphs" in row:
        return "musique"
    if "evidences" in row:
        return "2wiki"
    if isinstance(row.get("context"), dict) or isinstance(row.get("supporting_facts"), dict):
        return "hotpot_hf"
    if "_id" in row and isinstance(row.get("context"), list):
        return "hotpot"
    return None


def _layout_mismatch(path: Path, label: str, row: Any, fmt: str) -> SteperError | None:
    """The error for a file in another format's layout, judged by its first row (None when it fits)."""
    found = row_layout(row)
    if found is None or found == fmt:
        return None
    return SteperError(
        f"{path}: {label} has the {FORMAT_LABELS[found]} layout, not the {FORMAT_LABELS.get(fmt, fmt)} "
        f"layout of dataset.format={fmt}: set dataset.format={found}"
    )


def _hint(fmt: str) -> str:
    label = FORMAT_LABELS.get(fmt, fmt)
    return (
        f'Expected the {label} layout (README section "Real datasets"): fix or remove the row, '
        "or set dataset.strict=false to skip bad rows."
    )


def _warn_skipped(path: Path | str, skipped: list[str], total: int) -> None:
    if not skipped:
        return
    head = "; ".join(skipped[:3]) + (f"; ... ({len(skipped) - 3} more)" if len(skipped) > 3 else "")
    msg = f"skipped {len(skipped)} of {total} rows of {path}: {head}"
    log.warning(msg)
    warnings.warn(msg, stacklevel=3)


def collect(
    path: Path,
    rows: Iterable[tuple[str, Any]],
    parse: Callable[[Any], Any],
    *,
    strict: bool,
    fmt: str,
    malformed: list | None = None,
) -> list:
    """Parse every (label, row); a BadRow raises (strict) or is skipped and counted in one warning."""
    out, skipped, total = [], [], 0
    for label, row in rows:
        total += 1
        if total == 1 and (mismatch := _layout_mismatch(path, label, row, fmt)) is not None:
            raise mismatch  # strict or not: skipping would drop every row
        try:
            item = parse(row)
        except BadRow as e:
            if strict:
                raise SteperError(f"{path}: {label}: {e}. {_hint(fmt)}") from None
            skipped.append(f"{label}: {e}")
            continue
        if item is not None:
            out.append(item)
    if malformed:
        skipped = [f"line {n}: malformed JSON" for n in malformed] + skipped
        total += len(malformed)
    _warn_skipped(path, skipped, total)
    return out
