"""Prefect flows that compose the tasks in ``tasks/`` into the rl4rec pipeline."""
