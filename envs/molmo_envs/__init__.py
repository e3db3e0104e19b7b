"""Gymnasium environments of molmo-agent (import name ``molmo_envs``).

The registered ids will be ``molmo_agent/SyntheticGui-v0``, ``molmo_agent/AndroidControl-v0`` and
``molmo_agent/TabletopPointing-v0``, usable as ``gymnasium.make("molmo_envs:molmo_agent/<Name>-v0")``.
They are not implemented yet (see the envs issue); this package exists so the layout and the install are
in place and later work only adds environment files and their ``register`` calls here.
"""

REGISTERED_IDS: tuple[str, ...] = ()
