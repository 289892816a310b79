"""Which dataset arrays are policy inputs when ``policy.obs_keys`` does not say.

A dataset holds more than observations: action labels, rewards and episode flags, bookkeeping
(timestamps, frame indices), next-step copies of the observations (robomimic's ``next_obs``,
OGBench's ``next_observations``) and simulator internals (``qpos``, ``qvel``, robomimic's
``states``). A policy trained on those would ask its env for arrays no env gives while acting
(a next observation) or learn from what the task does not observe. One rule decides, in this
order:

1. ``policy.obs_keys``, when given, names the inputs; any array may be named.
2. Otherwise every array is an input except
   - the names in ``NOT_OBSERVATIONS`` (labels, outcomes and bookkeeping),
   - names starting with ``NEXT_STEP_PREFIX`` (next-step copies), and
   - the names the dataset's attribute ``non_input_keys`` lists: converters write it for the
     arrays they store that are not observations although their names do not say so.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

NOT_OBSERVATIONS = frozenset({"action", "executed_action", "reward", "done", "terminal", "mask", "timestamp",
                              "index", "frame_index", "episode_index", "task_index"})
"""Dataset keys that are never policy inputs by default: labels, outcomes and bookkeeping."""
NEXT_STEP_PREFIX = "next_"
"""Keys starting with this are next-step copies of observations (robomimic's ``next_obs.<key>``,
OGBench's ``next_observations``, stored as ``next_state``): a policy acting now cannot read them."""
NON_INPUT_KEYS_ATTR = "non_input_keys"
"""Dataset attribute in which a converter lists the arrays it stored that are not observations
(OGBench's ``qpos``/``qvel``, robomimic's ``states``), where the name alone does not say so."""


def default_observation_keys(keys: Iterable[str], attrs: Mapping[str, Any]) -> list[str]:
    """The dataset ``keys`` a policy reads when ``policy.obs_keys`` is empty (rule 2 above);
    ``attrs`` are the dataset's attributes."""
    listed = set(attrs.get(NON_INPUT_KEYS_ATTR) or ())
    return [key for key in keys
            if key not in NOT_OBSERVATIONS and key not in listed and not key.startswith(NEXT_STEP_PREFIX)]
