"""`load_questions` on bad or partial inputs: an empty split file, the README's 2Wiki example without
an alias file, the alias file found beside the question file."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from steper.config import DatasetConfig
from steper.data import load_questions
from steper.errors import SteperError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("fmt", "name", "content"),
    [
        ("hotpot", "hotpot_train_v1.1.json", ""),
        ("hotpot", "hotpot_train_v1.1.json", "[]\n"),
        ("2wiki", "train.json", ""),
        ("musique", "musique_ans_v1.0_train.jsonl", ""),
        ("ircot", "train.jsonl", "\n"),
    ],
)
def test_empty_split_file_names_the_file_the_split_and_the_fix(tmp_path, fmt, name, content):
    path = tmp_path / name
    path.write_text(content)
    cfg = DatasetConfig(name=fmt, format=fmt, train_path=str(path))
    with pytest.raises(SteperError) as e:
        load_questions(cfg, "train")
    msg = str(e.value)
    assert f"no train questions in {path} (dataset.train_path)" in msg
    assert "the file has no rows" in msg and "Point dataset.train_path at the file" in msg


def test_empty_dev_file_names_the_dev_split(tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text("")
    cfg = DatasetConfig(name="musique", format="musique", dev_path=str(dev), strict=False)
    with pytest.raises(
        SteperError, match=r"no test questions in .*dev\.jsonl \(dataset\.dev_path\).*skipped"
    ):
        load_questions(cfg, "test")


def test_readme_2wiki_example_works_without_an_alias_file(tmp_path, fixtures_dir, caplog):
    """`dataset=2wiki` with the release's train.json/dev.json under paths.data_dir and no id_aliases.json."""
    (tmp_path / "2wiki").mkdir()
    for split in ("train", "dev"):
        shutil.copy(fixtures_dir / "2wiki" / "dev_sample.json", tmp_path / "2wiki" / f"{split}.json")
    root = OmegaConf.create(
        {
            "paths": {"data_dir": str(tmp_path)},
            "dataset": OmegaConf.load(REPO_ROOT / "conf/dataset/2wiki.yaml"),
        }
    )
    with caplog.at_level(logging.WARNING):
        qs = load_questions(root.dataset, "train")
    assert len(qs) == 5 and all(q.golds == [q.answer] for q in qs)
    warned = [r for r in caplog.records if "aliases raise EM" in r.getMessage()]
    assert len(warned) == 1 and "train.json" in warned[0].getMessage()


def test_2wiki_alias_file_beside_the_question_file_is_used_by_default(fixtures_dir):
    cfg = DatasetConfig(
        name="2wiki", format="2wiki", train_path=str(fixtures_dir / "2wiki" / "dev_sample.json")
    )
    assert "American" in load_questions(cfg, "train")[3].aliases


def test_2wiki_alias_path_given_but_missing_is_an_error(tmp_path, fixtures_dir):
    cfg = DatasetConfig(
        name="2wiki",
        format="2wiki",
        train_path=str(fixtures_dir / "2wiki" / "dev_sample.json"),
        aliases_path=str(tmp_path / "id_aliases.json"),
    )
    with pytest.raises(SteperError, match=r"aliases_path = .*id_aliases\.json not found"):
        load_questions(cfg, "train")


def test_dataset_config_of_another_type_is_a_clear_error():
    with pytest.raises(SteperError, match=r"expected a DictConfig, a DatasetConfig or a dict, got list"):
        load_questions([("name", "toy")], "train")
    assert json.dumps(load_questions({"name": "toy", "format": "toy", "n_train": 2}, "train")[0].to_dict())
