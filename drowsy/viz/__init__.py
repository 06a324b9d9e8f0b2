"""Tables and plots for people: the labels before training, training runs, the chain's summary.

`figures` (plot style, one colour per class, a record drawn with its boxes, saving figures),
`explore` (notebooks 01-02: class counts, co-occurrence, box sizes, splits, the diet rules), `runs`
(notebooks 03-04: a run's metrics.jsonl as tables and curves), `summary` (the closing summary of
./run_all.sh, `python -m drowsy.viz.summary`).
"""
