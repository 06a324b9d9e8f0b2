"""drowsy.infer.ensemble: the recipe's NMS join and weighted boxes fusion."""

import warnings

import numpy as np
import pytest
import torch

from drowsy.infer.ensemble import weighted_boxes_fusion


def member(boxes, scores, labels):
    return (
        torch.tensor(boxes, dtype=torch.float32),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.int64),
    )


def fuse(members, **options):
    boxes, scores, labels = zip(*members)
    return weighted_boxes_fusion(list(boxes), list(scores), list(labels), **options)


def test_wbf_of_a_model_with_itself_keeps_its_boxes_and_scores():
    model = member([[0, 0, 10, 10], [50, 50, 80, 90], [200, 10, 260, 40]], [0.9, 0.5, 0.3], [4, 0, 4])
    boxes, scores, labels = fuse([model, model])
    torch.testing.assert_close(boxes, model[0])
    torch.testing.assert_close(scores, model[1])
    torch.testing.assert_close(labels, model[2])


def test_wbf_two_overlapping_boxes_fuse_to_the_score_weighted_mean():
    first = member([[0, 0, 10, 10]], [0.9], [4])
    second = member([[1, 1, 11, 11]], [0.6], [4])  # IoU 81 / 119 = 0.68 > 0.55
    boxes, scores, labels = fuse([first, second])
    torch.testing.assert_close(boxes, torch.tensor([[0.4, 0.4, 10.4, 10.4]]))  # (0.9 a + 0.6 b) / 1.5
    torch.testing.assert_close(scores, torch.tensor([0.75]))  # mean score, both models agree
    assert labels.tolist() == [4]

    boxes, scores, _ = fuse([first, second], weights=[2, 1])  # weighted scores 1.8 and 0.6
    torch.testing.assert_close(boxes, torch.tensor([[0.25, 0.25, 10.25, 10.25]]))
    torch.testing.assert_close(scores, torch.tensor([0.8]))  # (1.8 + 0.6) / 2 * 2 / (2 + 1)

    _, scores, _ = fuse([first, second], conf_type="max")
    torch.testing.assert_close(scores, torch.tensor([0.9]))


def test_wbf_damps_a_box_only_some_models_found():
    _, scores, _ = fuse([member([[0, 0, 10, 10]], [0.8], [1]), member([[100, 100, 120, 120]], [0.6], [1])])
    torch.testing.assert_close(scores, torch.tensor([0.4, 0.3]))  # each found by 1 of 2 models


def test_wbf_never_fuses_different_classes():
    boxes, scores, labels = fuse([member([[0, 0, 10, 10]], [0.9], [1]), member([[0, 0, 10, 10]], [0.7], [2])])
    assert sorted(labels.tolist()) == [1, 2]
    torch.testing.assert_close(scores, torch.tensor([0.45, 0.35]))


def test_wbf_drops_low_scores_and_keeps_max_det_best():
    model = member([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0.9, 0.05, 0.5], [0, 0, 0])
    _, scores, _ = fuse([model], skip_thres=0.1)
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.5]))
    _, scores, _ = fuse([model], max_det=1)
    torch.testing.assert_close(scores, torch.tensor([0.9]))


def test_wbf_keeps_a_score_equal_to_the_skip_threshold():
    model = member([[0, 0, 10, 10], [40, 40, 50, 50]], [0.25, 0.24], [0, 0])  # 0.25 is exact in float32
    _, scores, _ = fuse([model], skip_thres=0.25)
    torch.testing.assert_close(scores, torch.tensor([0.25]))


def test_wbf_fuses_only_boxes_overlapping_more_than_the_iou_threshold():
    square = member([[0, 0, 10, 10]], [0.8], [0])
    half = member([[0, 0, 10, 5]], [0.8], [0])  # IoU 50 / 100 = 0.5 exactly
    assert len(fuse([square, half], iou_thres=0.5)[0]) == 2  # not more than 0.5: apart, as the reference
    assert len(fuse([square, half], iou_thres=0.49)[0]) == 1
    corner = member([[9, 9, 19, 19]], [0.8], [0])  # IoU 1 / 199
    assert len(fuse([square, corner], iou_thres=0)[0]) == 1  # 0: any overlap fuses
    _, scores, _ = fuse([square, square], iou_thres=1)  # 1: not even identical boxes fuse
    torch.testing.assert_close(scores, torch.tensor([0.4, 0.4]))  # each 0.8 * 1 / 2 members


def test_wbf_orders_equal_scores_by_class_then_input_and_keeps_300_by_default():
    # 301 disjoint boxes, many sharing a score: ties come out by class id, then in input order, so the
    # max_det cut is the same on every run (an unstable sort would reshuffle them).
    count = 301
    boxes = [[20 * (i % 20), 20 * (i // 20), 20 * (i % 20) + 10, 20 * (i // 20) + 10] for i in range(count)]
    scores = [(0.5, 0.5, 0.75, 0.5)[i % 4] for i in range(count)]
    labels = [(i // 3) % 2 for i in range(count)]
    fused, fused_scores, fused_labels = fuse([member(boxes, scores, labels)])
    expected = sorted(range(count), key=lambda i: (-scores[i], labels[i], i))[:300]
    torch.testing.assert_close(fused, torch.tensor([boxes[i] for i in expected], dtype=torch.float32))
    torch.testing.assert_close(fused_scores, torch.tensor([scores[i] for i in expected]))
    assert fused_labels.tolist() == [labels[i] for i in expected]


def test_wbf_leaves_out_zero_area_boxes_and_zero_weight_members():
    good = member([[0, 0, 10, 10]], [0.8], [1])
    flat = member(
        [[0, 0, 10, 10], [5, 5, 5, 20], [30, 30, 40, 30]], [0.8, 0.99, 0.99], [1, 1, 1]
    )  # no width, no height
    boxes, scores, _ = fuse([flat])
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0, 10, 10]]))
    torch.testing.assert_close(scores, torch.tensor([0.8]))
    muted = member([[2, 2, 12, 12], [100, 100, 120, 120]], [0.9, 0.9], [1, 1])
    boxes, scores, _ = fuse([good, muted], weights=[1, 0])  # the muted member moves no box and adds no box
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0, 10, 10]]))
    torch.testing.assert_close(scores, torch.tensor([0.8]))  # 0.8 * min(1, 2) / (1 + 0)


