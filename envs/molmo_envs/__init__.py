"""Gymnasium environments of molmo-agent (import name ``molmo_envs``).

Registered ids, usable as ``gymnasium.make("molmo_envs:molmo_agent/<Name>-v0")``:

- ``molmo_agent/SyntheticGui-v0``: procedurally generated app screens with click and multi-step tasks,
  graded by the app's own state.
- ``molmo_agent/AndroidControl-v0``: offline replay of AndroidControl episodes from the released TFRecord
  shards, scored per step with Molmo's protocol or the distance-14% protocol.
- ``molmo_agent/TabletopPointing-v0``: a robot camera view (RGB, depth, intrinsics) of objects on a
  table; reward from the 3D error of the deprojected point.

Environments are imported only when made, so ``import molmo_envs`` stays light.
"""

from __future__ import annotations

try:
    from gymnasium.envs.registration import register, registry
except ImportError as exc:  # a plain install: the environments are the `envs` extra
    raise ImportError("molmo_envs needs gymnasium: pip install 'molmo-agent[envs]'") from exc

ENVIRONMENTS: dict[str, tuple[str, int]] = {
    "molmo_agent/SyntheticGui-v0": ("molmo_envs.synthetic_gui:SyntheticGuiEnv", 10),
    "molmo_agent/AndroidControl-v0": ("molmo_envs.android_control:AndroidControlEnv", 50),
    "molmo_agent/TabletopPointing-v0": ("molmo_envs.tabletop:TabletopPointingEnv", 1),
}
"""id -> (entry point, max_episode_steps): the one registry of this package."""

for _env_id, (_entry_point, _max_steps) in ENVIRONMENTS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps)

REGISTERED_IDS: tuple[str, ...] = tuple(ENVIRONMENTS)
