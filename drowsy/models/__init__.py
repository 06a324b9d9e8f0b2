"""YOLOv5-family detectors in plain PyTorch and their weights on disk.

Modules: `yolo` (`build_model("yolov5l6")`, P5 and P6 variants from data/models/*.yaml, fusing
Conv+BatchNorm for inference), `blocks` (Conv, C3, SPPF), `fused` (the fused BatchNorm+SiLU CPU
kernel, bn_silu.cpp), `checkpoint` (atomic checkpoints, loaded with `weights_only`).
"""
