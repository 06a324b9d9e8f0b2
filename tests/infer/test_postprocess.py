"""Post-processing: decoding, boxes mapped back to original pixels and clipped, NMS and WBF, the submission records."""

import math

import pytest
import torch

from drowsy.data.geometry import Letterbox
from drowsy.infer.postprocess import (
    MAX_NMS_CANDIDATES,
    decode,
    non_max_suppression,
    to_candidates,
    to_detections,
    to_records,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

ANCHORS = torch.tensor([[[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]], [[30.0, 61.0], [62.0, 45.0], [59.0, 119.0]]])
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
    assert xywh_to_xyxy(torch.tensor([30.0, 25.0, 40.0, 10.0])).tolist() == [10.0, 20.0, 50.0, 30.0]  # one box
    batched = xyxy.view(5, 10, 4)  # any leading dimensions
    torch.testing.assert_close(xywh_to_xyxy(xyxy_to_xywh(batched)), batched)


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
        0.9,
        0.8,
    ]
    torch.testing.assert_close(decoded[0, index, :6], torch.tensor(expected))
    others = torch.cat((decoded[0, :index, 4], decoded[0, index + 1 :, 4]))
    assert others.max() < 1e-6


def test_decode_batched_equals_one_by_one_and_autocast_gives_float32():
    generator = torch.Generator().manual_seed(1)
    raw = [torch.randn(2, 3, n, n, 5 + NUM_CLASSES, generator=generator) for n in (8, 4)]
    batched = decode(raw, ANCHORS, STRIDES)
    for i in range(2):
        torch.testing.assert_close(batched[i : i + 1], decode([r[i : i + 1] for r in raw], ANCHORS, STRIDES))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_precision = decode([r.bfloat16() for r in raw], ANCHORS, STRIDES)
    assert low_precision.dtype == torch.float32
    torch.testing.assert_close(low_precision, batched, rtol=0.05, atol=0.5)


def _decoded(rows: list[list[float]]) -> torch.Tensor:
    """[1, N, 5 + nc] from rows (cx, cy, w, h, obj, class probs...)."""
    return torch.tensor(rows).unsqueeze(0)


def test_nms_removes_a_duplicate_and_keeps_another_class():
    decoded = _decoded(
        [
            [100, 100, 40, 40, 0.9, 0.9, 0.0, 0.0],  # class 0, best
            [102, 101, 40, 40, 0.8, 0.9, 0.0, 0.0],  # same object, same class: suppressed
            [101, 100, 40, 40, 0.9, 0.0, 0.7, 0.0],  # same place, class 1: kept
            [300, 300, 20, 20, 0.9, 0.5, 0.0, 0.0],  # elsewhere, class 0: kept
            [400, 400, 20, 20, 0.0005, 0.0, 0.0, 1.0],  # objectness below conf_thres: dropped
        ]
    )
    (detections,) = non_max_suppression(decoded, conf_thres=0.01, iou_thres=0.6, multi_label=False)
    assert detections.shape == (3, 6)
    assert detections.dtype == torch.float32
    torch.testing.assert_close(detections[:, 4], torch.tensor([0.81, 0.63, 0.45]))
    assert detections[:, 5].tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(detections[0, :4], torch.tensor([80.0, 80.0, 120.0, 120.0]))


def test_nms_defaults_are_conf_0_001_and_iou_0_6():
    # 40 x 40 boxes shifted by dx overlap with IoU (40 - dx) / (40 + dx): 32 / 48 = 0.67 at dx 8, 28 / 52 = 0.54 at 12
    decoded = _decoded(
        [
            [100, 100, 40, 40, 0.9, 0.9, 0.0],
            [108, 100, 40, 40, 0.8, 0.9, 0.0],  # IoU 0.67 with the first: suppressed
            [112, 100, 40, 40, 0.7, 0.9, 0.0],  # IoU 0.54: kept
            [300, 300, 40, 40, 0.04, 0.05, 0.0],  # score 0.002: above 0.001
            [400, 400, 40, 40, 0.02, 0.025, 0.0],  # score 0.0005: below
        ]
    )
    (detections,) = non_max_suppression(decoded)
    torch.testing.assert_close(detections[:, 4], torch.tensor([0.81, 0.63, 0.002]))


def test_nms_multi_label_and_max_det():
    two_classes = [[100, 100, 40, 40, 1.0, 0.6, 0.5, 0.001]]
    apart = [[10 * i, 0, 5, 5, 0.5, 0.9, 0, 0] for i in range(1, 6)]
    decoded = _decoded(two_classes + apart)
    (multi,) = non_max_suppression(decoded, conf_thres=0.01, multi_label=True)
    (single,) = non_max_suppression(decoded, conf_thres=0.01, multi_label=False)
    first_box = multi[:, 0] == 80.0
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


def test_a_score_equal_to_the_threshold_is_not_a_detection():
    # objectness 1.0 x class 0.5 = 0.5 exactly (powers of two): "exceed conf_thres" leaves it out
    decoded = _decoded([[100, 100, 40, 40, 1.0, 0.5, 0.0, 0.0], [300, 300, 40, 40, 1.0, 0.0, 0.75, 0.0]])
    for multi_label in (True, False):
        (detections,) = non_max_suppression(decoded, conf_thres=0.5, multi_label=multi_label)
        assert detections[:, 5].tolist() == [1.0], multi_label
    [candidates] = to_candidates(
        _decoded([[50, 50, 10, 10, 0.5, 1, 0, 0], [80, 80, 10, 10, 0.75, 1, 0, 0]]),
        [Letterbox(1.0, (0, 0))],
        [(200, 200)],
        conf=0.5,
    )
    assert candidates[:, 4].tolist() == [0.75]  # objectness equal to conf: dropped


