"""Fusing one image's detections from several ensemble members (models and test-time views).

Every function takes per-member lists: boxes [n_k, 4] float (xyxy, pixels), scores [n_k] float,
labels [n_k] integer class ids (any numeric dtype holding whole numbers), and returns
(boxes [m, 4] float32, scores [m] float32, labels [m] int64), highest score first, on the device
of the first member's boxes.

(The recipe's own ensemble, every member's candidates joined and one class-aware NMS, is
`drowsy.infer.postprocess.to_detections` with fuse "nms".)
- `weighted_boxes_fusion`: WBF (Solovyev et al. 2019, https://arxiv.org/abs/1910.13302):
  overlapping boxes of a class are averaged instead of all but one being dropped.
"""

import math

import numpy as np
import torch

from drowsy.infer.boxes import iou_with

CONF_TYPES = ("avg", "max")


def weighted_boxes_fusion(
    boxes_list,
    scores_list,
    labels_list,
    weights=None,
    iou_thres: float = 0.55,
    skip_thres: float = 0.0,
    conf_type: str = "avg",
    max_det: int = 300,
):
    """Weighted boxes fusion of the members' detections.

    Boxes scoring below `skip_thres`, of zero area or with a weighted score (score * member weight)
    of 0 are left out. Per class, boxes are visited from the highest weighted score down; each
    joins the cluster whose fused box it overlaps most if that IoU exceeds `iou_thres`, else it
    starts a new cluster. A cluster's fused box is the mean of its boxes weighted by their weighted
    scores. Its score, for n boxes from M members with weights w:
    - "avg": mean weighted score * min(n, M) / sum(w) (one box per member at full score gives the
      score itself; a box only some members found is damped),
    - "max": highest weighted score / max(w).
    These are the rules of the reference implementation (the `ensemble-boxes` package, without
    its allows_overflow option). `weights`: one non-negative number per member, default all 1.
    """
    _check_fraction("iou_thres", iou_thres)
    _check_max_det(max_det)
    if conf_type not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {', '.join(CONF_TYPES)}, got {conf_type!r}")
    if not math.isfinite(skip_thres):
        raise ValueError(f"skip_thres must be a finite number, got {skip_thres}")
    member_weights = _member_weights(weights, len(boxes_list))
    boxes, scores, labels, members = _joined(boxes_list, scores_list, labels_list)
    device = boxes.device

    boxes, scores = boxes.cpu().double().numpy(), scores.cpu().double().numpy()
    labels, members = labels.cpu().numpy(), members.cpu().numpy()
    weighted_scores = scores * member_weights[members]
    # A box with a weighted score of 0 carries no weight in any mean (and alone would make 0 / 0).
    kept = (scores >= skip_thres) & (weighted_scores > 0) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, labels, weighted_scores = boxes[kept], labels[kept], weighted_scores[kept]

    fused_boxes, fused_scores, fused_labels = [], [], []
    for label in np.unique(labels):
        of_class = labels == label
        class_boxes, class_scores = _fuse_class(
            boxes[of_class], weighted_scores[of_class], iou_thres, conf_type, member_weights
        )
        fused_boxes.append(class_boxes)
        fused_scores.append(class_scores)
        fused_labels.append(np.full(len(class_scores), label, dtype=np.int64))
    if not fused_boxes:
        return _as_tensors(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), device)
    fused_scores = np.concatenate(fused_scores)
    order = np.argsort(-fused_scores, kind="stable")[:max_det]
    fused_boxes, fused_labels = np.concatenate(fused_boxes)[order], np.concatenate(fused_labels)[order]
    return _as_tensors(fused_boxes, fused_scores[order], fused_labels, device)


