"""Reinforcement-learning maths (advantages, losses, KL) shared by every policy."""
