"""molmo-agent: Molmo pointing and action predictions from screenshots and camera frames.

``import molmo_agent as ma`` is light: torch and transformers load only when a model is loaded.

>>> import molmo_agent as ma
>>> ma.parse_points('<point x="50.0" y="25.0" alt="mug">mug</point>', image_sizes=[(1280, 720)])[0].x
640.0
"""

from __future__ import annotations

from .actions import Action, ActionType
from .errors import (
    ActionValidationError,
    ImageInputError,
    ModelLoadError,
    ModelNotFoundError,
    MolmoAgentError,
    QueryError,
)
from .extras import quiet_torchao_import
from .images import ImageLimits, load_image
from .model import ActResult, MolmoModel, PointResult, load_model
from .parsing import parse_action, parse_points
from .points import Point

quiet_torchao_import()

__version__ = "0.1.0"

__all__ = [
    "ActResult",
    "Action",
    "ActionType",
    "ActionValidationError",
    "ImageInputError",
    "ImageLimits",
    "ModelLoadError",
    "ModelNotFoundError",
    "MolmoAgentError",
    "MolmoModel",
    "Point",
    "PointResult",
    "QueryError",
    "load_image",
    "load_model",
    "parse_action",
    "parse_points",
]


def __getattr__(name: str):  # ma.Client loads grpc on first use only
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'molmo_agent' has no attribute {name!r}")
