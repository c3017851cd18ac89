"""rl4rec core library: data, item embeddings, retrieval rewards, policies, RL training, evaluation.

Knows nothing of Prefect or MLflow; those live in ``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
