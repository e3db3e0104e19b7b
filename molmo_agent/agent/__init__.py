"""The agent loop: drive a GUI (or a gymnasium env) from Molmo predictions, safely and on the record.

Example (``model`` from ``ma.load_model()``, ``screenshot`` any image)::

    from molmo_agent.agent import DryRunExecutor, PointPolicy, run_agent
    result = run_agent("click the Save button", PointPolicy(model), DryRunExecutor(screenshot))
"""

from .executors import ConfirmingExecutor, DryRunExecutor, EnvExecutor, ExecutionError, Executor
from .loop import AgentConfig, run_agent
from .policies import ActionPolicy, PointPolicy, Policy, parse_instruction, split_goal
from .records import Decision, Observation, Outcome, RunResult, StepRecord

__all__ = [
    "ActionPolicy",
    "AgentConfig",
    "ConfirmingExecutor",
    "Decision",
    "DryRunExecutor",
    "EnvExecutor",
    "ExecutionError",
    "Executor",
    "Observation",
    "Outcome",
    "PointPolicy",
    "Policy",
    "RunResult",
    "StepRecord",
    "parse_instruction",
    "run_agent",
    "split_goal",
]
