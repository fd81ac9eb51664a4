"""Small, safe file helpers: atomic writes and JSONL reading with errors that name file and line."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from steper.errors import SteperError


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temp file beside `path`; rename it over `path` only if the block succeeds.

    Nothing half-written ever appears at `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file gets the usual mode
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise SteperError(f"file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise SteperError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise SteperError(f"{path}: not UTF-8 text (byte {e.start}): the file is damaged") from None


def iter_jsonl(path: str | os.PathLike, *, strict: bool = True, skipped: list | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, row) for each non-empty line.

    A malformed line raises a SteperError naming file and line; with strict=False it is skipped
    and its line number appended to `skipped`. A truncated last line (a killed writer) counts as
    malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise SteperError(f"file not found: {path}")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("expected a JSON object")
            except ValueError as e:
                if strict:
                    raise SteperError(f"{path}:{lineno}: malformed JSON line ({e})") from None
                if skipped is not None:
                    skipped.append(lineno)
                continue
            yield lineno, row


def read_jsonl(path: str | os.PathLike, *, strict: bool = True) -> list[dict]:
    return [row for _, row in iter_jsonl(path, strict=strict)]


class JsonlAppender:
    """Append-only JSONL writer for resumable jobs: each row is flushed and fsynced as one line.

    On open, a torn last line (the previous run was killed mid-write) is cut off, so a rerun
    continues from the last complete row without duplicates or loss.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_torn_tail(self.path)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate_torn_tail(path: Path) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1  # 0 when the only line is torn
    with open(path, "r+b") as f:
        f.truncate(cut)


LOCK_FILE = ".lock"


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on a job folder while the block runs: a second job started into the
    same folder fails at once instead of writing every step twice. The lock is an `flock` on
    `<folder>/.lock`, which the OS drops when the process dies (SIGKILL, preemption), so a resume
    is never refused by a stale lock; the file itself stays (it holds the last holder's pid)."""
    import fcntl

    path = Path(folder) / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by the `with` below
    except OSError as e:
        raise SteperError(
            f"cannot use {Path(folder)} as the job's folder ({e.strerror}): give a writable folder path"
        ) from None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise SteperError(
                f"{Path(folder)} is in use by another {what} (pid {holder}) running into the same folder: wait for it "
                "to finish (then resume with ckpt_path=last if it was training), or use another hydra.run.dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
