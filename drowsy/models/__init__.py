"""YOLOv5-family detectors: `build_model("yolov5l6")` and inference helpers."""

from drowsy.models.yolo import YoloModel, available_models, build_model, fuse_conv_bn, model_info

__all__ = ["YoloModel", "available_models", "build_model", "fuse_conv_bn", "model_info"]
