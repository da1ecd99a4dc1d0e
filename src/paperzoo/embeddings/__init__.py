"""Embedding-model training: text and image-text contrastive objectives, hard-negative mining and
filtering, and their evaluation. Text objectives are sentence-transformers citizens (a loss a
sentence-transformers user can pass to its trainer). Import each from its module."""
