"""The names every part of steper agrees on, declared once (docs/method.md §1, §3)."""

from __future__ import annotations

# step tasks of the step-wise data: first (r_1), mid (r_s, 1<s<S), final (the answer step), and the
# whole-chain view that Vanilla-KD trains on
STEP_TASKS = ("first", "mid", "final")
TASKS = (*STEP_TASKS, "vanilla")
# the loss slot each task trains (vanilla's whole chain ends with the answer: it is a final)
TASK_IDS = {"first": 0, "mid": 1, "final": 2, "vanilla": 2}
# tasks whose target ends the chain: the EOS after them teaches the student to stop
ANSWER_TASKS = ("final", "vanilla")

# question splits of a dataset, and the splits of the step-wise data made from its train split
QUESTION_SPLITS = ("train", "dev", "test")
STEPWISE_SPLITS = ("train", "validation")

FRAMEWORKS = ("ircot", "selfask")
# which teacher traces become training data: em (normalized exact match with a gold alias) | acc
FILTERS = ("em", "acc")
# multistep = the full loop; single = one retrieval, then reasoning; noretrieval = no retrieval
MODES = ("multistep", "single", "noretrieval")
# answer metrics, in table order
METRICS = ("em", "f1", "acc")
