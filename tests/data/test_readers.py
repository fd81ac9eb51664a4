"""Readers of each official format → the one schema; bad input gives errors naming file, row and field."""

from __future__ import annotations

import json
import logging
import warnings

import pytest

from steper.data.readers import (
    read_2wiki,
    read_hotpot,
    read_hotpot_hf,
    read_ircot,
    read_musique,
    relation_sentence,
    step_sentence,
    substitute_refs,
)
from steper.errors import SteperError


@pytest.fixture
def hotpot_path(fixtures_dir):
    return fixtures_dir / "hotpot" / "hotpot_dev_distractor_sample.json"


@pytest.fixture
def musique_path(fixtures_dir):
    return fixtures_dir / "musique" / "musique_ans_v1.0_dev_sample.jsonl"


# ---------------------------------------------------------------------------------------------- HotpotQA


def test_hotpot_comparison_yes_no(hotpot_path):
    qs = read_hotpot(hotpot_path)
    assert len(qs) == 4
    q = qs[0]
    assert (q.qid, q.answer, q.qtype, q.hops, q.dataset) == (
        "5a8b57f25542995d1e6f1371",
        "yes",
        "comparison",
        2,
        "hotpot",
    )
    assert q.question == "Were Scott Derrickson and Ed Wood of the same nationality?"
    assert [p.title for p in q.contexts] == [
        "Ed Wood (film)",
        "Scott Derrickson",
        "Woodson, Arkansas",
        "Ed Wood",
    ]
    assert q.supporting_titles == ["Scott Derrickson", "Ed Wood"]
    # sentences joined with "" (they carry their own leading space) then stripped, as IRCoT does
    assert q.contexts[1].text == (
        "Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer. "
        'He lives in Los Angeles, California. He is best known for directing horror films such as "Sinister", '
        '"The Exorcism of Emily Rose", and "Deliver Us From Evil".'
    )
    assert [(c.title, c.sentence) for c in q.chain] == [
        (
            "Scott Derrickson",
            "Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer.",
        ),
        (
            "Ed Wood",
            "Edward Davis Wood Jr. (October 10, 1924 \u2013 December 10, 1978) was an American filmmaker, "
            "actor, writer, producer, and director.",
        ),
    ]


def test_hotpot_bridge_chain_follows_supporting_facts(hotpot_path):
    q = read_hotpot(hotpot_path)[1]
    assert q.answer == "Chief of Protocol" and q.qtype == "bridge"
    assert q.supporting_titles == ["Kiss and Tell (1945 film)", "Shirley Temple"]
    assert [c.title for c in q.chain] == ["Kiss and Tell (1945 film)", "Shirley Temple", "Shirley Temple"]
    assert q.chain[2].sentence.startswith(
        "As an adult, she was named United States ambassador"
    )  # leading space gone
    assert q.chain[2].sentence.endswith("Chief of Protocol of the United States.")


def test_hotpot_hf_layout_matches_official(fixtures_dir, hotpot_path, tmp_path):
    official = read_hotpot(hotpot_path)[:2]
    from_json = read_hotpot_hf(
        fixtures_dir / "hotpot_hf" / "validation_sample.jsonl", cache_dir=str(tmp_path / "c")
    )
    assert [q.to_dict() for q in from_json] == [q.to_dict() for q in official]

    # the same rows as a parquet file written by `datasets` itself (local, no download)
    import datasets

    rows = [json.loads(line) for line in open(fixtures_dir / "hotpot_hf" / "validation_sample.jsonl")]
    parquet = tmp_path / "validation-00000-of-00001.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    from_parquet = read_hotpot_hf(parquet, cache_dir=str(tmp_path / "c"))
    assert [q.to_dict() for q in from_parquet] == [q.to_dict() for q in official]


def test_hotpot_out_of_range_supporting_fact_leaves_step_out(tmp_path, hotpot_path):
    rows = json.loads(hotpot_path.read_text())[:1]
    rows[0]["supporting_facts"].append(["Ed Wood", 7])
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(rows))
    q = read_hotpot(p)[0]
    assert len(q.chain) == 2 and q.supporting_titles == ["Scott Derrickson", "Ed Wood"]


