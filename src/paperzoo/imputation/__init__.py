"""Time-series imputation objectives on PyPOTS models (PyPOTS's models, masks, metrics and
training harness are reused). Import each from its module."""
