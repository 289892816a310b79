"""RTI warm start: denoise from the previous, shifted action chunk in a few solver steps.

Real-Time Iteration for diffusion policies (RTI-DP, arXiv 2508.05396): consecutive model calls
of an episode predict overlapping chunks, so the last chunk, shifted by the actions executed
since and padded by repeating its final action, is already close to the next one. Treat it
as a slightly noisy chunk and run only the last few solver steps from there:

- the first call of an episode is a full solve from noise; ``reset()`` forgets the previous
  chunk (the published code keeps it across episodes);
- the start level is a noise-to-signal ratio ``sigma / alpha``, so one setting means the same
  for every head: each head maps it to its own start time (``ActionHead.warm_start_time``:
  diffusion to the nearest training step, flow matching to ``t = r / (1 + r)``; an energy
  head has no time and descends from the guess for ``steps`` iterations);
- by default the guess is noised to that level (``renoise``, ``ActionHead.noised_guess``),
  halfway by default, and solved
  back in 3 steps. RTI-DP instead uses the clean guess at a low level; that is
  ``renoise=false`` with a small ``start_noise`` (or ``calibrate``), which we measured to fail
  with flow fields and where the situation changes between calls (README);
- discrete action dimensions (a gripper) are snapped to their nearest end, -1 or +1 in the
  normalised space, in the remembered chunk (RTI-DP's "clip" variant): a half-open gripper
  in the guess would otherwise be carried into the next solve;
- ``calibrate_start_noise`` estimates RTI-DP's low level from held-out data: the typical
  distance between a shifted guess and the chunk a full solve gives one call later.

The sampler works on normalised chunks of any head through ``ActionHead.sample(x_init=,
t_start=, steps=)``, for a single policy and for a composition alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, List, Optional

import torch

from robo_policies.heads.base import ActionHead, Generators
from robo_policies.utils.errors import ConfigError


@dataclass
class WarmStartConfig:
    """Settings of the RTI warm start (``robo eval sampler=rti rti.*``)."""

    steps: int = 3
    """Solver steps of a warm-started call (energy head: descent iterations)."""
    start_noise: float = 1.0
    """Noise-to-signal ratio sigma/alpha to start from: with ``renoise``, the level the guess is
    noised to (1.0: halfway, alpha = sigma); without, the error the guess is assumed to have."""
    renoise: bool = True
    """Noise the shifted guess to the start level (``alpha * guess + sigma * noise``); false:
    use it as it is, at a low level (RTI-DP). A clean guess at a low level can only be nudged:
    velocity (flow) fields barely move it at all, and no head can turn it into another mode
    when the situation changed (measured in the README)."""
    calibrate: bool = False
    """``robo eval``: replace start_noise by ``calibrate_start_noise`` on held-out episodes of
    the policy's training dataset (the validation episodes recorded at training)."""
    discrete_dims: Optional[List[int]] = None
    """Action dimensions that are discrete (e.g. a gripper), snapped to -1/+1 in the guess;
    None: those saved with the policy (``policy.discrete_action_dims``), else the task's
    (``Task.discrete_action_dims``)."""


class WarmStart:
    """The warm state of one policy's episode: the previous normalised chunk (B, Tp, A)."""

    def __init__(self, config: WarmStartConfig) -> None:
        if config.steps < 1:
            raise ConfigError(f"rti.steps must be >= 1, got {config.steps}")
        if config.start_noise <= 0:
            raise ConfigError(f"rti.start_noise must be > 0, got {config.start_noise}")
        self.config = config
        self.previous: torch.Tensor | None = None
        self._start: tuple[ActionHead, float | None] | None = None  # (head, its start time)

    def reset(self) -> None:
        """Forget the previous chunk: the next call is a full solve (call at episode start)."""
        self.previous = None

    def sample(self, head: ActionHead, cond: torch.Tensor, generator: Generators,
               shift: int, **sample_kwargs: Any) -> torch.Tensor:
        """``sample_chunk`` with this warm start: what a policy holding it calls."""
        return sample_chunk(head, cond, generator, self, shift, **sample_kwargs)

    def start_time_for(self, head: ActionHead, device: torch.device) -> float | None:
        """Where ``head``'s warm solve starts (``ActionHead.warm_start_time``), worked out once
        per head, not on every call."""
        if self._start is None or self._start[0] is not head:
            t_start = head.warm_start_time(self.config.start_noise, self.config.steps, device)
            self._start = (head, t_start)
        return self._start[1]