def test_hotpot_reader_on_json_lines_says_so_and_what_to_do(tmp_path, fixtures_dir, hotpot_path):
    hf_rows = fixtures_dir / "hotpot_hf" / "validation_sample.jsonl"
    with pytest.raises(SteperError) as e:
        read_hotpot(hf_rows)
    msg = str(e.value)
    assert f"{hf_rows} is JSON Lines" in msg and "Extra data" not in msg
    assert "dataset.format=hotpot expects one JSON array of rows" in msg and "hotpot_train_v1.1.json" in msg
    assert msg.endswith("set dataset.format=hotpot_hf.")
    # official rows, one a line: no format reads them, so the fix is to convert the file
    official = tmp_path / "hotpot_dev.jsonl"
    official.write_text("".join(json.dumps(r) + "\n" for r in json.loads(hotpot_path.read_text())))
    with pytest.raises(SteperError, match=r"is JSON Lines.*No dataset\.format reads.*convert the file"):
        read_hotpot(official)


# ---------------------------------------------------------------------------------------------- 2Wiki


def test_2wiki_with_aliases(fixtures_dir):
    qs = read_2wiki(
        fixtures_dir / "2wiki" / "dev_sample.json", aliases_path=fixtures_dir / "2wiki" / "id_aliases.json"
    )
    assert [q.qtype for q in qs] == [
        "compositional",
        "comparison",
        "bridge_comparison",
        "compositional",
        "inference",
    ]
    assert [q.hops for q in qs] == [2, 2, 4, 2, 2]

    q = qs[0]
    assert q.answer == "Ma\u0142gorzata Braunek"
    assert q.aliases == ["Malgorzata Braunek"]  # the answer itself is not repeated
    assert q.supporting_titles == ["Polish-Russian War (film)", "Xawery \u017bu\u0142awski"]
    assert q.contexts[2].text == (  # sentences joined with " ", as IRCoT's processing does
        "Xawery \u017bu\u0142awski (born 22 December 1971 in Warsaw) is a Polish film director. "
        "In 1995 he graduated National Film School in \u0141\u00f3d\u017a. "
        "He is the son of actress Ma\u0142gorzata Braunek and director Andrzej \u017bu\u0142awski."
    )
    assert [c.sentence for c in q.chain] == [
        "The director of Polish-Russian War is Xawery \u017bu\u0142awski.",
        "The mother of Xawery \u017bu\u0142awski is Ma\u0142gorzata Braunek.",
    ]
    assert q.chain[0].triple == ["Polish-Russian War", "director", "Xawery \u017bu\u0142awski"]
    assert q.chain[0].answer == "Xawery \u017bu\u0142awski"
    assert [c.title for c in q.chain] == ["Polish-Russian War (film)", "Xawery \u017bu\u0142awski"]

    assert qs[1].aliases == []  # no answer_id in the row
    assert qs[2].aliases == []  # answer_id "" (not in the alias file)
    assert [c.sentence for c in qs[2].chain][2] == "Stuart Rosenberg was born on August 11, 1927."
    assert qs[3].golds == [
        "United States of America",
        "USA",
        "United States",
        "U.S.",
        "American",
    ]  # + demonyms
    assert qs[3].chain[1].sentence == "Clarence Brown is a citizen of United States of America."
    # step titles: the supporting paragraph named by the subject, else the one whose text holds it
    assert [c.title for c in qs[1].chain] == ["Blind Shaft", "The Mask of Fu Manchu"]  # case differs
    assert [c.title for c in qs[2].chain][:2] == ["Move (1970 film)", "The Rains Came"]  # parenthetical
    assert [c.title for c in qs[4].chain] == [
        None,
        "Prince Philip, Duke of Edinburgh",
    ]  # ambiguous, then by text
    assert qs[4].chain[1].sentence == "The father of Prince Philip is Prince Andrew of Greece and Denmark."


def test_2wiki_without_alias_file(fixtures_dir, caplog):
    with caplog.at_level(logging.WARNING):
        qs = read_2wiki(fixtures_dir / "2wiki" / "dev_sample.json")
    assert all(q.aliases == [] for q in qs)
    assert [r.getMessage() for r in caplog.records if "aliases raise EM" in r.getMessage()]


