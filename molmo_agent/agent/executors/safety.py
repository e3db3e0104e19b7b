"""Confirm mode: a person approves each action before it reaches the real executor."""

from __future__ import annotations

from collections.abc import Callable

from ...actions import Action
from ..records import Observation, Outcome
from .base import ExecutionError, Executor, StopRun

Ask = Callable[[Action], str]
"""Returns "y" (do it), "n" (skip it) or "q" (stop the run)."""


def ask_on_terminal(action: Action) -> str:
    """The CLI's question: the action as JSON, answered y/n/q. A closed input (Ctrl-D, end of a pipe) is a
    quit: nobody is left to approve the next action."""
    try:
        answer = input(f"execute {action.to_json()}? [y]es / [n]o / [q]uit: ").strip().lower()
    except EOFError:
        return "q"
    return answer[:1] or "n"


class ConfirmingExecutor(Executor):
    def __init__(self, inner: Executor, ask: Ask = ask_on_terminal) -> None:
        self.inner = inner
        self.ask = ask

    def observe(self) -> Observation:
        return self.inner.observe()

    def execute(self, action: Action) -> Outcome:
        answer = self.ask(action)
        if answer == "q":
            raise StopRun("stopped by the person confirming actions")
        if answer != "y":
            raise ExecutionError("declined by the person confirming actions")
        return self.inner.execute(action)

    def close(self) -> None:
        self.inner.close()