def sample_chunk(
    head: ActionHead,
    cond: torch.Tensor,
    generator: Generators,
    warm_start: WarmStart | None = None,
    shift: int = 0,
    horizon: int | None = None,
    **sample_kwargs: Any,
) -> torch.Tensor:
    """A normalised chunk from ``head``: a full solve, or with ``warm_start`` holding the
    previous chunk of the episode, a short solve from it shifted by ``shift`` executed actions.

    ``horizon`` sets a full solve's chunk length when it is not the head's own (a
    composition's longer chunk); ``sample_kwargs`` go to ``head.sample`` (e.g. a composed
    ``field``). The new chunk is remembered in ``warm_start`` for the next call.
    """
    previous = None if warm_start is None else warm_start.previous
    if previous is None or previous.shape[0] != cond.shape[0]:
        x_init = None if horizon is None else head.initial_noise(cond, generator, horizon)
        chunk = head.sample(cond, x_init=x_init, generator=generator, **sample_kwargs)
    else:
        config = warm_start.config
        t_start = warm_start.start_time_for(head, cond.device)
        guess = shift_chunk(previous, shift)
        if config.renoise:
            guess = head.noised_guess(guess, t_start, generator)
        chunk = head.sample(cond, x_init=guess, t_start=t_start, steps=config.steps,
                            generator=generator, **sample_kwargs)
    if warm_start is not None:
        warm_start.previous = snap_discrete(chunk, warm_start.config.discrete_dims)
    return chunk


def shift_chunk(chunk: torch.Tensor, shift: int) -> torch.Tensor:
    """``chunk`` (B, Tp, A) advanced by ``shift`` steps, the last action repeated to fill."""
    if not 0 <= shift < chunk.shape[1]:
        raise ValueError(f"cannot shift a chunk of {chunk.shape[1]} steps by {shift}")
    tail = chunk[:, -1:].expand(-1, shift, -1)
    return torch.cat([chunk[:, shift:], tail], dim=1)


def snap_discrete(chunk: torch.Tensor, dims: Sequence[int] | None) -> torch.Tensor:
    """``chunk`` with the discrete action ``dims`` set to -1 or +1 (their sign; 0 -> +1)."""
    if not dims:
        return chunk
    action_dim = chunk.shape[-1]
    bad = [d for d in dims if not -action_dim <= d < action_dim]
    if bad:
        raise ConfigError(f"rti.discrete_dims {bad} out of range for {action_dim}-D actions")
    snapped = chunk.clone()
    snapped[..., list(dims)] = torch.where(chunk[..., list(dims)] >= 0, 1.0, -1.0).to(chunk)
    return snapped


@torch.no_grad()
def calibrate_start_noise(
    head: ActionHead,
    cond_now: torch.Tensor,
    cond_next: torch.Tensor,
    shift: int,
    generator: Generators = None,
) -> float:
    """The start noise level suggested by held-out pairs of conditionings ``shift`` steps apart.

    Full solves at both steps (the same initial noise for a pair, so both usually pick the
    same mode); the error of the shifted first chunk against the second, as an RMS over each
    pair's overlapping steps. The median over pairs ignores the pairs whose solves switched
    modes, which no warm start should try to bridge.
    """
    if cond_now.shape != cond_next.shape or len(cond_now) == 0:
        raise ValueError(f"need equal, non-empty batches of pairs, got {tuple(cond_now.shape)} "
                         f"and {tuple(cond_next.shape)}")
    noise = head.initial_noise(cond_now, generator)
    now = head.sample(cond_now, x_init=noise)
    later = head.sample(cond_next, x_init=noise)
    overlap = head.horizon - shift
    error = (now[:, shift:] - later[:, :overlap]).pow(2).mean(dim=(1, 2)).sqrt()
    return max(float(error.median()), 1e-3)
