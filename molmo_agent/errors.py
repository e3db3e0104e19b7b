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
