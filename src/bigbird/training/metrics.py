"""Evaluation metrics of `bigbird train`, all as fractions in [0, 1]: accuracy and macro-F1 (classification),
exact match and token F1 after SQuAD's answer normalisation (question answering), ROUGE-1/2/L F-measures with
stemming from `rouge-score` (summarization). Each task has a primary metric that picks the best checkpoint."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

PRIMARY = {"classify": "accuracy", "qa": "f1", "summarize": "rougeL"}


def classification(predictions: Sequence[int], references: Sequence[int], num_labels: int) -> dict:
    """Accuracy and the unweighted mean over all `num_labels` labels of each label's F1."""
    if len(predictions) != len(references) or not references:
        raise ValueError("classification metrics need as many predictions as references, and at least one")
    correct = sum(p == r for p, r in zip(predictions, references))
    scores = []
    for label in range(num_labels):
        true_positive = sum(p == label and r == label for p, r in zip(predictions, references))
        predicted = sum(p == label for p in predictions)
        actual = sum(r == label for r in references)
        scores.append(2 * true_positive / (predicted + actual) if predicted + actual else 0.0)
    return {"accuracy": correct / len(references), "macro_f1": sum(scores) / num_labels}


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces: SQuAD's answer normalisation."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, reference: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def question_answering(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """Exact match and token-overlap F1 of the predicted answers (an empty string is "no answer")."""
    if len(predictions) != len(references) or not references:
        raise ValueError("question-answering metrics need as many predictions as references, and at least one")
    exact = sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references))
    f1 = sum(_token_f1(p, r) for p, r in zip(predictions, references))
    return {"exact_match": exact / len(references), "f1": f1 / len(references)}


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures (Porter stemming), computed by `rouge-score`."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ImportError("summarization metrics need rouge-score: pip install 'bigbird-torch[train]' "
                          "(or pip install rouge-score)") from None
    if len(predictions) != len(references) or not references:
        raise ValueError("ROUGE needs as many predictions as references, and at least one")
    names = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(names), use_stemmer=True)
    totals = dict.fromkeys(names, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)
        for name in names:
            totals[name] += scores[name].fmeasure
    return {name: total / len(references) for name, total in totals.items()}
