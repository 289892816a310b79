"""The interface every action head implements, so trainers and samplers need no special cases.

A head turns an observation embedding ``cond`` (B, C) into action chunks (B, Tp, A) in the
normalised action space. Generative heads (diffusion, flow matching, energy) learn a
distribution over chunks; a deterministic head (MLP behaviour cloning) regresses one.

``DenoisingHead`` is the shared solver of the heads that integrate a learned field from
noise to data (diffusion, flow): one sampling loop over a time grid, with warm starts
(``x_init`` at ``t_start``) and a replaceable ``field`` (for composing several policies).
``field_for`` queries a head at another head's state and time, mapping between interpolants
(diffusion's variance-preserving one, flow's rectified one), so one solver can follow a
combination of both.

What a head supports is declared on its class, so sampling and ``robo bench`` ask the head
instead of testing which class it is: ``composes`` (the kind of thing policy composition
combines), ``warm_start_time`` and ``noised_guess`` (RTI warm starts), ``uses_backbone`` and
``bench_samplers`` (what ``robo bench`` times).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from robo_policies.heads.parameterization import convert, from_sample_and_noise, to_sample_and_noise
from robo_policies.utils.errors import ConfigError

if TYPE_CHECKING:
    from robo_policies.heads.registry import HeadConfig
    from robo_policies.policy import PolicyConfig

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``field(x, t) -> prediction``: a denoising field with the observation already bound."""

Generators = torch.Generator | Sequence[torch.Generator] | None
"""The random source of a sampling call: one generator for the whole batch, or one per
observation (row of ``cond``), so that each row's noise is its own whatever else shares the
batch (vectorised evaluation runs several episodes, each with its own noise, in one call)."""


