"""Executors: where actions take effect (a desktop, nowhere, a gymnasium env), behind one interface."""

from .base import ExecutionError, Executor
from .desktop import DesktopExecutor
from .dry_run import DryRunExecutor
from .env import EnvExecutor
from .safety import ConfirmingExecutor

__all__ = [
    "ConfirmingExecutor",
    "DesktopExecutor",
    "DryRunExecutor",
    "EnvExecutor",
    "ExecutionError",
    "Executor",
]
