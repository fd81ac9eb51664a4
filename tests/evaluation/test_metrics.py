"""EM / F1 / Acc, answer extraction and aggregation, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from steper.evaluation import METRICS, aggregate, extract_answer, normalize_answer, score


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  An   apple,  a pear and THE plum! ", "apple pear and plum"),
        ("U.S.A.", "usa"),
        ("Theatre of the Absurd", "theatre of absurd"),  # "the" only as a whole word
        ("Anna's a-ha", "annas aha"),
        ("the", ""),
        ("", ""),
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_exact_match_ignores_case_articles_punctuation():
    assert score("the Eiffel Tower.", ["Eiffel tower"]) == {"em": 1.0, "f1": 1.0, "acc": 1.0}
    assert score("Eiffel-Tower", ["Eiffel Tower"])["em"] == 0.0  # the hyphen is removed, not a space


def test_partial_f1_by_hand():
    # pred tokens: eiffel tower in paris (4); gold: eiffel tower (2); common 2 -> P=2/4, R=1, F1=2/3
    s = score("the Eiffel tower in Paris", ["Eiffel Tower"])
    assert s["em"] == 0.0
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["acc"] == 1.0  # containment: Acc but not EM
    # pred: paris (1); gold: paris france (2); P=1, R=1/2, F1=2/3
    assert score("Paris", ["Paris, France"])["f1"] == pytest.approx(2 / 3)
    assert score("Paris", ["Paris, France"])["acc"] == 0.0
    # repeated tokens count with multiplicity: pred "new new york" vs "new york": common 2, P=2/3, R=1, F1=0.8
    assert score("new new york", ["New York"])["f1"] == pytest.approx(0.8)
    # no common token
    assert score("London", ["Paris"]) == {"em": 0.0, "f1": 0.0, "acc": 0.0}


def test_yes_no_f1_rule():
    assert score("yes", ["yes"]) == {"em": 1.0, "f1": 1.0, "acc": 1.0}
    assert score("Yes.", ["yes"])["em"] == 1.0
    # Token overlap would give F1 = 2/3 ("yes" in both), but yes/no score only on exact match.
    assert score("yes it is", ["yes"])["f1"] == 0.0
    assert score("yes", ["yes it is"])["f1"] == 0.0
    assert score("no", ["yes"])["f1"] == 0.0
    assert score("noanswer", ["no answer"])["f1"] == 0.0
    # Acc is still containment.
    assert score("yes it is", ["yes"])["acc"] == 1.0


def test_max_over_aliases():
    s = score("NYC", ["New York City", "NYC"])
    assert s == {"em": 1.0, "f1": 1.0, "acc": 1.0}
    # Each metric takes its own max: F1 from the first alias, Acc from the second.
    s = score("big apple city", ["Big Apple City Town", "apple"])
    assert s["em"] == 0.0
    assert s["f1"] == pytest.approx(2 * 1 * 0.75 / 1.75)  # P=3/3, R=3/4
    assert s["acc"] == 1.0


def test_accuracy_is_substring_of_normalized_strings():
    assert score("It was the Eiffel Tower!", ["eiffel tower"])["acc"] == 1.0
    assert score("eiffel", ["Eiffel Tower"])["acc"] == 0.0  # gold must be inside the prediction
    assert score("Parisian", ["Paris"])["acc"] == 1.0  # plain substring (documented)
    assert score("anything at all", ["The"])["acc"] == 0.0  # empty normalized gold never counts
    assert score("anything", ["", "a"]) == {"em": 0.0, "f1": 0.0, "acc": 0.0}


@pytest.mark.parametrize("pred", [None, "", "   ", "the", "?!"])
def test_empty_prediction_scores_zero(pred):
    assert score(pred, ["Paris", "the"]) == {"em": 0.0, "f1": 0.0, "acc": 0.0}


def test_no_golds_scores_zero():
    assert score("Paris", []) == {"em": 0.0, "f1": 0.0, "acc": 0.0}
    assert score("Paris", [None, "Paris"])["em"] == 1.0


@pytest.mark.parametrize(
    "text, answer",
    [
        ("So the answer is: Paris.", "Paris"),
        ("so the answer is Paris", "Paris"),
        ("SO THE ANSWER IS: Paris ", "Paris"),
        ("The first answer is London. So the answer is: Paris.", "Paris"),
        ('So the answer is: "Dresavo Pint".', "Dresavo Pint"),
        ("So the answer is: \u201cDresavo Pint.\u201d", "Dresavo Pint"),
        ("So the answer is: 'yes'", "yes"),
        ("So the final answer is: Mirel Okana", "Mirel Okana"),
        ("Follow up: Who?\nIntermediate answer: X.\nSo the final answer is: Berlin.", "Berlin"),
        ("So the answer is: Washington, D.C.", "Washington, D.C"),
        ("So the answer is: 1998.\nQ: Who directed it?", "1998"),
        ("The answer isn't obvious. So the answer is: no.", "no"),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize(
    "text",
    [
        "Zorvak Telu was directed by Mirel Okana.",
        "",
        None,
        "The answer isn't obvious.",
        "So the answer is:",
        "So the answer is: .",
        "Their answers differ.",
    ],
)
def test_extract_answer_none(text):
    assert extract_answer(text) is None


def test_extracted_answer_scores():
    assert score(extract_answer("So the answer is: The Eiffel Tower."), ["Eiffel Tower"])["em"] == 1.0


def test_aggregate():
    rows = [
        score("Paris", ["Paris"]),
        score("the Eiffel tower in Paris", ["Eiffel Tower"]),
        score(None, ["x"]),
    ]
    agg = aggregate(rows)
    assert agg["count"] == 3
    assert agg["em"] == pytest.approx(100 / 3)
    assert agg["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert agg["acc"] == pytest.approx(200 / 3)
    assert aggregate([]) == {"em": 0.0, "f1": 0.0, "acc": 0.0, "count": 0}
    # Rows can carry other fields.
    assert aggregate([{"em": 1.0, "f1": 0.5, "acc": True, "qid": "q1"}])["acc"] == 100.0


def test_registry_plugs_in_new_metric(monkeypatch):
    monkeypatch.setitem(METRICS, "len_match", lambda p, g: float(len(p) == len(g)))
    s = score("abc", ["xyz", "toolong"])
    assert s["len_match"] == 1.0 and set(s) == {"em", "f1", "acc", "len_match"}
    assert aggregate([s, {**s, "len_match": 0.0}])["len_match"] == 50.0
