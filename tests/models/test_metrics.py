"""conlleval entity scores and classification metrics against hand-computed examples."""

import numpy as np
import pytest

from seqmodels.core.errors import DataError, ShapeError
from seqmodels.models.metrics import (Entity, classification_scores, confusion_matrix, entities, entity_scores,
                                      format_classification_report, format_entity_report, is_bio, split_tag,
                                      token_accuracy)


# ------------------------------------------------------------------------------ chunk boundaries
@pytest.mark.parametrize("tags, expected", [
    (["O", "O"], []),
    (["B-per"], [("per", 0, 1)]),
    (["B-per", "I-per", "I-per", "O"], [("per", 0, 3)]),
    # B- after B- of the same type starts a new chunk
    (["B-per", "B-per"], [("per", 0, 1), ("per", 1, 2)]),
    # I- without B- starts a chunk (conlleval), both at the start and after O
    (["I-loc", "I-loc", "O", "I-loc"], [("loc", 0, 2), ("loc", 3, 4)]),
    # a type change inside I- tags ends one chunk and starts another
    (["B-per", "I-loc", "I-loc"], [("per", 0, 1), ("loc", 1, 3)]),
    (["B-per", "I-per", "B-loc", "I-loc", "O", "B-org"], [("per", 0, 2), ("loc", 2, 4), ("org", 5, 6)]),
    # chunks run to the end of the sentence; hyphens inside the type are part of it
    (["O", "B-creative-work", "I-creative-work"], [("creative-work", 1, 3)]),
])
def test_entities_follow_conlleval_rules(tags, expected):
    assert entities(tags) == [Entity(*e) for e in expected]


def test_split_tag_and_bad_tags():
    assert split_tag("O") == ("O", "")
    assert split_tag("I-a-b") == ("I", "a-b")
    for bad in ["PER", "X-per", "B-", "b-per", ""]:
        with pytest.raises(DataError, match="expected 'O', 'B-<type>' or 'I-<type>'"):
            split_tag(bad)
    assert is_bio(["O", "B-x", "I-y"]) and not is_bio(["O", "NOUN"])


# ------------------------------------------------------------------------------ entity scores
def test_entity_scores_by_hand():
    gold = [["B-per", "I-per", "O", "B-loc"],          # per(0,2) loc(3,4)
            ["B-org", "O", "B-per"]]                    # org(0,1) per(2,3)
    pred = [["B-per", "I-per", "O", "B-org"],          # per(0,2) correct; org(3,4) type mismatch
            ["I-org", "O", "B-per", ]]                  # org(0,1) correct (I- without B-); per correct
    s = entity_scores(gold, pred)
    # correct 3, predicted 4, gold 4 -> P = R = F1 = 0.75
    assert (s["correct"], s["predicted"], s["gold"]) == (3, 4, 4)
    assert s["precision"] == pytest.approx(0.75) and s["recall"] == pytest.approx(0.75)
    assert s["f1"] == pytest.approx(0.75)
    assert s["token_accuracy"] == pytest.approx(5 / 7)     # I-org vs B-org and B-org vs B-loc differ
    assert s["per_type"]["loc"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "correct": 0, "predicted": 0,
                                    "gold": 1}
    assert s["per_type"]["org"]["precision"] == pytest.approx(0.5)   # 1 of 2 predicted org correct
    assert s["per_type"]["org"]["recall"] == pytest.approx(1.0)
    assert s["per_type"]["org"]["f1"] == pytest.approx(2 / 3)
    assert s["per_type"]["per"]["f1"] == pytest.approx(1.0)


def test_boundary_errors_are_wrong_entities():
    gold = [["B-per", "I-per", "I-per"]]
    # too short, too long, split in two: none counts
    for pred in (["B-per", "I-per", "O"], ["B-per", "I-per", "I-per"][:2] + ["B-per"], ["B-per", "B-per", "I-per"]):
        s = entity_scores(gold, [pred])
        assert s["correct"] == 0 and s["gold"] == 1
    s = entity_scores(gold, [["B-per", "B-per", "I-per"]])
    assert s["predicted"] == 2 and s["precision"] == 0.0 and s["f1"] == 0.0


def test_unequal_precision_recall_f1():
    gold = [["B-a", "O", "B-a", "O", "B-b"]]     # 3 gold
    pred = [["B-a", "O", "O", "O", "O"]]         # 1 predicted, correct
    s = entity_scores(gold, pred)
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))


def test_chunks_do_not_cross_sentences():
    s = entity_scores([["O", "B-x"], ["I-x", "O"]], [["O", "B-x"], ["I-x", "O"]])
    assert s["gold"] == 2 and s["correct"] == 2


def test_no_entities_gives_zero_not_nan():
    s = entity_scores([["O"]], [["O"]])
    assert s["f1"] == 0.0 and s["precision"] == 0.0 and s["token_accuracy"] == 1.0


def test_entity_score_errors():
    with pytest.raises(ShapeError, match="sentence 0 has 2 gold tags but 1"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ShapeError, match="1 gold sequences but 2"):
        entity_scores([["O"]], [["O"], ["O"]])
    with pytest.raises(DataError, match="sentence 1: tag 'PER'"):
        entity_scores([["O"], ["PER"]], [["O"], ["O"]])


def test_token_accuracy():
    assert token_accuracy([["a", "b"], ["c"]], [["a", "x"], ["c"]]) == pytest.approx(2 / 3)


def test_entity_report_text():
    text = format_entity_report(entity_scores([["B-per", "O"]], [["B-per", "O"]]))
    assert "F1 100.00" in text and "per:" in text


# ------------------------------------------------------------------------------ classification
def test_confusion_and_per_class_by_hand():
    y = ["pos", "pos", "pos", "neg", "neg", "neu"]
    p = ["pos", "neg", "pos", "neg", "pos", "neg"]
    labels = ["neg", "neu", "pos"]
    m = confusion_matrix(y, p, labels)
    np.testing.assert_array_equal(m, [[1, 0, 1], [1, 0, 0], [1, 0, 2]])
    s = classification_scores(y, p, labels)
    assert s["accuracy"] == pytest.approx(3 / 6)
    # neg: predicted 3 (1 right), true 2 -> P 1/3, R 1/2, F1 0.4
    assert s["per_class"]["neg"]["precision"] == pytest.approx(1 / 3)
    assert s["per_class"]["neg"]["recall"] == pytest.approx(1 / 2)
    assert s["per_class"]["neg"]["f1"] == pytest.approx(0.4)
    # pos: predicted 3 (2 right), true 3 -> 2/3 each
    assert s["per_class"]["pos"]["f1"] == pytest.approx(2 / 3)
    assert s["per_class"]["neu"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["macro_f1"] == pytest.approx((0.4 + 0 + 2 / 3) / 3)
    assert s["confusion"] == m.tolist()
    text = format_classification_report(s)
    assert "accuracy 50.00%" in text and "neu" in text


def test_classification_errors():
    with pytest.raises(DataError, match="example 1: label 'x'"):
        confusion_matrix(["a", "x"], ["a", "a"], ["a", "b"])
    with pytest.raises(ShapeError):
        classification_scores(["a"], ["a", "b"], ["a", "b"])
