"""Inference: from trained weights to boxes in original pixels and the submission.

`predict` (detectors, PyTorch or ONNX; test-time augmentation; ensembles; folders; the submission),
`postprocess` (decoding and the one post-process that validation, prediction and the monitor share:
`to_detections`, `to_records`), `ensemble` (weighted boxes fusion), `boxes` (box geometry on numpy
arrays), `export` (ONNX export).
"""
