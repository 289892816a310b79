"""Action heads behind one interface (``base.ActionHead``), registered by name with their own
config (``registry``); importing the package registers the built-in heads, in this order
(the order ``robo bench`` lists them in)."""

from robo_policies.heads import diffusion  # noqa: F401  (each registers itself)
from robo_policies.heads import flow  # noqa: F401
from robo_policies.heads import energy  # noqa: F401
from robo_policies.heads import mlp_bc  # noqa: F401
from robo_policies.heads.base import ActionHead, DenoisingHead
from robo_policies.heads.build import build_head
from robo_policies.heads.registry import HeadConfig, head_class, head_config, head_names, register_head

__all__ = ["ActionHead", "DenoisingHead", "HeadConfig", "build_head", "head_class", "head_config",
           "head_names", "register_head"]
