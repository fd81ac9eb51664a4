"""The real-data tier (`make test-realdata`): the samples of the official HotpotQA, 2Wiki and
MuSiQue releases in `../shared/data/real/` (sources and licences in its README), read where they
lie and never copied into the repository. Every test here is marked `realdata`; without the shared
folder they skip, saying where the rows were looked for (`STEPER_REAL_DATA` points elsewhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env

REAL_DIR = Path(os.environ.get("STEPER_REAL_DATA") or REPO_ROOT.parent / "shared" / "data" / "real")

# (file under REAL_DIR, dataset conf, dataset.format, rows as released in the sample)
FILES = {
    "hotpot_dev": ("hotpot/hotpot_dev_distractor_v1.sample.json", "hotpot", "hotpot", 152),
    "hotpot_hf_dev": ("hotpot/hotpot_qa_distractor_validation_hf.sample.json", "hotpot", "hotpot_hf", 100),
    "hotpot_hf_train": ("hotpot/hotpot_qa_distractor_train_hf.sample.json", "hotpot", "hotpot_hf", 10),
    "hotpot_fullwiki": ("hotpot/hotpot_dev_fullwiki_v1.sample.json", "hotpot", "hotpot", 495),
    "hotpot_ircot_like": ("hotpot/ircot_style_dev_subsampled.jsonl", "hotpot", "ircot", 495),
    "2wiki_dev": ("2wiki/dev.sample.json", "2wiki", "2wiki", 100),
    "2wiki_train": ("2wiki/train.sample.json", "2wiki", "2wiki", 500),
    "musique_dev": ("musique/musique_ans_v1.0_dev.sample.jsonl", "musique", "musique", 120),
    "musique_full_train": ("musique/musique_full_v1.0_train.sample.jsonl", "musique", "musique", 20),
}


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL_DIR.is_dir():
        pytest.skip(f"no real rows at {REAL_DIR} (../shared/data/real beside the checkout, or STEPER_REAL_DATA)")
    return REAL_DIR


def real_path(key: str) -> Path:
    """The shared file of FILES[key] (the caller holds the `real_dir` fixture)."""
    return REAL_DIR / FILES[key][0]


def raw_rows(path: Path) -> list[dict]:
    """The rows of a shared file as released: a JSON array or JSON Lines."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def row_id(row: dict) -> str:
    return str(row.get("_id") or row.get("id") or row.get("question_id"))


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


def dataset_overrides(key: str, ids_dir: Path, *, limit: int | None = None) -> list[str]:
    """Overrides that point `dataset=<name>` at one shared file as train, dev and test rows: the
    test questions are that file's ids (the first `limit` of them), the corpus the union of its
    contexts — what a user would type to try the harness on one released file."""
    rel, name, fmt, _ = FILES[key]
    path = REAL_DIR / rel
    # MuSiQue-Full's unanswerable rows are left out by the reader (test_real_readers)
    ids = [row_id(r) for r in raw_rows(path) if r.get("answerable") is not False]
    ids_file = write_ids(ids_dir / f"{key}.ids", ids[:limit] if limit else ids)
    return [
        f"dataset={name}",
        f"dataset.format={fmt}",
        f"dataset.train_path={path}",
        f"dataset.dev_path={path}",
        f"dataset.test_ids_path={ids_file}",
    ]


def run_entry(script: str, overrides: list[str], tmp: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python <script> <overrides>` from the repository root, offline, paths under `tmp`, no
    progress bar (train.py's evaluation bar is `eval.progress`, it has no top-level `progress`)."""
    quiet = ["progress=false"] if script != "train.py" else []
    args = [
        sys.executable, str(REPO_ROOT / script),
        f"paths.root_dir={tmp}", f"paths.data_dir={tmp}/data", f"paths.log_dir={tmp}/logs",
        f"paths.cache_dir={tmp}/cache", *quiet, *overrides,
    ]  # fmt: skip
    return subprocess.run(args, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
