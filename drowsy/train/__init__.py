"""Training: the engine and what it composes.

`engine` (`train` = build the run, then per epoch train, validate, checkpoint and log), `run` (the
run's parts, built once: model, EMA, optimizer, data, loaders; resuming), `loss` (the
YOLOv5 loss) with `assign` (which anchor and cell learns which box), `anchors` (autoanchor),
`optim` (parameter groups, freezing, the learning-rate schedule, the EMA), `runlog` (config.json and
metrics.jsonl beside the weights).
"""