def test_nms_keeps_300_by_default_and_caps_an_untrained_models_candidates_at_the_best():
    apart = [[10 * (i % 100) + 5, 10 * (i // 100) + 5, 4, 4, 0.9, 0.5 + i / 1000, 0, 0] for i in range(301)]
    (detections,) = non_max_suppression(_decoded(apart), conf_thres=0.01)
    assert len(detections) == 300 and detections[:, 4].min() > 0.9 * 0.5  # the lowest-scoring one is cut
    count = MAX_NMS_CANDIDATES + 5  # boxes on a grid 4 px apart, 2 px wide: no two overlap
    index = torch.arange(count, dtype=torch.float32)
    rows = torch.stack(
        (
            index % 200 * 4 + 2,
            index // 200 * 4 + 2,
            torch.full_like(index, 2),
            torch.full_like(index, 2),
            torch.ones_like(index),
            0.2 + 0.7 * index / count,
        ),
        dim=1,
    )
    (detections,) = non_max_suppression(rows[None], conf_thres=0.01, max_det=count)
    assert len(detections) == MAX_NMS_CANDIDATES  # only the best-scoring candidates go to NMS
    torch.testing.assert_close(detections[:, 4].min(), rows[5, 5])  # the 5 lowest were left out


def test_boxes_exactly_min_box_px_wide_or_high_are_kept():
    decoded = _decoded(
        [
            [10, 10, 1, 8, 0.9, 1, 0, 0],
            [30, 30, 8, 1, 0.9, 1, 0, 0],
            [50, 50, 0.5, 8, 0.9, 1, 0, 0],
            [70, 70, 8, 0.5, 0.9, 1, 0, 0],
            [200, 100, 2, 8, 0.9, 1, 0, 0],
        ]
    )
    [candidates] = to_candidates(decoded, [Letterbox(1.0, (0, 0))], [(200, 200)], conf=0.1)
    # 1 px wide and 1 px high kept; 0.5 px dropped; a box clipped to 1 px at the image's edge kept
    assert candidates[:, :4].tolist() == [[10, 10, 1, 8], [30, 30, 8, 1], [199.5, 100, 1, 8]]


def _member(rows: list[list[float]]) -> tuple[torch.Tensor, list[Letterbox]]:
    return _decoded(rows), [Letterbox(1.0, (0, 0))]


def test_to_detections_applies_its_conf_iou_and_max_det():
    # two class-0 boxes with IoU 40 x 30 / (2 x 40 x 40 - 40 x 30) = 0.6, and three apart
    rows = [
        [100, 100, 40, 40, 0.9, 1, 0, 0],
        [110, 100, 40, 40, 0.8, 1, 0, 0],
        [300, 300, 20, 20, 0.7, 1, 0, 0],
        [400, 300, 20, 20, 0.6, 1, 0, 0],
        [500, 300, 20, 20, 0.3, 1, 0, 0],
    ]
    hw = [(640, 640)]

    def scores(**kwargs) -> list[float]:
        (detections,) = to_detections([_member(rows)], hw, **{"conf": 0.1, "iou": 0.7, "max_det": 10, **kwargs})
        return [round(s, 2) for s in detections[:, 4].tolist()]

    assert scores() == [0.9, 0.8, 0.7, 0.6, 0.3]
    assert scores(iou=0.5) == [0.9, 0.7, 0.6, 0.3]  # the overlapping one suppressed
    assert scores(conf=0.5) == [0.9, 0.8, 0.7, 0.6]
    assert scores(max_det=2) == [0.9, 0.8]
    assert scores(fuse="wbf") == scores()  # one member: plain detection, whatever the fusion


def test_to_detections_fuses_members_by_nms_by_default_or_by_wbf_after_capping_each():
    # member A: X 0.9, Y 0.8; member B: Y 0.85, X 0.5 (X and Y far apart, the same class)
    a = _member([[100, 100, 40, 40, 1, 0.9, 0, 0], [400, 400, 40, 40, 1, 0.8, 0, 0]])
    b = _member([[400, 400, 40, 40, 1, 0.85, 0, 0], [100, 100, 40, 40, 1, 0.5, 0, 0]])
    hw, settings = [(640, 640)], {"conf": 0.1, "iou": 0.6, "max_det": 1}
    (joined,) = to_detections([a, b], hw, **settings)
    assert joined[:, 4].tolist() == pytest.approx([0.9])  # one NMS over both members: A's X
    assert to_detections([a, b], hw, fuse="nms", **settings)[0].tolist() == joined.tolist()
    (fused,) = to_detections([a, b], hw, fuse="wbf", **settings)
    # each member capped at max_det first (A: X, B: Y), then fused: X = 0.9 and Y = 0.85 averaged over 2 members
    assert fused[:, 4].tolist() == pytest.approx([0.45]) and fused[0, 0].item() == pytest.approx(80)
    (uncapped,) = to_detections([a, b], hw, fuse="wbf", **{**settings, "max_det": 2})
    assert uncapped[:, 4].tolist() == pytest.approx([0.825, 0.7])  # Y (0.8 + 0.85) / 2, X (0.9 + 0.5) / 2


def test_detections_and_records_name_what_is_wrong():
    with pytest.raises(ValueError, match="^to_detections: no members$"):
        to_detections([], [(64, 64)], conf=0.1, iou=0.6, max_det=10)
    with pytest.raises(ValueError, match="^2 file names but 1 detection tensors$"):
        to_records(["a.jpg", "b.jpg"], [torch.zeros((0, 6))])
