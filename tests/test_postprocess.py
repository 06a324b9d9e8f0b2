import math

import pytest
import torch

from drowsy.postprocess import decode, non_max_suppression, xywh_to_xyxy, xyxy_to_xywh

ANCHORS = torch.tensor([[[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]],
                        [[30.0, 61.0], [62.0, 45.0], [59.0, 119.0]]])
STRIDES = torch.tensor([8.0, 16.0])
NUM_CLASSES = 3


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _raw(batch: int = 1, size: int = 64, fill: float = -20.0) -> list[torch.Tensor]:
    """Raw predictions for a 2-level model whose every sigmoid is ~0 unless set."""
    return [torch.full((batch, 3, size // int(s), size // int(s), 5 + NUM_CLASSES), fill) for s in STRIDES]


def test_box_conversions_round_trip():
    generator = torch.Generator().manual_seed(0)
    xyxy = torch.rand(50, 2, generator=generator) * 500
    xyxy = torch.cat((xyxy, xyxy + torch.rand(50, 2, generator=generator) * 100 + 1), dim=1)
    torch.testing.assert_close(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy)
    assert xyxy_to_xywh(torch.tensor([10.0, 20.0, 50.0, 30.0])).tolist() == [30.0, 25.0, 40.0, 10.0]


def test_decode_hand_built_prediction():
    raw = _raw()
    # Level 1 (stride 16, 4 x 4 cells), anchor 2 (59 x 119 px), cell row 3, column 1.
    raw[1][0, 2, 3, 1, :6] = torch.tensor([0.0, _logit(0.75), _logit(0.25), _logit(0.75), _logit(0.9), _logit(0.8)])
    decoded = decode(raw, ANCHORS, STRIDES)
    assert decoded.shape == (1, 3 * 8 * 8 + 3 * 4 * 4, 5 + NUM_CLASSES)
    assert decoded.dtype == torch.float32
    index = 3 * 8 * 8 + 2 * 4 * 4 + 3 * 4 + 1
    expected = [
        (0.5 * 2 - 0.5 + 1) * 16,  # cx: centre of column 1
        (0.75 * 2 - 0.5 + 3) * 16,  # cy: one cell lower than the centre of row 3
        (0.25 * 2) ** 2 * 59,  # w
        (0.75 * 2) ** 2 * 119,  # h
        0.9, 0.8,
    ]
    torch.testing.assert_close(decoded[0, index, :6], torch.tensor(expected))
    others = torch.cat((decoded[0, :index, 4], decoded[0, index + 1:, 4]))
    assert others.max() < 1e-6


def test_decode_batched_equals_one_by_one_and_autocast_gives_float32():
    generator = torch.Generator().manual_seed(1)
    raw = [torch.randn(2, 3, n, n, 5 + NUM_CLASSES, generator=generator) for n in (8, 4)]
    batched = decode(raw, ANCHORS, STRIDES)
    for i in range(2):
        torch.testing.assert_close(batched[i:i + 1], decode([r[i:i + 1] for r in raw], ANCHORS, STRIDES))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_precision = decode([r.bfloat16() for r in raw], ANCHORS, STRIDES)
    assert low_precision.dtype == torch.float32
    torch.testing.assert_close(low_precision, batched, rtol=0.05, atol=0.5)


def _decoded(rows: list[list[float]]) -> torch.Tensor:
    """[1, N, 5 + nc] from rows (cx, cy, w, h, obj, class probs...)."""
    return torch.tensor(rows).unsqueeze(0)


def test_nms_removes_a_duplicate_and_keeps_another_class():
    decoded = _decoded([
        [100, 100, 40, 40, 0.9, 0.9, 0.0, 0.0],  # class 0, best
        [102, 101, 40, 40, 0.8, 0.9, 0.0, 0.0],  # same object, same class: suppressed
        [101, 100, 40, 40, 0.9, 0.0, 0.7, 0.0],  # same place, class 1: kept
        [300, 300, 20, 20, 0.9, 0.5, 0.0, 0.0],  # elsewhere, class 0: kept
        [400, 400, 20, 20, 0.0005, 0.0, 0.0, 1.0],  # objectness below conf_thres: dropped
    ])
    (detections,) = non_max_suppression(decoded, conf_thres=0.01, iou_thres=0.6, multi_label=False)
    assert detections.shape == (3, 6)
    assert detections.dtype == torch.float32
    torch.testing.assert_close(detections[:, 4], torch.tensor([0.81, 0.63, 0.45]))
    assert detections[:, 5].tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(detections[0, :4], torch.tensor([80.0, 80.0, 120.0, 120.0]))


def test_nms_multi_label_and_max_det():
    two_classes = [[100, 100, 40, 40, 1.0, 0.6, 0.5, 0.001]]
    apart = [[10 * i, 0, 5, 5, 0.5, 0.9, 0, 0] for i in range(1, 6)]
    decoded = _decoded(two_classes + apart)
    (multi,) = non_max_suppression(decoded, conf_thres=0.01, multi_label=True)
    (single,) = non_max_suppression(decoded, conf_thres=0.01, multi_label=False)
    first_box = (multi[:, 0] == 80.0)
    assert sorted(multi[first_box, 5].tolist()) == [0.0, 1.0]  # both classes above the threshold
    assert single[single[:, 0] == 80.0, 5].tolist() == [0.0]
    (capped,) = non_max_suppression(decoded, conf_thres=0.01, max_det=3)
    assert capped.shape == (3, 6)
    assert capped[:, 4].tolist() == pytest.approx(sorted(multi[:, 4].tolist(), reverse=True)[:3])


def test_nms_per_image_and_empty_image():
    decoded = torch.cat((_decoded([[50, 50, 10, 10, 0.9, 0.9, 0, 0]]), _decoded([[50, 50, 10, 10, 0.0, 0.9, 0, 0]])))
    first, second = non_max_suppression(decoded, conf_thres=0.01)
    assert first.shape == (1, 6)
    assert second.shape == (0, 6)
