"""Typed errors a user can act on.

Every error raised at a public boundary (image input, model loading, action validation) derives from
:class:`MolmoAgentError`, so callers (the CLI, the gRPC server) can turn it into a clear message or a status
code without catching unrelated bugs. Messages say what was wrong and what to do about it.
"""

from __future__ import annotations


class MolmoAgentError(Exception):
    """Base class of every error this package raises on purpose."""


class ImageInputError(MolmoAgentError, ValueError):
    """An image could not be accepted: undecodable, empty, wrong shape/dtype or too large."""


class ActionValidationError(MolmoAgentError, ValueError):
    """An action is missing a field its type needs, or carries a value out of range."""


class ModelNotFoundError(MolmoAgentError, FileNotFoundError):
    """The weights of a model are not on this machine and cannot be downloaded."""


class ModelLoadError(MolmoAgentError, RuntimeError):
    """The weights were found but the model could not be built (incompatible library, bad files)."""


class QueryError(MolmoAgentError, ValueError):
    """A text query or prompt is empty or otherwise unusable."""


class EngineError(MolmoAgentError, RuntimeError):
    """A call to an inference engine behind ``openai://`` failed; ``status`` is its HTTP status (0: none).

    Raised from the model call, so the evaluation harness records it on the step and the run goes on.
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class EngineUnavailableError(EngineError, ConnectionError):
    """The engine cannot be reached, timed out, or stayed overloaded through every retry."""


class EngineAuthError(EngineError, PermissionError):
    """The engine refused the API key (HTTP 401/403)."""


class EngineRequestError(EngineError, ValueError):
    """The engine refused this request: a model it does not serve, a prompt over its context length,
    images it does not accept."""
