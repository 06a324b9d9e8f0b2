"""Box geometry on numpy arrays (xyxy, pixels), shared by the ensemble and the monitor; numpy only."""

import numpy as np


def iou_with(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU [k] of one box [4] with others [k, 4] (xyxy)."""
    width = np.minimum(others[:, 2], box[2]) - np.maximum(others[:, 0], box[0])
    height = np.minimum(others[:, 3], box[3]) - np.maximum(others[:, 1], box[1])
    intersection = np.clip(width, 0, None) * np.clip(height, 0, None)
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return intersection / (areas + (box[2] - box[0]) * (box[3] - box[1]) - intersection)
