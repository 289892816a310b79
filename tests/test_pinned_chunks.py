"""Pinned chunks: the same policy, observations and noise seed give the same actions.

The values were taken from the sampling code before its per-call overhead was cut (issue 19):
caching time grids and solver coefficients, fused normalisation and the like must leave every
sampler's chunks as they were. Three calls per sampler: the first a full solve, the others
warm-started where an RTI warm start is set. Pinned: each chunk's first action per batch row
and the chunk's sum.
"""

import pytest
import torch
from tiny_policies import make_policy, observations

from robo_policies.sampling.warmstart import WarmStart, WarmStartConfig

SAMPLERS = {  # name: (head, head settings, RTI warm steps)
    "flow-1": ("flow", {"inference_steps": 1}, None),
    "flow-heun-3": ("flow", {"solver": "heun", "inference_steps": 3}, None),
    "ddim-10": ("diffusion", {"prediction": "sample", "inference_steps": 10}, None),
    "ddim-10-eps": ("diffusion", {"inference_steps": 10}, None),
    "ddpm-10": ("diffusion", {"scheduler": "ddpm", "inference_steps": 10}, None),
    "rti-3": ("diffusion", {"prediction": "sample", "inference_steps": 10}, 3),
    "rti-3-ddpm": ("diffusion", {"scheduler": "ddpm", "inference_steps": 100}, 3),
    "rti-3-flow": ("flow", {"inference_steps": 10}, 3),
}

FIRST_ACTIONS = {  # per call: chunk[:, 0] flattened (3 rows x 2 action dims)
    "flow-1": [
        [-1.6792492, -1.9890461, -1.9411747, -1.9890461, -1.0744358, -0.5672297],
        [-1.7341930, 0.6633744, -0.8980097, 0.7753773, -0.4295311, 0.4303078],
        [1.9888397, -1.9890461, -0.1462456, -1.9890461, -1.7680364, -1.5371461],
    ],
    "flow-heun-3": [
        [-1.5527012, -1.9890461, -1.9411747, -1.9890461, -1.0114596, -0.5876197],
        [-1.6293584, 0.7127132, -0.8476574, 0.8705776, -0.3778698, 0.5265526],
        [1.9888397, -1.9890461, -0.0539409, -1.9890461, -1.6970766, -1.4211718],
    ],
    "ddim-10": [
        [-0.3440717, 1.2499974, -0.5434881, 0.7711244, -0.2169067, 1.2865589],
        [-0.3370898, 1.3395704, -0.6020375, 1.0327342, -0.2069906, 1.5092506],
        [-0.3559899, 1.2956527, -0.5545300, 0.8479777, -0.2191935, 1.4543295],
    ],
    "ddim-10-eps": [
        [-1.2985023, -0.9307246, -1.4476365, -0.9196668, -1.4254777, -0.8234854],
        [-1.2048373, 0.6388397, -1.8081284, 0.7126149, -1.3805529, -0.4335602],
        [1.7983345, -1.0037216, -0.2343919, -1.0677648, -1.3678058, -0.9562744],
    ],
    "ddpm-10": [
        [0.2974299, -0.1716798, 1.6149895, -1.9890461, -1.9305066, 1.4126583],
        [-0.4660287, -1.9463851, 1.8375982, -1.7479492, -1.9060212, 0.6472736],
        [-0.0953084, -1.0735637, -1.6511422, -0.6994255, -0.7950217, 1.9536155],
    ],
    "rti-3": [
        [-0.3440717, 1.2499974, -0.5434881, 0.7711244, -0.2169067, 1.2865589],
        [-0.3273578, 1.4468930, -0.6049225, 1.2203546, -0.1997293, 1.6533015],
        [-0.3529490, 1.4169588, -0.5616839, 0.9565324, -0.2273948, 1.5904918],
    ],
    "rti-3-ddpm": [
        [1.9165255, 0.8101473, -1.9411747, 0.3181390, 1.8871980, 1.1907667],
        [1.8298526, 1.5591878, -1.8410732, 0.7231137, -0.5610753, -0.2515774],
        [-0.9304233, 1.9498596, 1.4247360, -1.9890461, 1.9888397, 1.8901064],
    ],
    "rti-3-flow": [
        [-1.5899708, -1.9890461, -1.9411747, -1.9890461, -1.0410534, -0.5930152],
        [-0.6396598, -0.7411499, 0.4269278, -0.4134732, -0.4502945, 1.1761227],
        [1.7861934, -1.9890461, -0.5435712, -1.9890461, -1.6875508, 0.1112137],
    ],
}

SUMS = {  # per call: chunk.sum()
    "flow-1": [2.946701, -1.735204, -3.881910],
    "flow-heun-3": [4.497266, 0.272949, -1.929057],
    "ddim-10": [2.139072, 2.648195, 2.371999],
    "ddim-10-eps": [2.013122, -8.994749, -0.959544],
    "ddpm-10": [5.373713, -1.090286, 2.587283],
    "rti-3": [2.139072, 5.140070, 4.597005],
    "rti-3-ddpm": [-1.725295, 8.759926, 10.180835],
    "rti-3-flow": [3.900699, -2.332205, -7.266078],
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_chunks_are_those_pinned(name):
    head, settings, warm_steps = SAMPLERS[name]
    policy = make_policy(head, **settings)
    if warm_steps:
        policy.warm_start = WarmStart(WarmStartConfig(steps=warm_steps))
    obs = observations()
    for call in range(3):
        chunk = policy.predict_chunk(obs)
        torch.testing.assert_close(chunk[:, 0].flatten(), torch.tensor(FIRST_ACTIONS[name][call]),
                                   rtol=0.0, atol=1e-6)
        assert chunk.sum().item() == pytest.approx(SUMS[name][call], abs=1e-5)
