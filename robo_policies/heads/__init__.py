"""Action heads behind one interface (``base.ActionHead``); ``build_head`` picks one by name."""

from robo_policies.heads.base import ActionHead, DenoisingHead
from robo_policies.heads.build import HEADS, build_head

__all__ = ["HEADS", "ActionHead", "DenoisingHead", "build_head"]
