"""Retrieval-time components: exact k-NN search and re-ranking."""
