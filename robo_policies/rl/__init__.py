"""Online RL fine-tuning in simulation (``robo finetune``).

The policy seen as an MDP over action chunks, whose critic sees cameras through the policy's
encoder frozen (``chunks``); critic ensembles with random-subset targets (``critic``); replay
that mixes demonstrations with online data and keeps camera frames once (``replay``); the TD
target with terminations told apart from time limits (``td``); tanh-Gaussians and their
temperature (``gaussian``); the methods behind one interface (``agent``): EXPO (``expo``,
with ``edit_policy``), PA-RL (``parl``, with ``action_optimization``), the RLPD baseline
(``rlpd``) and imitation only (``imitation``), each registered by name with its own config
(``registry``; the shared settings in ``config``); the loop (``finetune``) and saved
fine-tuned agents (``saved``)."""
