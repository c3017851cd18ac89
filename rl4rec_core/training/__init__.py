"""Training: the RL trainer and its settings, checkpoints with exact resume, the policy-gradient maths,
and supervised fine-tuning (the warm start of RL)."""
