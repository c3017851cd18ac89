"""Test helpers, imported as ``tests.helpers.<module>``: tiny real datasets, models and embeddings
built inside the tests (nothing is downloaded), and what the flow tests share."""