def randn(shape: Sequence[int], generator: Generators, device: torch.device | None = None,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal noise of ``shape``; with one generator per observation, their rows
    (``shape[0]`` split evenly among them, e.g. an energy head's candidates of one observation)
    are drawn from each in turn, exactly as a batch of one would draw them."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    rows, rest = divmod(shape[0], len(generator))
    if rest:
        raise ValueError(f"cannot split {shape[0]} noise rows among {len(generator)} generators")
    return torch.cat([torch.randn((rows, *shape[1:]), generator=g, device=device, dtype=dtype)
                      for g in generator])


@dataclass(frozen=True)
class SolverStep:
    """One solver step, from time ``t`` to ``t_next`` (0-dim tensors of the head's time grid).

    Heads subclass it to carry the constants of their update (a step size, a scheduler's
    coefficients), worked out once per solve setting (``DenoisingHead.solver_steps``) so a
    call's own arithmetic is only what touches the chunk.
    """

    t: torch.Tensor
    t_next: torch.Tensor


@dataclass(frozen=True)
class BenchSampler:
    """One way of sampling a head that ``robo bench inference`` times."""

    name: str
    """Its label in the table (``ddim``, ``euler``, ``rti``, ...)."""
    steps: int
    """Solver steps per timed call (the table's ``steps``)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Head config fields for it (e.g. ``{"scheduler": "ddpm", "inference_steps": 100}``)."""
    warm_steps: int | None = None
    """RTI warm start: solver steps of every call after the first; None: full solves."""


class ActionHead(nn.Module, ABC):
    """Maps an observation embedding to action chunks.

    Args:
        action_dim: A, size of one action.
        horizon: Tp, actions per predicted chunk.
        cond_dim: C, size of the observation embedding.

    Attributes:
        last_nfe: network evaluations the last ``sample`` call used (``nfe`` is the
            configured count, an upper bound for heads that stop early).
    """

    composes: ClassVar[str | None] = None
    """What policy composition (``sampling.composition``) combines for this head: ``"field"``
    (a ``DenoisingHead``: fields mixed at every step of the lead's solver), ``"energy"``
    (energies summed, descended by the lead's ``sample(energy=)``) or None (cannot compose).
    Only heads of one kind compose together."""
    uses_backbone: ClassVar[bool] = True
    """Whether the head wraps the policy's backbone (``policy.net``); ``robo bench`` times a
    head without one once, not per backbone."""
    bench_samplers: ClassVar[tuple[BenchSampler, ...]] = ()
    """The samplers ``robo bench inference`` times for this head."""
    samples_with_grad: ClassVar[bool] = False
    """Whether ``sample`` needs autograd (an energy head descends gradients); the others are
    sampled under ``torch.inference_mode``, which costs less per operation than ``no_grad``."""

    def __init__(self, action_dim: int, horizon: int, cond_dim: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.horizon = horizon
        self.cond_dim = cond_dim
        self.last_nfe = 0

    @classmethod
    @abstractmethod
    def from_config(
        cls, config: HeadConfig, policy: PolicyConfig, action_dim: int, cond_dim: int
    ) -> ActionHead:
        """The head for its registered ``config``; ``policy`` holds the shared settings (the
        horizon and the backbone, ``heads.build.build_backbone``)."""

    @abstractmethod
    def loss(
        self, cond: torch.Tensor, actions: torch.Tensor, action_is_pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scalar training loss for normalised ``actions`` (B, Tp, A) given ``cond`` (B, C).

        Every row is an independent sample (own noise, own time): the policy's mini-batched
        denoising repeats rows of ``cond`` and ``actions`` and relies on this.
        ``action_is_pad`` (B, Tp) marks padded steps past an episode's end; they still count
        (the policy should learn to stay put there) unless a head documents otherwise.
        """

    @abstractmethod
    def sample(
        self,
        cond: torch.Tensor,
        x_init: torch.Tensor | None = None,
        t_start: float | None = None,
        steps: int | None = None,
        generator: Generators = None,
    ) -> torch.Tensor:
        """Normalised action chunks (B, Tp, A) for ``cond`` (B, C).

        Args:
            x_init: a chunk (B, Tp, A) to start from instead of fresh noise (warm start).
            t_start: the time ``x_init`` is treated as being at (the head's time units);
                ``None``: the start of the head's schedule.
            steps: solver steps for this call; ``None``: the head's configured count.
            generator: random source for the initial noise and stochastic solvers.
        """

    @property
    @abstractmethod
    def nfe(self) -> int:
        """Network evaluations per ``sample`` call at the configured steps (at most, for
        heads that stop early)."""

    def initial_noise(
        self, cond: torch.Tensor, generator: Generators, horizon: int | None = None
    ) -> torch.Tensor:
        """Standard normal chunks (B, Tp, A), the start of every generative head's sampling
        (``horizon`` replaces Tp: a composition of policies shares one longer chunk)."""
        shape = (cond.shape[0], self.horizon if horizon is None else horizon, self.action_dim)
        return randn(shape, generator, device=cond.device, dtype=cond.dtype)

    def warm_start_time(self, noise_to_signal: float, steps: int, device: torch.device) -> float | None:
        """Where an RTI warm start of ``steps`` solver steps begins (``sample``'s ``t_start``)
        for a guess at noise-to-signal ratio ``sigma / alpha``; None: a head without time,
        which starts from the guess as it is. Heads that cannot start from a guess say so."""
        raise ConfigError(f"RTI warm starts need a generative head, not {type(self).__name__}")

    def noised_guess(
        self, guess: torch.Tensor, t_start: float | None, generator: Generators
    ) -> torch.Tensor:
        """A warm start's guess noised to ``t_start`` (``rti.renoise``); a head without time
        descends from the guess unchanged and draws nothing."""
        return guess


class DenoisingHead(ActionHead):
    """A head that integrates a learned field from noise (high ``t``) to data (``t`` = 0).

    Subclasses say what the network predicts (``prediction``: epsilon, sample or velocity),
    the noise levels of their interpolant ``x_t = alpha_t * x0 + sigma_t * eps``, their time
    grid and one solver step; ``sample`` is written once here.
    """

    prediction: str
    """What ``field`` returns: ``epsilon``, ``sample`` (x0) or ``velocity`` (eps - x0)."""
    composes = "field"

    def __init__(self, action_dim: int, horizon: int, cond_dim: int, net: nn.Module) -> None:
        super().__init__(action_dim, horizon, cond_dim)
        self.net = net
        self._solves: dict[tuple[int | None, float | None, torch.device], list[SolverStep]] = {}
        self._start_levels: dict[float | None, tuple[torch.Tensor, torch.Tensor]] = {}

    def field(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The network's prediction (kind ``self.prediction``) at noisy chunk ``x``, time ``t``."""
        return self.net(x, self.net_time(t).expand(x.shape[0]), cond)

    def field_as(self, kind: str, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``field`` re-expressed as a prediction of ``kind`` (see ``parameterization``)."""
        alpha, sigma = self.noise_levels(t)
        return convert(self.field(x, t, cond), self.prediction, kind, x, alpha, sigma)

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """The time value the network is conditioned on (identity unless a head rescales)."""
        return t

    @abstractmethod
    def noise_levels(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha_t, sigma_t)`` of the interpolant at time ``t``, shaped to broadcast (.., 1, 1)."""

    @abstractmethod
    def time_for_noise_levels(self, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """This head's time whose noise-to-signal ratio ``sigma_t / alpha_t`` is ``sigma / alpha``.

        ``alpha`` and ``sigma`` are another interpolant's levels, shaped (.., 1, 1) as
        ``noise_levels`` returns them; the time drops the two trailing dimensions.
        """

    def time_at_noise_ratio(self, noise_to_signal: float) -> float:
        """This head's time where ``sigma_t / alpha_t`` is ``noise_to_signal``."""
        ratio = torch.tensor(float(noise_to_signal)).reshape(1, 1, 1)
        alpha = 1.0 / torch.sqrt(1.0 + ratio**2)
        return float(self.time_for_noise_levels(alpha, ratio * alpha)[0])

    def warm_start_time(self, noise_to_signal: float, steps: int, device: torch.device) -> float:
        """The time at the start level, moved to the first time of the solver's grid from
        there (DDIM keeps a fixed grid)."""
        t_start = self.time_at_noise_ratio(noise_to_signal)
        return float(self.time_grid(steps, t_start, device)[0])

    def noised_guess(
        self, guess: torch.Tensor, t_start: float | None, generator: Generators
    ) -> torch.Tensor:
        """``alpha * guess + sigma * noise`` at ``t_start``'s levels (noise from ``generator``);
        the levels are looked up once per ``t_start``, as a warm start reuses one."""
        if t_start not in self._start_levels:
            self._start_levels[t_start] = self.noise_levels(torch.tensor(t_start))
        alpha, sigma = self._start_levels[t_start]
        noise = randn(guess.shape, generator, dtype=guess.dtype)
        return alpha * guess + sigma * noise.to(guess.device)

    def same_interpolant(self, other: DenoisingHead) -> bool:
        """Whether ``other`` has the same noise levels at the same times (then a state and
        time pass between the two unchanged). Heads with a configurable schedule extend this."""
        return type(self) is type(other)

    def sample_and_noise_at(
        self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0, eps)`` this head predicts for ``x = alpha * x0 + sigma * eps`` on any interpolant.

        Interpolants with the same noise-to-signal ratio differ only by a scale of the state,
        and ``x0`` and ``eps`` do not depend on that scale: ``x`` is rescaled (by the ratio of
        the two ``sqrt(alpha^2 + sigma^2)``) to this head's time with the same ratio
        (``time_for_noise_levels``), the head is queried there and its prediction converted.
        E.g. a diffusion state at levels (alpha, sigma) is the rectified-flow state
        ``x / (alpha + sigma)`` at ``t = sigma / (alpha + sigma)``.
        """
        t = self.time_for_noise_levels(alpha, sigma)
        own_alpha, own_sigma = self.noise_levels(t)
        own_x = x * (own_alpha.hypot(own_sigma) / alpha.hypot(sigma))
        prediction = self.field(own_x, t, cond)
        return to_sample_and_noise(prediction, self.prediction, own_x, own_alpha, own_sigma)

    def field_for(
        self, lead: DenoisingHead, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """This head's prediction at ``lead``'s chunk ``x`` and time ``t``, as a prediction of
        ``lead.prediction``: what ``lead``'s solver can step with (policy composition)."""
        if self.same_interpolant(lead):
            return self.field_as(lead.prediction, x, t, cond)
        x0, eps = self.sample_and_noise_at(x, *lead.noise_levels(t), cond)
        return from_sample_and_noise(x0, eps, lead.prediction)

    @abstractmethod
    def time_grid(self, steps: int | None, t_start: float | None, device: torch.device) -> torch.Tensor:
        """Descending times to visit; consecutive pairs ``(t, t_next)`` are the solver steps."""

    def solver_steps(self, steps: int | None, t_start: float | None, device: torch.device) -> list[SolverStep]:
        """The steps of a solve (``time_grid``'s pairs, each with its constants), worked out
        once per ``(steps, t_start, device)``: a warm call then spends its time in the network,
        not in building grids and coefficients. Settings are fixed for a head's life (a new
        ``inference_steps`` builds a new policy), so the cache never goes stale."""
        key = (steps, t_start, device)
        if key not in self._solves:
            grid = self.time_grid(steps, t_start, device)
            self._solves[key] = [self.prepare_step(t, t_next) for t, t_next in pairwise(grid)]
        return self._solves[key]

    def prepare_step(self, t: torch.Tensor, t_next: torch.Tensor) -> SolverStep:
        """The step from ``t`` to ``t_next`` with the constants ``solver_step`` needs."""
        return SolverStep(t, t_next)

    @abstractmethod
    def solver_step(
        self, field: Field, x: torch.Tensor, step: SolverStep, generator: Generators
    ) -> torch.Tensor:
        """Move ``x`` from ``step.t`` to ``step.t_next`` using ``field``."""

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        x_init: torch.Tensor | None = None,
        t_start: float | None = None,
        steps: int | None = None,
        generator: Generators = None,
        field: Field | None = None,
    ) -> torch.Tensor:
        """See ``ActionHead.sample``; ``field`` replaces this head's own (it must predict
        ``self.prediction``), which is how several policies' fields are composed."""
        given = field
        calls = 0  # counted here, set on the module once: a module's setattr is slow

        def counted_field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            nonlocal calls
            calls += 1
            return self.field(x, t, cond) if given is None else given(x, t)

        x = self.initial_noise(cond, generator) if x_init is None else x_init.clone()
        for step in self.solver_steps(steps, t_start, cond.device):
            x = self.solver_step(counted_field, x, step, generator)
        self.last_nfe = calls
        return x.clamp(-1.0, 1.0)  # actions are min-max normalised to [-1, 1]
