"""Training: the RL trainer (built from ``rl4rec_core/settings.py`` by ``build_trainer``), checkpoints with exact resume, the policy-gradient maths,
and supervised fine-tuning (the warm start of RL)."""
