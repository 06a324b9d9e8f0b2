"""Evaluation: how good the detectors and the monitor are.

`metrics` (COCOeval-exact mAP, PR curves, the confusion matrix) with its `plots`, `slices` (AP@0.75
per value of a `meta` key), `ablation` (notebook 05's table of inference variants),
`monitor_benchmark` (synthetic clip sets monitored and scored per event type; benchmarks/
monitor_events.py and notebook 06).
"""
