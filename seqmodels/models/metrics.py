"""Evaluation metrics of the tagger and the classifier: conlleval entity scores, accuracy, confusion.

Entities (chunks) follow the rules of the CoNLL shared tasks' ``conlleval`` script for BIO / IOB2 tags
(``O``, ``B-<type>``, ``I-<type>``), read left to right within one sentence:

* a chunk **starts** at ``B-x``; at ``I-x`` after ``O`` or after a tag of another type (an ``I-``
  without its ``B-`` still starts a chunk, as in conlleval);
* a chunk **ends** before ``O``, before any ``B-``, before a tag of another type, and at the end of the
  sentence (chunks never cross sentences).

A predicted chunk is correct only if a gold chunk has the same type, start and end. With ``C`` correct,
``P`` predicted and ``G`` gold chunks::

    precision = C / P,   recall = C / G,   F1 = 2 · precision · recall / (precision + recall)

(0 when a denominator is 0). Token accuracy counts every token, ``O`` included (conlleval's
"accuracy"). Classification metrics: accuracy, per-class precision/recall/F1/support, macro averages
and the confusion matrix ``M[i, j]`` = number of examples of true class ``i`` predicted as ``j``.

>>> entities(["B-per", "I-per", "O", "I-loc", "B-loc"])
[Entity(type='per', start=0, end=2), Entity(type='loc', start=3, end=4), Entity(type='loc', start=4, end=5)]
>>> s = entity_scores([["B-per", "I-per", "O"]], [["B-per", "O", "O"]])
>>> s["precision"], s["recall"], s["f1"], round(s["token_accuracy"], 4)
(0.0, 0.0, 0.0, 0.6667)
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple, Sequence

import numpy as np

from ..core.errors import DataError, ShapeError

__all__ = ["Entity", "split_tag", "is_bio", "entities", "entity_scores", "token_accuracy", "accuracy",
           "confusion_matrix", "classification_scores", "format_entity_report",
           "format_classification_report"]


class Entity(NamedTuple):
    """A chunk: its ``type`` and the token span ``[start, end)`` within its sentence."""

    type: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-person"`` -> ``("B", "person")``; ``"O"`` -> ``("O", "")``. Types may contain ``-``.

    Raises :class:`DataError` for anything else (e.g. ``"X-per"``, ``"B-"``, ``"PER"``).
    """
    if tag == "O":
        return "O", ""
    if isinstance(tag, str) and len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    raise DataError(f"tag {tag!r}: expected 'O', 'B-<type>' or 'I-<type>' (BIO / IOB2 tags)")


def is_bio(tags) -> bool:
    """True when every tag in ``tags`` is ``O``, ``B-<type>`` or ``I-<type>``."""
    try:
        for t in tags:
            split_tag(t)
    except DataError:
        return False
    return True


def entities(tags: Sequence[str]) -> list[Entity]:
    """The chunks of one sentence's BIO tags, by the conlleval rules (see the module docstring)."""
    found: list[Entity] = []
    start, kind = None, ""
    for i, tag in enumerate(tags):
        prefix, typ = split_tag(tag)
        if start is not None and (prefix in "OB" or typ != kind):
            found.append(Entity(kind, start, i))           # the open chunk ends before tag i
            start = None
        if prefix != "O" and start is None:
            start, kind = i, typ                           # B-x, or I-x not continuing a chunk of x
    if start is not None:
        found.append(Entity(kind, start, len(tags)))
    return found


def _prf(correct: int, predicted: int, gold: int) -> dict:
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "correct": correct, "predicted": predicted, "gold": gold}


def _check_pairs(gold, pred, what: str) -> None:
    if len(gold) != len(pred):
        raise ShapeError(f"{what}: {len(gold)} gold sequences but {len(pred)} predicted ones")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ShapeError(f"{what}: sentence {i} has {len(g)} gold tags but {len(p)} predicted tags")


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag (over all sentences)."""
    _check_pairs(gold, pred, "token_accuracy")
    n = sum(len(g) for g in gold)
    hit = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p))
    return hit / n if n else 0.0


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """conlleval scores over sentences of BIO tags.

    Args:
        gold, pred: one list of tags per sentence, equal lengths.

    Returns:
        ``{"precision", "recall", "f1", "correct", "predicted", "gold", "token_accuracy", "tokens",
        "per_type": {type: {"precision", "recall", "f1", "correct", "predicted", "gold"}}}``;
        precision/recall/F1 are fractions in [0, 1].
    """
    _check_pairs(gold, pred, "entity_scores")
    correct, n_pred, n_gold = Counter(), Counter(), Counter()
    for i, (g, p) in enumerate(zip(gold, pred)):
        try:
            eg, ep = set(entities(g)), set(entities(p))
        except DataError as err:
            raise DataError(f"sentence {i}: {err}") from None
        n_gold.update(e.type for e in eg)
        n_pred.update(e.type for e in ep)
        correct.update(e.type for e in eg & ep)
    out = _prf(sum(correct.values()), sum(n_pred.values()), sum(n_gold.values()))
    out["token_accuracy"] = token_accuracy(gold, pred)
    out["tokens"] = sum(len(g) for g in gold)
    out["per_type"] = {t: _prf(correct[t], n_pred[t], n_gold[t]) for t in sorted(set(n_gold) | set(n_pred))}
    return out


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Fraction of equal labels."""
    if len(y_true) != len(y_pred):
        raise ShapeError(f"accuracy: {len(y_true)} true labels but {len(y_pred)} predictions")
    return sum(a == b for a, b in zip(y_true, y_pred)) / len(y_true) if len(y_true) else 0.0


