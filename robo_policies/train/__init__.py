"""Training: the trainer loop, checkpoints and data-parallel set-up."""
