"""PA-RL (Sobol Mark et al., 2024): improve actions with the critic, then distil them back
into the policy with the policy's own loss, whatever kind of policy it is.

Action optimisation at a state (``action_optimization``): take N windows of the base
policy, keep the k whose executed chunks the ensemble's mean Q ranks highest (global), and
take a few clipped gradient-ascent steps on Q from each (local). For distillation the N
windows are the ones cached with the transition (redrawn every ``rl.sample_refresh_every``
env steps), so the denoiser does not run in every policy update. The best candidate acts and
is the TD target's next action. For distillation the dataset window replaces the worst of the
k before the local step, and the label is drawn from softmax(Q) over the k (or their argmax);
the policy then trains on it with its head's own loss, so a diffusion, flow or energy head is
fine-tuned the same way it was trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from robo_policies.policy import Policy
from robo_policies.rl.action_optimization import refine_actions, score_actions, top_k_actions, top_k_indices
from robo_policies.rl.agent import FinetuneAgent
from robo_policies.rl.config import CalQLConfig
from robo_policies.rl.registry import register_algorithm
from robo_policies.utils.errors import ConfigError


@dataclass
class ParlConfig(CalQLConfig):
    """PA-RL's settings: the shared ones, its Cal-QL offline phase and the following."""

    offline_critic_steps: int = 5000
    """Cal-QL critic updates on the demonstrations before the first env step: PA-RL's offline
    phase runs by default (0: none; see ``CalQLConfig``)."""
    top_k: int = 2
    """Candidates kept after global optimisation (of N samples)."""
    refine_steps: int = 3
    """Gradient-ascent steps on Q per kept candidate (local optimisation)."""
    refine_step_size: float = 0.1
    """Step size of the local optimisation. Q-values of 0/1 success rewards have action
    gradients of about 0.3 (norm over a 48-D chunk), so 0.1 moves a chunk by up to ~0.03 per
    step, like EXPO's edits (the published 3e-4 suits returns in the tens)."""
    label_temperature: float = 0.05
    """The distillation label is drawn from softmax(Q / T) over the k candidates (T = 1 is
    the published raw-Q softmax, whose returns are in the tens; 0/1 success rewards give Q
    differences of hundredths, where T = 1 is nearly uniform)."""
    distill_argmax: bool = False
    """Distil the argmax candidate instead of a sample from softmax(Q / T) over the k (argmax
    labels from a young critic pull the policy towards its errors)."""

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= self.n_samples:
            raise ConfigError(f"rl.top_k must be in [1, rl.n_samples={self.n_samples}], got {self.top_k}")
        if self.label_temperature <= 0:
            raise ConfigError(f"rl.label_temperature must be > 0, got {self.label_temperature}")


@register_algorithm("parl", ParlConfig)
class PolicyAgnosticRL(FinetuneAgent):
    """PA-RL over chunk decisions; see the module docstring."""

    backs_up_policy_samples = True
    distils_policy_samples = True
    trains_policy_in_warm_up = False
    config: ParlConfig

    def __init__(self, policy: Policy, config: ParlConfig) -> None:
        super().__init__(policy, config)
        self.optimizers["policy"] = torch.optim.AdamW(policy.parameters(), lr=config.policy_lr)

    def optimise(self, samples: torch.Tensor, features: torch.Tensor,
                 dataset_windows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """From N policy windows (N, B, Tp, A) at states ``features``: (k optimised windows
        (k, B, Tp, A), their mean Q (k, B)); with ``dataset_windows`` (B, Tp, A) in place of
        the worst of the k."""
        view, config = self.view, self.config
        best = top_k_indices(features, view.executed(samples), self.critic, config.top_k)
        windows = samples[best, torch.arange(samples.shape[1])]
        if dataset_windows is not None:
            windows[-1] = dataset_windows
        chunks, q = self.refine(features, view.executed(windows))
        windows[..., view.executed_slice, :] = chunks.view(*chunks.shape[:2], view.n_action_steps, -1)
        return windows, q

    def refine(self, features: torch.Tensor, chunks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local optimisation of flat chunks (k, B, D): (refined chunks, their mean Q (k, B))."""
        refined = refine_actions(features, chunks, self.critic, self.config.refine_steps,
                                 self.config.refine_step_size)
        with torch.no_grad():
            return refined, score_actions(self.critic, features, refined)

    def choose(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator,
               explore: bool) -> torch.Tensor:
        features = self.view.features(obs)
        windows, q = self.optimise(self.view.sample_windows(obs, self.config.n_samples, generator), features)
        return windows[q.argmax(dim=0), torch.arange(q.shape[1])]

    def next_action(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                    generator: torch.Generator) -> torch.Tensor:
        features = batch["next_obs"]
        kept = top_k_actions(features, self.next_samples(rows, generator), self.critic, self.config.top_k)
        chunks, q = self.refine(features, kept)
        return chunks[q.argmax(dim=0), torch.arange(q.shape[1])]

    def update_actor(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     generator: torch.Generator) -> dict[str, float]:
        dataset = self.view.normalize_action(rows["window"])
        windows, q = self.optimise(self.samples(rows, generator), batch["obs"], dataset_windows=dataset)
        if self.config.distill_argmax:
            choice = q.argmax(dim=0)
        else:
            probs = (q.T / self.config.label_temperature).softmax(dim=-1)
            choice = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        labels = windows[choice, torch.arange(q.shape[1])]
        raw = self.policy.normalizer.unnormalize("action", labels)
        loss = self.policy.compute_loss(self.view.policy_batch(rows, action=raw))
        self.step("policy", loss)
        return {"policy_loss": loss.item(), "label_q": q.max(dim=0).values.mean().item(),
                "dataset_label_share": (choice == q.shape[0] - 1).float().mean().item()}
