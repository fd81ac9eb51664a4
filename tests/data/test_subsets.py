"""IRCoT's 100/500 subsets (exact rule), id lists, and load_questions' splits."""

from __future__ import annotations

import json
import random

import pytest
from omegaconf import OmegaConf

from steper.config import DatasetConfig
from steper.data import load_questions
from steper.data.readers import read_musique
from steper.data.schema import Question
from steper.data.subsets import ircot_subsets, read_ids, select_by_ids
from steper.errors import SteperError


def _questions(n: int) -> list[Question]:
    return [Question(qid=f"q{i:04d}", question=f"Question {i}?", answer=str(i)) for i in range(n)]


def test_matches_ircot_rule_exactly():
    qs = _questions(700)
    ids = [q.qid for q in qs]
    # IRCoT runs subsample_dataset_and_remap_paras.py twice (dev, then test), each a fresh process
    # with a module-level random.seed(13370).
    random.seed(13370)
    exp_dev = random.sample(ids, 100)
    random.seed(13370)
    rest = [i for i in ids if i not in set(exp_dev)]
    exp_test = random.sample(rest, 500)

    dev, test = ircot_subsets(qs)
    assert [q.qid for q in dev] == exp_dev
    assert [q.qid for q in test] == exp_test
    assert not {q.qid for q in dev} & {q.qid for q in test}

    # the rule is not "continue the same random stream" (that would give another test set)
    rng = random.Random(13370)
    rng.sample(ids, 100)
    assert rng.sample(rest, 500) != exp_test


def test_global_random_state_untouched():
    random.seed(1)
    a = random.random()
    random.seed(1)
    ircot_subsets(_questions(600))
    assert random.random() == a


def test_small_input_is_a_clear_error():
    with pytest.raises(SteperError, match=r"100 \+ 500 .*only 599.*dev_ids_path"):
        ircot_subsets(_questions(599), source="dev.json")


def test_select_by_ids_keeps_file_order(tmp_path):
    qs = _questions(10)
    p = tmp_path / "ids.txt"
    p.write_text("# dev ids\nq0007\n\nq0002\nq0007\nq0005\n")
    assert [q.qid for q in select_by_ids(qs, p)] == ["q0007", "q0002", "q0005"]

    # IRCoT's released dev_subsampled.jsonl works as an id list
    jl = tmp_path / "dev_subsampled.jsonl"
    jl.write_text(
        "\n".join(json.dumps({"question_id": i, "question_text": "?"}) for i in ["q0003", "q0001"]) + "\n"
    )
    assert read_ids(jl) == ["q0003", "q0001"]
    js = tmp_path / "ids.json"
    js.write_text(json.dumps(["q0004", {"_id": "q0009"}]))
    assert read_ids(js) == ["q0004", "q0009"]


def test_select_by_ids_names_missing(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("q0001\nzz1\nq0002\nzz2\n")
    with pytest.raises(SteperError, match=r"ids\.txt: 2 of 4 ids are not among the 10 questions.*zz1, zz2"):
        select_by_ids(_questions(10), p)
    with pytest.raises(SteperError, match="id list not found"):
        select_by_ids(_questions(10), tmp_path / "none.txt")


# ---------------------------------------------------------------------------------------------- load_questions


@pytest.fixture
def big_musique_dev(fixtures_dir, tmp_path):
    """650 MuSiQue rows (copies of a fixture row with new ids), enough for IRCoT's 100 + 500."""
    row = json.loads(
        (fixtures_dir / "musique" / "musique_ans_v1.0_dev_sample.jsonl").read_text().splitlines()[0]
    )
    p = tmp_path / "musique_ans_v1.0_dev.jsonl"
    with open(p, "w") as f:
        for i in range(650):
            f.write(json.dumps({**row, "id": f"2hop__{i}_{i + 1}"}) + "\n")
    return p


def test_load_questions_dev_test_are_ircot_subsets(big_musique_dev, fixtures_dir):
    cfg = DatasetConfig(
        name="musique",
        format="musique",
        train_path=str(fixtures_dir / "musique" / "musique_ans_v1.0_dev_sample.jsonl"),
        dev_path=str(big_musique_dev),
    )
    dev_all = read_musique(big_musique_dev)
    exp_dev, exp_test = ircot_subsets(dev_all)
    assert [q.qid for q in load_questions(cfg, "dev")] == [q.qid for q in exp_dev]
    test = load_questions(OmegaConf.structured(cfg), "test")  # a DictConfig works the same
    assert [q.qid for q in test] == [q.qid for q in exp_test]
    assert test[0].dataset == "musique" and len(test) == 500
    assert len(load_questions(cfg, "train")) == 3
    with pytest.raises(SteperError, match="unknown split 'valid'"):
        load_questions(cfg, "valid")


def test_load_questions_with_id_lists(fixtures_dir, tmp_path):
    ids = tmp_path / "test_ids.txt"
    ids.write_text("5a879ab05542996e4f30887e\n5a8b57f25542995d1e6f1371\n")
    cfg = {
        "name": "hotpot",
        "format": "hotpot",
        "dev_path": str(fixtures_dir / "hotpot" / "hotpot_dev_distractor_sample.json"),
        "test_ids_path": str(ids),
    }
    assert [q.answer for q in load_questions(cfg, "test")] == ["Delhi", "yes"]
    with pytest.raises(SteperError, match=r"only 4.*dev_ids_path"):  # no dev id list and only 4 questions
        load_questions(cfg, "dev")


def test_load_questions_ircot_files(fixtures_dir):
    path = str(fixtures_dir / "ircot" / "dev_subsampled_sample.jsonl")
    cfg = DatasetConfig(name="hotpot", format="ircot", dev_path=path, test_path=path)
    assert len(load_questions(cfg, "dev")) == 3
    assert [q.dataset for q in load_questions(cfg, "test")] == ["hotpot"] * 3


def test_load_questions_2wiki_uses_alias_file(fixtures_dir, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("9b1fe5a00bdd11eba7f7acde48001122\n")
    cfg = DatasetConfig(
        name="2wiki",
        format="2wiki",
        dev_path=str(fixtures_dir / "2wiki" / "dev_sample.json"),
        aliases_path=str(fixtures_dir / "2wiki" / "id_aliases.json"),
        dev_ids_path=str(ids),
    )
    assert "American" in load_questions(cfg, "dev")[0].aliases


def test_load_questions_toy_dispatch():
    pytest.importorskip("steper.data.toy")
    cfg = DatasetConfig(name="toy", format="toy", seed=3, n_train=12, n_dev=4, n_test=5, hops=[2, 3])
    assert len(load_questions(cfg, "dev")) == 4
    assert len(load_questions(cfg, "test")) == 5
