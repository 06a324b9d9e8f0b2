"""The monitor's detector: boxes in the frames' own pixels, the ONNX backend's export."""

import numpy as np
import pytest
import torch

from drowsy import CLASS_IDS, CLASSES


class BrightSquareDetector:
    """A stand-in detector that "detects" the bright square of its network input as a face, in
    network pixels, so the test sees whether detect_frames maps boxes back to the frame's own pixels."""

    stride, in_channels = 32, 1

    def decoded_predictions(self, pixels):
        out = torch.zeros(len(pixels), 1, 5 + len(CLASSES))
        for i, image in enumerate(pixels[:, 0]):
            ys, xs = torch.nonzero(image > 0.5, as_tuple=True)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            out[i, 0, :5] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 1.0])
            out[i, 0, 5 + CLASS_IDS["face"]] = 1.0
        return out


@pytest.mark.parametrize("height, width", [(360, 640), (640, 400)])
def test_detect_frames_returns_boxes_in_the_frames_own_pixels(height, width):
    from drowsy.monitor.detect import detect_frames

    frames = []
    for x1, y1 in ((100, 50), (220, 180)):
        image = np.zeros((height, width), np.uint8)
        image[y1 : y1 + 96, x1 : x1 + 128] = 255
        frames.append(image)
    found = detect_frames(BrightSquareDetector(), frames, img_size=320, conf=0.25, iou=0.5)
    for detections, (x1, y1) in zip(found, ((100, 50), (220, 180))):
        assert detections.shape == (1, 6) and int(detections[0, 5]) == CLASS_IDS["face"]
        assert np.asarray(detections[0, :4]) == pytest.approx([x1, y1, x1 + 128, y1 + 96], abs=2.5)  # 2x downscale
