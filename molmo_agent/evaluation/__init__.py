"""Evaluation harness: run a model on a molmo_envs environment, score every step, write a report."""

from .harness import EvalConfig, run_eval
from .summary import summarize

__all__ = ["EvalConfig", "run_eval", "summarize"]
