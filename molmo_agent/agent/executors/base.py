"""The executor interface the agent loop drives."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ...actions import Action
from ...errors import MolmoAgentError
from ..records import Observation, Outcome


class ExecutionError(MolmoAgentError):
    """An action could not be carried out (e.g. text the keyboard cannot type); the loop records it."""


class StopRun(MolmoAgentError):
    """The person supervising the run asked to stop (confirm mode)."""


class Executor(ABC):
    """Observes the screen and carries out actions given in screenshot pixels.

    Implementations map screenshot pixels to their own coordinate system (HiDPI scale, monitor offsets).
    They are context managers so resources (screen grabbers, environments) are released.
    """

    @abstractmethod
    def observe(self) -> Observation:
        """Capture the current screen."""

    @abstractmethod
    def execute(self, action: Action) -> Outcome:
        """Carry out one action.

        Raises:
            ExecutionError: the action cannot be performed here; the loop records it and goes on.
        """

    def close(self) -> None:  # noqa: B027 - optional hook: most executors hold nothing to release
        """Release resources; the default has none."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
