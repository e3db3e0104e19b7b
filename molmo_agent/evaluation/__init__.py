"""Evaluation harness: run a model on a molmo_envs environment, score every step, write a report."""

from .harness import EvalConfig, evaluate_in_memory, run_eval
from .runs import RunMismatchError
from .summary import summarize
from .views import View

__all__ = ["EvalConfig", "RunMismatchError", "View", "evaluate_in_memory", "run_eval", "summarize"]
