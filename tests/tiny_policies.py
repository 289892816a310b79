"""Tiny policies with random weights, for tests of sampling schemes (composition, warm start)."""

import numpy as np
import torch

from robo_policies.data import Normalizer
from robo_policies.policy import Policy, PolicyConfig

A = 2
SHAPES = {"pos": (3,), "goal": (2,)}


def tiny_config(head="diffusion", **overrides) -> PolicyConfig:
    """A small MLP-backbone config of ``head`` (4 solver steps where the head has steps);
    ``overrides`` are flat settings of the policy or its head (``PolicyConfig.with_overrides``)."""
    config = PolicyConfig(head=head)
    steps = {"inference_steps": 4} if "inference_steps" in config.setting_names() else {}
    tiny = dict(net="mlp", hidden_dim=32, n_blocks=1, time_dim=16, **steps)
    return config.with_overrides({**tiny, **overrides})


def make_policy(
    head="diffusion", seed=0, shapes=SHAPES, action_dim=A, action_range=2.0, **overrides
) -> Policy:
    """A tiny policy with random head weights (untrained output layers are zero: every
    parent would predict 0 and any mix would look right). 3-D ``shapes`` (H, W, 3) are camera
    images, read as uint8 like the envs give them, each by a small CNN."""
    rng = np.random.default_rng(0)
    image_keys = [key for key, shape in shapes.items() if len(shape) == 3]
    arrays = {"action": rng.uniform(-action_range, action_range, size=(50, action_dim))}
    arrays.update({key: rng.normal(size=(50, *shape)) for key, shape in shapes.items()
                   if key not in image_keys})
    normalizer = Normalizer.fit(arrays, dict.fromkeys(arrays, "minmax"))
    tiny_images = {"image_feature_dim": 8} if image_keys else {}
    config = tiny_config(head, **{"horizon": 8, "n_action_steps": 4, **tiny_images, **overrides})
    torch.manual_seed(seed)
    policy = Policy(config, shapes, image_keys, action_dim=action_dim, normalizer=normalizer)
    for parameter in policy.head.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    return policy.eval()


def observations(steps=2, batch=3):
    g = torch.Generator().manual_seed(1)
    return {key: torch.randn(batch, steps, *shape, generator=g) for key, shape in SHAPES.items()}
