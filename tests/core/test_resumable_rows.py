"""ResumableRows: a damaged settings key is one clear error, never a traceback or a silent resume."""

from __future__ import annotations

import json

import pytest

from steper.errors import SteperError
from steper.jobs import ResumableRows


@pytest.mark.parametrize("garbage", [b'{"framework": "ircot", "top_k"', b"[1, 2]", b"\xff\xfe\x00"])
def test_a_damaged_key_file_is_one_clear_error(tmp_path, garbage):
    with ResumableRows(tmp_path, "rows.jsonl", "run_key.json", {"top_k": 4}, what="predictions") as job:
        job.write({"qid": "q1", "answer": "x"})
    (tmp_path / "run_key.json").write_bytes(garbage)
    with pytest.raises(SteperError, match=r"run_key\.json.*cannot be resumed safely: delete that folder") as e:
        with ResumableRows(tmp_path, "rows.jsonl", "run_key.json", {"top_k": 4}, what="predictions"):
            pass
    assert "delete only" in str(e.value)
    (tmp_path / "run_key.json").unlink()  # the fix the message names: the key is written again
    with ResumableRows(tmp_path, "rows.jsonl", "run_key.json", {"top_k": 4}, what="predictions") as job:
        assert set(job.existing) == {"q1"}
    assert json.loads((tmp_path / "run_key.json").read_text()) == {"top_k": 4}
