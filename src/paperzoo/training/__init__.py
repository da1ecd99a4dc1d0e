"""Procedures that change how a model is trained, driven by :func:`paperzoo.engine.fit`: sample
reweighting, distillation, calibration and per-domain penalties. Import each from its module."""
