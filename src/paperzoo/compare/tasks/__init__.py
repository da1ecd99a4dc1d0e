"""Comparison tasks, one module each, discovered by :func:`paperzoo.compare.registry.tasks`.

A task module exposes ``TASK``, an instance of :class:`paperzoo.compare.task.Task`. Adding a
task means adding a module here; modules whose name starts with ``_`` are skipped.
"""
