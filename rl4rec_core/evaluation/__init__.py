"""Evaluation: full-ranking metrics, non-learned and learned baselines, policy evaluation, paired
bootstrap comparisons, and the results table."""
