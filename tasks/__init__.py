"""Thin, typed Prefect tasks over ``rl4rec_core`` (and the MLflow integration)."""
