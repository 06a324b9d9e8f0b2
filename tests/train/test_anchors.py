"""Autoanchor: k-means anchors fit clustered boxes, and anchors that already fit are kept."""

import numpy as np
import pytest
import torch

from drowsy.errors import DrowsyError
from drowsy.models.yolo import build_model
from drowsy.train.anchors import anchor_fitness, best_possible_recall, check_anchors, kmeans_anchors

CLUSTERS = np.array(
    [[12, 14], [30, 20], [24, 48], [60, 60], [90, 150], [180, 120], [200, 260], [330, 200], [400, 420]],
    dtype=np.float64,
)


def _clustered_boxes(centers: np.ndarray, per_cluster: int = 200, spread: float = 0.05, seed: int = 0) -> np.ndarray:
    """[len(centers) * per_cluster, 2] box sizes, each a centre times a lognormal factor."""
    rng = np.random.default_rng(seed)
    return np.concatenate([c * np.exp(rng.normal(0, spread, (per_cluster, 2))) for c in centers])


def test_recall_and_fitness_by_hand():
    anchors = torch.tensor([[10.0, 10.0]])
    boxes = np.array([[10, 10], [39, 10], [41, 10], [10, 2]], dtype=np.float32)
    # Side ratios 1, 3.9, 4.1 and 5 against anchor_t 4: two of four boxes can be matched.
    assert best_possible_recall(anchors, boxes, anchor_t=4.0) == pytest.approx(0.5)
    assert anchor_fitness(anchors, boxes, anchor_t=4.0) == pytest.approx((1 + 10 / 39) / 4)
    assert best_possible_recall(anchors, boxes, anchor_t=6.0) == 1.0


def test_kmeans_recovers_clusters():
    boxes = _clustered_boxes(CLUSTERS)
    anchors = kmeans_anchors(boxes, n=9, img_size=640, anchor_t=4.0, seed=0, iterations=200)
    assert anchors.shape == (9, 2) and anchors.dtype == torch.float32
    areas = anchors.prod(1)
    assert (areas[1:] >= areas[:-1]).all()
    expected = CLUSTERS[np.argsort(CLUSTERS.prod(1))]
    np.testing.assert_allclose(anchors.numpy(), expected, rtol=0.1)


def test_kmeans_is_seeded():
    boxes = _clustered_boxes(CLUSTERS, spread=0.3)
    first = kmeans_anchors(boxes, n=6, anchor_t=4.0, seed=3, iterations=50)
    assert torch.equal(first, kmeans_anchors(boxes, n=6, anchor_t=4.0, seed=3, iterations=50))


def test_check_anchors_keeps_good_anchors():
    model = build_model("yolov5n")
    default = model.anchors.clone()
    boxes = _clustered_boxes(default.view(-1, 2).numpy(), per_cluster=50, spread=0.2)
    report = check_anchors(model, boxes, anchor_t=4.0)
    assert not report["replaced"]
    assert report["bpr_before"] == report["bpr_after"] == 1.0
    assert torch.equal(model.anchors, default)
    assert report["anchors"] == default.tolist()


def test_check_anchors_replaces_bad_anchors():
    model = build_model("yolov5n")
    with torch.no_grad():
        model.anchors.fill_(3.0)  # far too small for every box
    boxes = _clustered_boxes(CLUSTERS, per_cluster=50, spread=0.2)
    report = check_anchors(model, boxes, anchor_t=4.0, seed=0, iterations=100)
    assert report["replaced"]
    assert report["bpr_before"] < 0.1
    assert report["bpr_after"] > 0.98 and report["fit_after"] > report["fit_before"]
    areas = model.anchors.view(-1, 2).prod(1)
    assert (areas[1:] >= areas[:-1]).all()  # smallest anchors on the finest stride level
    assert best_possible_recall(model.anchors.view(-1, 2), boxes, 4.0) == pytest.approx(report["bpr_after"])


def test_check_anchors_without_boxes_is_a_user_error():
    with pytest.raises(DrowsyError, match="no boxes"):
        check_anchors(build_model("yolov5n"), np.zeros((0, 2)), anchor_t=4.0)
