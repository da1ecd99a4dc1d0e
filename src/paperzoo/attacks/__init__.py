"""Adversarial attacks for robustness evaluation (transfer attacks against held-out models).
Import each from its module."""
