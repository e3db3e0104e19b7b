"""``molmo_agent/SyntheticGui-v0``: procedural app screens whose tasks are graded on the app's own state."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from molmo_agent.actions import Action, ActionType
from molmo_agent.errors import ActionValidationError

from .gui_render import render
from .gui_scenes import TASK_KINDS, Scene, Step, Task, generate_scene, make_task
from .spaces import UnicodeText, action_space, to_action

_TAPS = frozenset({ActionType.CLICK, ActionType.LONG_PRESS, ActionType.DOUBLE_CLICK})
_TYPING = frozenset({ActionType.INPUT_TEXT, ActionType.TYPE})
_FAMILIES = ("molmo1", "molmo2")


def _check_task(task: str) -> str:
    if task not in TASK_KINDS:
        raise ValueError(f"task must be one of {TASK_KINDS}, got {task!r}")
    return task


def _check_difficulty(difficulty: int | None) -> int | None:
    if difficulty is not None and difficulty not in (0, 1, 2):
        raise ValueError(f"difficulty must be 0, 1, 2 or None (random per episode), got {difficulty!r}")
    return difficulty


class SyntheticGuiEnv(gym.Env):
    """Procedurally generated app screens on which an agent taps and types to reach a goal.

    ## Description
    Every episode draws a new app screen (drawn with OpenCV): a header with a title and a menu button,
    coloured shape icons, rounded buttons with word labels, text fields, toggles and list items, in a
    light or dark theme, at a random scale, inside a phone- or desktop-shaped window on the canvas. A
    hidden menu drawer holds more toggles. The instruction asks for one tap ("Tap the blue Settings
    button.", "Click the red star icon.", "Turn on Wi-Fi.") or a short sequence ("Open the menu and turn
    on Bluetooth.", "Type hello into the Name field.", and at difficulty 2 "Enter Paris in the City field,
    then press the green Save button."). Success is read from the app's own state (which elements were
    tapped, which toggles are on, the fields' text, what a button submitted), not from a fixed answer, so
    any route to the goal counts.

    ## Action Space
    ``molmo_envs.spaces.action_space(screen_size)`` (an element is converted by ``to_action``), or a
    ``molmo_agent.Action`` directly; coordinates are screenshot pixels. ``click``, ``long_press`` and
    ``double_click`` tap the topmost element containing the point (while the drawer is open, everything
    outside it but the menu button is a scrim whose tap closes the drawer). ``input_text``/``type`` set
    the focused field's text (replacing it, as Android does); tapping a field focuses it, tapping anything
    else drops the focus. ``navigate_back`` closes the drawer or drops the focus. Other actions, and
    space elements that do not form a valid action, change nothing (the reason is in ``info["error"]``).

    ## Observation Space
    ``Dict(screenshot=Box(0, 255, (height, width, 3), uint8), instruction=UnicodeText(512),
    screen_size=Box(1, 8192, (2,), int32))``; the screenshot is RGB (drawn once per visible state
    change, copied into each observation), ``screen_size`` is ``(width, height)``.

    ## Rewards
    1.0 on the step that reaches the goal state, 0.0 otherwise (wrong taps included).

    ## Starting State
    A fresh screen and task drawn from ``self.np_random``: the drawer closed, no focus, fields empty,
    toggles randomly on or off (a toggle task always asks for the state it is not in).

    ## Episode End
    Terminated when the goal state is reached. No action is irreversible (toggles toggle back, typing
    replaces, a button can be pressed again), so an episode never fails early; it is truncated by the
    ``max_episode_steps`` of its registration (10).

    ## Information
    ``task`` (click, toggle, menu_toggle, type or form), ``instruction``, ``multi_step``, ``target`` (the
    goal element: id, kind, label, color, shape, box ``[x0, y0, x1, y1]`` in pixels, phrase),
    ``next_target`` (the element the next oracle action acts on), ``success``, ``app_state`` (drawer, focus,
    toggles, fields, tapped elements, last submission) and, after a step, ``hit`` (the phrase of the element
    tapped, or None), ``hit_element`` (that element's fields, as in ``target``, or None) and ``error`` (why
    an action was ignored, or None). :meth:`oracle_action` returns the scripted solver's next action and
    :meth:`next_step` the element it acts on (``molmo_agent.training.supervision`` words it for training).

    ## Arguments
    - ``screen_size``: canvas ``(width, height)`` in pixels, fixed per env (the Box needs a fixed shape);
      phone ~360x640..540x960, desktop ~800x600..1280x720.
    - ``task``: ``"click"`` (one tap), ``"icon"`` (one tap on an icon named by colour and shape, e.g.
      "Click the red star icon."), ``"multi"`` (two or three actions) or ``"any"`` (click or multi).
    - ``difficulty``: 0, 1 or 2 (more, smaller elements; repeated colours), or None for random per episode.
    - ``random_size``: draw the app in a window of random size and aspect ratio inside the canvas (else
      the app fills it).
    - ``render_mode``: None or ``"rgb_array"`` (``render()`` returns the screenshot).
    ``reset(options=...)`` accepts ``{"task": ..., "difficulty": ...}`` for one episode.

    >>> import gymnasium as gym
    >>> env = gym.make("molmo_envs:molmo_agent/SyntheticGui-v0", screen_size=(360, 640), task="multi")
    >>> obs, info = env.reset(seed=0)
    >>> obs["screenshot"].shape
    (640, 360, 3)
    >>> obs, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        screen_size: tuple[int, int] = (540, 960),
        task: str = "any",
        difficulty: int | None = None,
        random_size: bool = True,
        render_mode: str | None = None,
    ) -> None:
        width, height = (int(v) for v in screen_size)
        if not (160 <= width <= 4096 and 160 <= height <= 4096):
            raise ValueError(
                f"screen_size must be (width, height) within 160..4096 pixels, got {screen_size!r}"
            )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.screen_size = (width, height)
        self.task_kind = _check_task(task)
        self.difficulty = _check_difficulty(difficulty)
        self.random_size = bool(random_size)
        self.render_mode = render_mode
        self.action_space = action_space(self.screen_size)
        self.observation_space = spaces.Dict(
            {
                "screenshot": spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
                "instruction": UnicodeText(),
                "screen_size": spaces.Box(1, 8192, (2,), dtype=np.int32),
            }
        )
        self._scene: Scene | None = None
        self._task: Task | None = None
        self._frame: tuple[int, np.ndarray] | None = None

    # ------------------------------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        kind = _check_task(options.get("task", self.task_kind))
        difficulty = _check_difficulty(options.get("difficulty", self.difficulty))
        if difficulty is None:
            difficulty = int(self.np_random.integers(3))
        self._scene = generate_scene(self.np_random, self.screen_size, difficulty, self.random_size)
        self._task = make_task(self.np_random, self._scene, kind, difficulty)
        self._frame = None
        return self._observation(), self._info()

    def step(
        self, action: Action | dict[str, Any]
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        scene, task = self._require()
        hit, hit_element, error = None, None, None
        try:
            act = to_action(action)
        except ActionValidationError as exc:
            act, error = None, str(exc)
        if act is not None and act.type in _TAPS and act.point is not None:
            element = scene.tap(*act.point)
            if element is not None:
                hit, hit_element = element.phrase, element.describe()
        elif act is not None and act.type in _TYPING:
            if not scene.type_text(act.text or ""):
                error = "no text field has the focus: tap a field before typing"
        elif act is not None and act.type is ActionType.NAVIGATE_BACK:
            scene.back()
        elif act is not None:
            error = f"{act.type.value} does nothing on this screen"
        success = task.done(scene)
        info = self._info() | {"hit": hit, "hit_element": hit_element, "error": error}
        return self._observation(), 1.0 if success else 0.0, success, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._screenshot().copy()

    # ------------------------------------------------------------------------------- oracle and labels

    def oracle_action(self) -> Action:
        """The scripted solver's next action, read from the env's own layout and state (``done`` once won)."""
        scene, task = self._require()
        if task.done(scene):
            return Action(type=ActionType.DONE)
        step = task.next_step(scene)
        if step.text is not None:
            return Action(type=ActionType.INPUT_TEXT, text=step.text)
        x, y = step.target.center
        return Action(type=ActionType.CLICK, x=x, y=y)

    def next_step(self) -> tuple[str, Step]:
        """The task's instruction and the step the oracle takes next (the element it acts on, its text)."""
        scene, task = self._require()
        return task.instruction, task.next_step(scene)

    # --------------------------------------------------------------------------------------- internals

    def _require(self) -> tuple[Scene, Task]:
        if self._scene is None or self._task is None:
            raise RuntimeError("call reset() before step(), oracle_action() or next_step()")
        return self._scene, self._task

    def _screenshot(self) -> np.ndarray:
        """The current frame, drawn once per state (the scene bumps its version on every change)."""
        scene, _ = self._require()
        if self._frame is None or self._frame[0] != scene.version:
            self._frame = (scene.version, render(scene))
        return self._frame[1]

    def _observation(self) -> dict[str, Any]:
        _, task = self._require()
        return {
            "screenshot": self._screenshot().copy(),
            "instruction": task.instruction,
            "screen_size": np.array(self.screen_size, dtype=np.int32),
        }

    def _info(self) -> dict[str, Any]:
        scene, task = self._require()
        target = scene.elements[task.target_id]
        next_target = task.next_step(scene).target
        return {
            "task": task.kind,
            "instruction": task.instruction,
            "multi_step": task.multi_step,
            "target": target.describe(),
            "next_target": next_target.describe(),
            "success": task.done(scene),
            "app_state": scene.state(),
        }
