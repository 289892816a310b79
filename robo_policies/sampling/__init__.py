"""Test-time sampling schemes built on the heads' shared solver: policy composition (GPC,
``composition``) and warm-started denoising (RTI, ``warmstart``)."""
