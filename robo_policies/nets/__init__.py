"""Networks for action heads (denoisers, regressors) and observation encoders."""

from robo_policies.nets.embeddings import SinusoidalEmbedding
from robo_policies.nets.encoders import ImageEncoder, LowDimEncoder, ObservationEncoder
from robo_policies.nets.mlp import MLPResNet, MLPResNetDenoiser
from robo_policies.nets.unet1d import ConditionalUnet1D

__all__ = [
    "ConditionalUnet1D",
    "ImageEncoder",
    "LowDimEncoder",
    "MLPResNet",
    "MLPResNetDenoiser",
    "ObservationEncoder",
    "SinusoidalEmbedding",
]
