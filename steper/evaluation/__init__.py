"""Evaluation: answer metrics (EM/F1/Acc) and, later, the evaluation run."""

from steper.evaluation.metrics import METRICS, aggregate, extract_answer, normalize_answer, score

__all__ = ["METRICS", "aggregate", "extract_answer", "normalize_answer", "score"]
