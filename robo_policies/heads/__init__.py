"""Action heads behind one interface (``base.ActionHead``)."""

from robo_policies.heads.base import ActionHead

__all__ = ["ActionHead"]
