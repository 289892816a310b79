"""Test-time sampling schemes built on the heads' shared solver: policy composition (GPC)."""

from robo_policies.sampling.composition import ComposedPolicy

__all__ = ["ComposedPolicy"]
