"""Item embeddings: sentence encoders (sentence-transformers, vLLM) behind one interface, and the
embedding files (``.pt`` tensor + JSON sidecar) they produce and the retrieval service reads."""