def _fuse_class(
    boxes: np.ndarray, weighted_scores: np.ndarray, iou_thres: float, conf_type: str, member_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of one class: boxes [n, 4] float64, weighted_scores [n] -> fused boxes [k, 4], scores [k].

    The visit is sequential by nature (a cluster's fused box moves as boxes join it); each step
    compares the box with all clusters at once.
    """
    order = np.argsort(-weighted_scores, kind="stable")
    boxes, weighted_scores = boxes[order], weighted_scores[order]
    fused = np.empty_like(boxes)  # the clusters' current fused boxes
    box_sums = np.empty_like(boxes)  # sum of weighted score * box per cluster
    score_sums = np.empty(len(boxes))
    leading_scores = np.empty(len(boxes))  # visited best first: a cluster's first score is its highest
    sizes = np.zeros(len(boxes), dtype=np.int64)
    count = 0
    for box, score in zip(boxes, weighted_scores):
        if count:
            overlaps = iou_with(box, fused[:count])
            best = int(overlaps.argmax())
            if overlaps[best] > iou_thres:
                box_sums[best] += score * box
                score_sums[best] += score
                sizes[best] += 1
                fused[best] = box_sums[best] / score_sums[best]
                continue
        fused[count], box_sums[count] = box, score * box
        score_sums[count] = leading_scores[count] = score
        sizes[count] = 1
        count += 1
    sizes = sizes[:count]
    if conf_type == "max":
        scores = leading_scores[:count] / member_weights.max()
    else:
        scores = score_sums[:count] / sizes * np.minimum(sizes, len(member_weights)) / member_weights.sum()
    return fused[:count], scores


def _joined(boxes_list, scores_list, labels_list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated, concatenated members: boxes [N, 4] float32, scores [N] float32, labels [N] int64,
    members [N] int64 (index of the list entry each box came from)."""
    if not (len(boxes_list) == len(scores_list) == len(labels_list)):
        raise ValueError(
            f"boxes_list, scores_list and labels_list must have one entry per member, got "
            f"{len(boxes_list)}, {len(scores_list)} and {len(labels_list)}"
        )
    if not boxes_list:
        raise ValueError("no members: boxes_list is empty")
    device = torch.as_tensor(boxes_list[0]).device
    all_boxes, all_scores, all_labels, all_members = [], [], [], []
    for k, (boxes, scores, labels) in enumerate(zip(boxes_list, scores_list, labels_list)):
        boxes, scores, labels = (torch.as_tensor(t, device=device) for t in (boxes, scores, labels))
        _check_member(k, boxes, scores, labels)
        all_boxes.append(boxes.float())
        all_scores.append(scores.float())
        all_labels.append(labels.long())
        all_members.append(torch.full((len(labels),), k, dtype=torch.int64, device=device))
    return torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_labels), torch.cat(all_members)


def _check_member(k: int, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> None:
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"member {k}: boxes must have shape [n, 4], got {list(boxes.shape)}")
    if scores.shape != (len(boxes),) or labels.shape != (len(boxes),):
        raise ValueError(
            f"member {k}: scores and labels must have shape [{len(boxes)}] like its boxes, got "
            f"{list(scores.shape)} and {list(labels.shape)}"
        )
    if not (torch.isfinite(boxes.float()).all() and torch.isfinite(scores.float()).all()):
        raise ValueError(f"member {k}: boxes and scores must be finite")
    if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
        raise ValueError(f"member {k}: boxes must be xyxy with x2 >= x1 and y2 >= y1")
    not_class_ids = labels < 0
    if labels.is_floating_point():
        not_class_ids |= labels != labels.round()  # also true for NaN
    if not_class_ids.any():
        raise ValueError(f"member {k}: labels must be non-negative whole numbers")


def _member_weights(weights, members: int) -> np.ndarray:
    if weights is None:
        return np.ones(members)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (members,):
        raise ValueError(f"weights must hold one number per member ({members}), got shape {list(weights.shape)}")
    if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {weights.tolist()}")
    return weights


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_max_det(max_det: int) -> None:
    if max_det < 1:
        raise ValueError(f"max_det must be >= 1, got {max_det}")


def _as_tensors(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, device) -> tuple:
    return (
        torch.as_tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4),
        torch.as_tensor(scores, dtype=torch.float32, device=device),
        torch.as_tensor(labels, dtype=torch.int64, device=device),
    )