def confusion_matrix(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> np.ndarray:
    """``(C, C)`` int64 counts: row = true label, column = predicted label, in the order of ``labels``."""
    if len(y_true) != len(y_pred):
        raise ShapeError(f"confusion_matrix: {len(y_true)} true labels but {len(y_pred)} predictions")
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), np.int64)
    for k, (a, b) in enumerate(zip(y_true, y_pred)):
        for lab in (a, b):
            if lab not in index:
                raise DataError(f"example {k}: label {lab!r} is not one of the labels {list(labels)}")
        m[index[a], index[b]] += 1
    return m


def classification_scores(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro averages and the confusion matrix.

    Returns:
        ``{"accuracy", "macro_precision", "macro_recall", "macro_f1", "n", "labels",
        "per_class": {label: {"precision", "recall", "f1", "support"}}, "confusion": [[...]]}``
        (the confusion matrix as nested lists, rows = true labels).
    """
    m = confusion_matrix(y_true, y_pred, labels)
    per = {}
    for i, lab in enumerate(labels):
        s = _prf(int(m[i, i]), int(m[:, i].sum()), int(m[i].sum()))
        per[lab] = {"precision": s["precision"], "recall": s["recall"], "f1": s["f1"], "support": s["gold"]}
    n = int(m.sum())
    k = max(len(labels), 1)
    return {"accuracy": float(np.trace(m)) / n if n else 0.0,
            "macro_precision": sum(v["precision"] for v in per.values()) / k,
            "macro_recall": sum(v["recall"] for v in per.values()) / k,
            "macro_f1": sum(v["f1"] for v in per.values()) / k,
            "n": n, "labels": list(labels), "per_class": per, "confusion": m.tolist()}


def format_entity_report(s: dict) -> str:
    """conlleval-like text: the totals line, then one line per entity type (percentages)."""
    lines = [f"tokens {s['tokens']}, gold entities {s['gold']}, predicted {s['predicted']}, "
             f"correct {s['correct']}",
             f"accuracy {100 * s['token_accuracy']:6.2f}%; precision {100 * s['precision']:6.2f}%; "
             f"recall {100 * s['recall']:6.2f}%; F1 {100 * s['f1']:6.2f}"]
    width = max([len(t) for t in s["per_type"]] + [4])
    for t, v in s["per_type"].items():
        lines.append(f"{t:>{width}}: precision {100 * v['precision']:6.2f}%; recall {100 * v['recall']:6.2f}%; "
                     f"F1 {100 * v['f1']:6.2f}  ({v['predicted']} predicted, {v['gold']} gold)")
    return "\n".join(lines)


def format_classification_report(s: dict) -> str:
    """Accuracy, a per-class table and the confusion matrix (rows true, columns predicted)."""
    names = [str(lab) for lab in s["labels"]]
    w = max([len(n) for n in names] + [9])
    lines = [f"accuracy {100 * s['accuracy']:.2f}% ({s['n']} examples); macro F1 {100 * s['macro_f1']:.2f}",
             f"{'class':>{w}}  precision  recall      F1  support"]
    for name, v in zip(names, s["per_class"].values()):
        lines.append(f"{name:>{w}}  {100 * v['precision']:8.2f}%  {100 * v['recall']:5.2f}%  "
                     f"{100 * v['f1']:6.2f}  {v['support']:7d}")
    cw = max([len(n) for n in names] + [len(str(s["n"])), 5])
    lines.append("confusion (rows true, columns predicted):")
    lines.append(" " * w + "  " + " ".join(f"{n:>{cw}}" for n in names))
    for name, row in zip(names, s["confusion"]):
        lines.append(f"{name:>{w}}  " + " ".join(f"{c:>{cw}d}" for c in row))
    return "\n".join(lines)
