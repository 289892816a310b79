"""Online RL fine-tuning building blocks (issue 6, in progress): critic ensembles with random
subset targets (``critic``), replay that mixes offline demonstrations with online data
(``replay``), and the TD target with terminations told apart from time limits (``td``)."""
