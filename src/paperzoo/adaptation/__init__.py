"""Adaptation under distribution shift: source-free and universal domain adaptation, label-shift
recovery and post-hoc prediction rules that adapt a trained classifier's output. Import each from
its module."""