def test_wbf_takes_float_labels_and_empty_members():
    empty = member(np.zeros((0, 4)), [], [])
    boxes, scores, labels = weighted_boxes_fusion(
        [torch.tensor([[0.0, 0, 10, 10]]), empty[0]], [torch.tensor([0.8]), empty[1]], [torch.tensor([3.0]), empty[2]]
    )
    assert labels.dtype == torch.int64 and labels.tolist() == [3]
    assert boxes.dtype == scores.dtype == torch.float32
    boxes, scores, labels = fuse([empty, empty])
    assert boxes.shape == (0, 4) and scores.shape == labels.shape == (0,)


def test_wbf_equals_the_reference_implementation():
    reference = pytest.importorskip("ensemble_boxes").weighted_boxes_fusion
    rng = np.random.default_rng(0)
    for trial in range(60):
        models = int(rng.integers(1, 4))
        centres = rng.uniform(0, 0.7, (6, 2))
        boxes_list, scores_list, labels_list = [], [], []
        for _ in range(models):
            n = int(rng.integers(0, 12))
            corner = centres[rng.integers(0, 6, n)] + rng.normal(0, 0.02, (n, 2))
            boxes_list.append(np.clip(np.concatenate([corner, corner + rng.uniform(0.05, 0.25, (n, 2))], 1), 0, 1))
            scores_list.append(rng.uniform(0.01, 1, n))
            labels_list.append(rng.integers(0, 3, n))
        weights = rng.uniform(0.5, 2, models).tolist()
        conf_type = ("avg", "max")[trial % 2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it warns about boxes it clips to [0, 1]; these already are
            expected = reference(
                boxes_list,
                scores_list,
                labels_list,
                weights=weights,
                iou_thr=0.55,
                skip_box_thr=0.05,
                conf_type=conf_type,
            )
        as_tensors = [[torch.from_numpy(a) for a in arrays] for arrays in (boxes_list, scores_list, labels_list)]
        got = weighted_boxes_fusion(*as_tensors, weights=weights, iou_thres=0.55, skip_thres=0.05, conf_type=conf_type)
        got = [t.numpy() for t in got]
        # Same set of fused boxes; compare in one canonical order.
        expected_order = np.lexsort((expected[0][:, 0], expected[1], expected[2]))
        got_order = np.lexsort((got[0][:, 0], got[1], got[2]))
        np.testing.assert_allclose(got[0][got_order], expected[0][expected_order], atol=1e-6)
        np.testing.assert_allclose(got[1][got_order], expected[1][expected_order], atol=1e-6)
        np.testing.assert_array_equal(got[2][got_order], expected[2][expected_order])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(labels_list=[torch.tensor([0]), torch.tensor([1])]), "one entry per member"),
        (dict(boxes_list=[], scores_list=[], labels_list=[]), "^no members: boxes_list is empty$"),
        (dict(boxes_list=[torch.zeros(1, 5)]), r"^member 0: boxes must have shape \[n, 4\], got \[1, 5\]$"),
        (dict(scores_list=[torch.tensor([0.5, 0.4])]), "member 0: scores and labels must have shape"),
        (dict(boxes_list=[torch.tensor([[0.0, 0, float("nan"), 10]])]), "finite"),
        (dict(scores_list=[torch.tensor([float("inf")])]), "finite"),
        (dict(boxes_list=[torch.tensor([[10.0, 0, 0, 10]])]), "x2 >= x1"),
        (dict(labels_list=[torch.tensor([1.5])]), "whole numbers"),
        (dict(labels_list=[torch.tensor([-1])]), "whole numbers"),
        (dict(labels_list=[torch.tensor([-1.0])]), "whole numbers"),
        (dict(weights=[1, 2]), "one number per member"),
        (dict(weights=[-1]), "non-negative"),
        (dict(weights=[0]), "not all zero"),
        (dict(weights=[float("inf")]), "must be finite"),
        (dict(weights=[None]), "must be finite"),  # a `null` weight in a preset
        (dict(iou_thres=1.5), r"^iou_thres must be in \[0, 1\], got 1.5$"),
        (dict(conf_type="median"), "^conf_type must be one of avg, max, got 'median'$"),
        (dict(skip_thres=float("nan")), "^skip_thres must be a finite number, got nan$"),
        (dict(max_det=0), "max_det"),
    ],
)
def test_wbf_rejects_bad_input(arguments, message):
    valid = dict(
        boxes_list=[torch.tensor([[0.0, 0, 10, 10]])],
        scores_list=[torch.tensor([0.5])],
        labels_list=[torch.tensor([0])],
    )
    with pytest.raises(ValueError, match=message):
        weighted_boxes_fusion(**{**valid, **arguments})
