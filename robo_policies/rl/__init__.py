"""Online RL fine-tuning building blocks (issue 6, in progress): critic ensembles with random
subset targets (``critic``), replay that mixes offline demonstrations with online data
(``replay``), the TD target with terminations told apart from time limits (``td``), EXPO's
edit policy with on-the-fly argmax selection (``edit_policy``) and PA-RL's global and local
action optimisation (``action_optimization``). Not yet: the update loops, ``robo finetune``."""