def test_relation_sentence_templates_and_fallback():
    assert relation_sentence("Film X", "director", "Y") == "The director of Film X is Y."
    assert relation_sentence("A", "place of birth", "Paris") == "A was born in Paris."
    assert relation_sentence("A", "spouse", "B") == "A is married to B."
    assert relation_sentence("A", "record producer", "B") == "The record producer of A is B."


# ---------------------------------------------------------------------------------------------- MuSiQue


def test_musique_reads_decomposition(musique_path):
    qs = read_musique(musique_path)
    assert [q.qid for q in qs] == ["2hop__460946_294723", "2hop__252311_366220", "3hop1__9285_5188_23307"]
    assert [(q.hops, q.qtype) for q in qs] == [(2, "2hop"), (2, "2hop"), (3, "3hop1")]
    q = qs[2]
    assert (q.answer, q.aliases) == ("River Thames", ["Thames", "the Thames"])
    assert q.supporting_titles == ["Hammersmith", "Without Your Love (Roger Daltrey song)", "Roger Daltrey"]
    assert [(c.question, c.answer, c.title) for c in q.chain] == [
        ("Without Your Love >> performer", "Roger Daltrey", "Without Your Love (Roger Daltrey song)"),
        ("Where was Roger Daltrey born?", "Hammersmith", "Roger Daltrey"),  # "#1" substituted
        ("What is the name of the river flowing through Hammersmith?", "River Thames", "Hammersmith"),
    ]
    assert [c.sentence for c in q.chain] == [
        "Without Your Love is performed by Roger Daltrey.",
        "Roger Daltrey was born in Hammersmith.",
        "The name of the river flowing through Hammersmith is River Thames.",
    ]
    assert [c.sentence for c in qs[1].chain] == [
        "The Collegian is owned by Houston Baptist University.",
        "Houston Baptist University was founded in 1960.",
    ]
    assert qs[0].chain[1].sentence == "Steve Hillage is married to Miquette Giraudy."


def test_musique_unanswerable_rows_left_out(tmp_path, musique_path):
    lines = musique_path.read_text().splitlines()
    row = json.loads(lines[0])
    row["answerable"] = False
    p = tmp_path / "full.jsonl"
    p.write_text("\n".join([json.dumps(row), lines[1]]) + "\n")
    assert [q.qid for q in read_musique(p)] == ["2hop__252311_366220"]
    assert len(read_musique(p, answerable_only=False)) == 2


def test_step_sentence_rules():
    assert step_sentence("Who is the spouse of the Green performer?", "Miquette Giraudy") == (
        "The spouse of the Green performer is Miquette Giraudy."
    )
    assert step_sentence("when was the Eiffel Tower built?", "1889") == "The Eiffel Tower was built in 1889."
    assert step_sentence("Who founded Apple?", "Steve Jobs") == "Steve Jobs founded Apple."
    assert step_sentence("In what county is Dearborn located?", "Wayne County") == (
        "In what county is Dearborn located: Wayne County."
    )
    assert step_sentence("What country is Paris in?", "France") == "What country is Paris in: France."
    for s in ("When did Paris fall?", "Who is X?", "A >> country"):
        assert "answer is" not in step_sentence(s, "Z")  # never the loop's stop phrase
    assert (
        substitute_refs("Who is the mayor of #2 in #1?", {1: "1990", 2: "Paris"})
        == "Who is the mayor of Paris in 1990?"
    )


# ---------------------------------------------------------------------------------------------- IRCoT


def test_ircot_processed(fixtures_dir):
    qs = read_ircot(fixtures_dir / "ircot" / "dev_subsampled_sample.jsonl", dataset="hotpot")
    assert [q.qid for q in qs] == [
        "5a8b57f25542995d1e6f1371",
        "2hop__252311_366220",
        "5add363c5542990dbb2f7dc8",
    ]
    q0, q1, q2 = qs
    assert (q0.answer, q0.aliases, q0.qtype, q0.hops, q0.dataset) == ("yes", [], "comparison", 2, "hotpot")
    assert q0.supporting_titles == ["Scott Derrickson", "Ed Wood"]
    assert q0.chain == []
    assert (q1.answer, q1.aliases, q1.hops, q1.qtype) == (
        "1960",
        ["in 1960"],
        2,
        "2hop",
    )  # other spans = aliases
    assert [c.sentence for c in q1.chain] == [
        "The Collegian is owned by Houston Baptist University.",
        "Houston Baptist University was founded in 1960.",
    ]
    assert q2.answer == "20"  # the `number` field
    assert [(c.title, c.sentence) for c in q2.chain] == [  # "So the answer is" step left out
        (
            "Ryu Hye-young",
            "The South Korean television series in which Ryu Hye-young played Bo-ra is Reply 1988.",
        ),
        ("Reply 1988", "The number of episodes Reply 1988 has is 20."),
    ]


# ---------------------------------------------------------------------------------------------- bad input


def test_missing_file_names_path_and_readme(tmp_path):
    with pytest.raises(SteperError, match=r"nope\.json.*Real datasets"):
        read_hotpot(tmp_path / "nope.json")


def test_missing_field_names_file_row_and_field(tmp_path, hotpot_path):
    rows = json.loads(hotpot_path.read_text())
    del rows[2]["supporting_facts"]
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(rows))
    with pytest.raises(SteperError) as e:
        read_hotpot(p)
    msg = str(e.value)
    assert str(p) in msg and "row 2" in msg and "5a7a06935542990198eaf050" in msg
    assert "'supporting_facts'" in msg and "strict=false" in msg


def test_missing_field_2wiki_and_ircot(tmp_path, fixtures_dir):
    rows = json.loads((fixtures_dir / "2wiki" / "dev_sample.json").read_text())
    rows[1]["evidences"][0] = ["only", "two"]
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(rows))
    with pytest.raises(SteperError, match=r"row 1 .*'evidences\[0\]'"):
        read_2wiki(p)

    lines = (fixtures_dir / "ircot" / "dev_subsampled_sample.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    del row["contexts"][0]["title"]
    p = tmp_path / "ircot.jsonl"
    p.write_text("\n".join([lines[0], json.dumps(row)]) + "\n")
    with pytest.raises(SteperError, match=r"ircot\.jsonl: line 2 .*'contexts\[0\]\.title'"):
        read_ircot(p)


def test_malformed_line_names_file_and_line(tmp_path, musique_path):
    lines = musique_path.read_text().splitlines()
    p = tmp_path / "dev.jsonl"
    p.write_text("\n".join([lines[0], '{"id": "2hop__1", "question": ', lines[2]]) + "\n")
    with pytest.raises(SteperError, match=r"dev\.jsonl:2: malformed JSON"):
        read_musique(p)


def test_non_strict_skips_and_counts(tmp_path, musique_path):
    lines = musique_path.read_text().splitlines()
    bad = json.loads(lines[1])
    del bad["question_decomposition"][1]["answer"]
    p = tmp_path / "dev.jsonl"
    p.write_text("\n".join([lines[0], "not json", json.dumps(bad), lines[2]]) + "\n")
    with pytest.warns(UserWarning, match=r"skipped 2 of 4 rows of .*dev\.jsonl") as w:
        qs = read_musique(p, strict=False)
    assert [q.qid for q in qs] == ["2hop__460946_294723", "3hop1__9285_5188_23307"]
    msg = str(w[0].message)
    assert "line 2: malformed JSON" in msg
    assert "line 3 (id '2hop__252311_366220'): field 'question_decomposition[1].answer': missing" in msg


def test_non_strict_json_list(tmp_path, hotpot_path):
    rows = json.loads(hotpot_path.read_text())
    rows[0]["context"][1] = ["Scott Derrickson", "not a list"]
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(rows))
    with pytest.warns(UserWarning, match=r"skipped 1 of 4 rows"):
        assert len(read_hotpot(p, strict=False)) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_hotpot(hotpot_path, strict=False)) == 4  # a clean file warns nothing


def test_a_folder_given_as_a_dataset_file_is_one_clear_error(tmp_path):
    from steper.data import read_questions
    from steper.errors import SteperError

    with pytest.raises(SteperError, match=r"is a folder, not a dataset file: point the dataset path at the file"):
        read_questions(tmp_path, "hotpot")
