"""YOLOv5 detection loss: CIoU box loss, IoU-targeted objectness BCE and class BCE.

Positives come from `drowsy.train.assign.assign_targets`. The per-term gains follow YOLOv5's train.py,
which rescales the hyperparameter gains by the number of classes, levels and the image size, so
one hyperparameter file serves P5 and P6 models at any input size.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert

from drowsy.train.assign import LevelTargets, assign_targets

LOSS_PARTS = ("box", "obj", "cls")  # the terms of the loss, in the order YoloLoss returns them
REQUIRED_HYP = ("box", "cls", "cls_pw", "obj", "obj_pw", "anchor_t")

# Objectness weight per level, finest first: small objects are many and their cells many,
# so the fine levels get more weight (YOLOv5 values).
_OBJECTNESS_BALANCE = {3: (4.0, 1.0, 0.4)}
_OBJECTNESS_BALANCE_DEFAULT = (4.0, 1.0, 0.25, 0.06, 0.02)

# YOLOv5's gains were tuned on COCO: 80 classes, 3 levels, 640 px.
_REFERENCE_CLASSES = 80
_REFERENCE_LEVELS = 3
_REFERENCE_IMAGE_SIZE = 640.0

_FOCAL_ALPHA = 0.25
_MIN_SIZE = 1e-5  # smallest predicted box side the box loss sees, grid cells (see _box_loss)
_CIOU_EPS = 1e-7  # keeps CIoU's divisions finite (torchvision's value: the same results to the bit)


class YoloLoss:
    """YOLOv5 loss for a model whose forward returns raw predictions.

    model: exposes `anchors` [nl, na, 2] float32 (w, h) pixels, `strides` [nl] float32 and
        `num_classes`; read at every call, so anchors changed by autoanchor are used.
    hyp: YOLOv5 hyperparameters; uses box, cls, cls_pw, obj, obj_pw, anchor_t, and optionally
        fl_gamma (focal loss when > 0), label_smoothing (epsilon, default 0) and class_weights (one
        multiplier per class of each positive's box and class loss; drowsy.train.run derives them from
        class_balance, `class_weights`; absent: all 1).
    """

    def __init__(self, model: torch.nn.Module, hyp: dict):
        missing = [key for key in REQUIRED_HYP if key not in hyp]
        if missing:
            raise ValueError(f"hyp is missing key(s): {', '.join(missing)}")
        self.model = model
        self.hyp = hyp
        self._host_copies: dict[str, tuple[int, Tensor]] = {}
        weights = hyp.get("class_weights")
        self._class_weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)

    def __call__(self, raw: list[Tensor], targets: Tensor) -> tuple[Tensor, Tensor]:
        """Loss of one batch.

        raw: nl tensors [B, na, H_l, W_l, 5 + nc] (tx, ty, tw, th, objectness logit, class logits),
            any float dtype (bf16 under autocast is computed in float32).
        targets: [M, 6] float32 (batch_index, class_id, cx, cy, w, h), pixels of the network input, best
            left on the host: the assignment runs there (it does not depend on `raw`, so on a GPU it runs
            while the forward computes) and its results go to the device without the host waiting.
        Returns (loss, parts): loss is a float32 scalar equal to the per-image loss times the batch
        size B (YOLOv5 convention: gradients scale with B, and the learning rate was tuned for it);
        parts: float32 [3], the per-image terms after their gains (LOSS_PARTS: box, obj, cls), detached,
        on the device (read them back when needed: reading waits for the device).
        Box and class terms are means over the batch's positives of each level, so the loss of a
        batch equals the sum of its images' losses only when every image has as many positives.
        """
        num_classes = self.model.num_classes
        num_levels = len(raw)
        if num_levels != len(self.model.anchors):
            raise ValueError(f"got {num_levels} prediction levels for {len(self.model.anchors)} anchor sets")
        raw = [level.float() for level in raw]
        device = raw[0].device
        grid_shapes = [(level.shape[2], level.shape[3]) for level in raw]
        host_targets = targets if targets.device.type == "cpu" else targets.cpu()  # a copy only from a device
        level_targets = assign_targets(
            host_targets, self._on_host("anchors"), self._on_host("strides"), grid_shapes, self.hyp["anchor_t"]
        )

        box_loss = torch.zeros((), device=device)
        obj_loss = torch.zeros((), device=device)
        cls_loss = torch.zeros((), device=device)
        balance = objectness_balance(num_levels)
        if self._class_weights is not None and self._class_weights.device != device:
            self._class_weights = self._class_weights.to(device)  # once: the weights stay on the device
        for level, positives in enumerate(level_targets):
            positives = positives.to(device)
            prediction = raw[level]
            obj_target = torch.zeros(prediction.shape[:4], device=device)
            if len(positives):
                positive_raw = prediction[positives.indices]
                weights = None if self._class_weights is None else self._class_weights[positives.class_id]
                level_box_loss, iou = self._box_loss(positive_raw, positives)
                box_loss = box_loss + (level_box_loss if weights is None else level_box_loss * weights).mean()
                _scatter_best_iou(obj_target, positives, iou)
                if num_classes > 1:  # with one class, objectness already says it
                    cls_loss = cls_loss + self._class_loss(positive_raw[:, 5:], positives, weights)
            obj_loss = obj_loss + balance[level] * self._bce(prediction[..., 4], obj_target, self.hyp["obj_pw"])

        image_size = max(grid_shapes[0]) * self.model.strides[0].to(device=device, dtype=torch.float32)
        level_gain = _REFERENCE_LEVELS / num_levels
        box_loss = box_loss * self.hyp["box"] * level_gain
        obj_loss = obj_loss * self.hyp["obj"] * (image_size / _REFERENCE_IMAGE_SIZE) ** 2 * level_gain
        cls_loss = cls_loss * self.hyp["cls"] * num_classes / _REFERENCE_CLASSES * level_gain
        batch_size = raw[0].shape[0]
        return (box_loss + obj_loss + cls_loss) * batch_size, torch.stack([box_loss, obj_loss, cls_loss]).detach()

    def _on_host(self, name: str) -> Tensor:
        """The model's `anchors` or `strides` on the host: a host buffer as it is now (autoanchor may have
        changed it), a device buffer copied once per storage. On a device they do not change: autoanchor runs on
        the host before the model moves (drowsy.train.run.build_run), and DDP's per-forward broadcast of the
        buffers rewrites the same values (keying on the version counter would copy, and wait, at every step)."""
        buffer = getattr(self.model, name)
        if buffer.device.type == "cpu":
            return buffer
        if self._host_copies.get(name, (None,))[0] != buffer.data_ptr():
            self._host_copies[name] = (buffer.data_ptr(), buffer.detach().float().cpu())
        return self._host_copies[name][1]

    def _box_loss(self, positive_raw: Tensor, positives: LevelTargets) -> tuple[Tensor, Tensor]:
        """1 - CIoU of each positive ([P] float32), and its CIoU (detached).

        positive_raw: [P, 5 + nc] float32, raw predictions at the assigned (image, anchor, cell).
        """
        centre = positive_raw[:, 0:2].sigmoid() * 2 - 0.5
        size = (positive_raw[:, 2:4].sigmoid() * 2) ** 2 * positives.anchor_wh
        # A size under about 1e-7 cells cancels to 0 in xyxy around a centre near 1 cell (float32), and
        # CIoU's aspect term w / h and its gradient turn NaN. The untrained head gives such sizes (raw
        # t_wh under -9: its outputs have long tails on flat image regions; seen on the first batch at
        # 1280 px). Such sizes count as _MIN_SIZE, their gradient passes unchanged, larger ones are
        # untouched to the bit.
        size = size + (size.detach().clamp_min(_MIN_SIZE) - size.detach())
        predicted = box_convert(torch.cat([centre, size], dim=1), "cxcywh", "xyxy")
        assigned = box_convert(positives.box, "cxcywh", "xyxy")
        ciou_loss = complete_iou_loss(predicted, assigned)
        return ciou_loss, (1 - ciou_loss).detach()

    def _class_loss(self, class_logits: Tensor, positives: LevelTargets, weights: Tensor | None) -> Tensor:
        """BCE against smoothed one-hot labels, each positive's row times its weight ([P] or None: 1).
        class_logits: [P, nc] float32."""
        epsilon = self.hyp.get("label_smoothing", 0.0)
        target = torch.full_like(class_logits, 0.5 * epsilon)
        target[torch.arange(len(positives), device=class_logits.device), positives.class_id] = 1 - 0.5 * epsilon
        return self._bce(class_logits, target, self.hyp["cls_pw"], None if weights is None else weights[:, None])

    def _bce(self, logits: Tensor, target: Tensor, pos_weight: float, weights: Tensor | None = None) -> Tensor:
        """Mean BCE-with-logits (each element times `weights`, broadcast, when given), focal when
        hyp["fl_gamma"] > 0 (https://arxiv.org/abs/1708.02002).

        Written here because torchvision's sigmoid_focal_loss has no positive-class weight.
        """
        # torch.full: a constant made on the device (torch.tensor would copy it over from the host)
        loss = F.binary_cross_entropy_with_logits(
            logits, target, pos_weight=torch.full((), pos_weight, device=logits.device), reduction="none"
        )
        gamma = self.hyp.get("fl_gamma", 0.0)
        if gamma > 0:
            probability = logits.sigmoid()
            agreement = target * probability + (1 - target) * (1 - probability)
            alpha = target * _FOCAL_ALPHA + (1 - target) * (1 - _FOCAL_ALPHA)
            loss = loss * alpha * (1 - agreement) ** gamma
        return (loss if weights is None else loss * weights).mean()


def complete_iou_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """1 - CIoU per pair of boxes (Zheng et al. 2020, https://arxiv.org/abs/1911.08287): 1 - IoU, plus the
    squared centre distance over the squared diagonal of the enclosing box, plus alpha * v, where v measures
    the difference of the aspect angles and alpha = v / (1 - IoU + v) is held constant in the backward pass.

    predicted, target: [P, 4] float32 (x1, y1, x2, y2). Returns [P] float32.
    The same numbers as torchvision's `complete_box_iou_loss`, gradients included, to the bit (the same
    operations made in the same order, in three passes over the corners: autograd sums a tensor's gradients
    in the order its uses were made), so training is unchanged; but the intersection is a `where` over
    all pairs, not a boolean mask, whose data-dependent size makes the host wait for a GPU.
    """
    intersection, union = _intersection_union(predicted, target)
    iou = intersection / (union + _CIOU_EPS)
    # pass 2: distance of the centres against the diagonal of the enclosing box
    x1, y1, x2, y2 = predicted.unbind(dim=-1)
    tx1, ty1, tx2, ty2 = target.unbind(dim=-1)
    left, top, right, bottom = torch.min(x1, tx1), torch.min(y1, ty1), torch.max(x2, tx2), torch.max(y2, ty2)
    diagonal = ((right - left) ** 2) + ((bottom - top) ** 2) + _CIOU_EPS
    centre_x, centre_y, target_x, target_y = (x2 + x1) / 2, (y2 + y1) / 2, (tx1 + tx2) / 2, (ty1 + ty2) / 2
    distance_loss = 1 - iou + ((((centre_x - target_x) ** 2) + ((centre_y - target_y) ** 2)) / diagonal)
    # pass 3: the aspect term
    x1, y1, x2, y2 = predicted.unbind(dim=-1)
    tx1, ty1, tx2, ty2 = target.unbind(dim=-1)
    width, height, target_width, target_height = x2 - x1, y2 - y1, tx2 - tx1, ty2 - ty1
    v = (4 / (math.pi**2)) * torch.pow(torch.atan(target_width / target_height) - torch.atan(width / height), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + _CIOU_EPS)
    return distance_loss + alpha * v


def _intersection_union(predicted: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Pass 1 of `complete_iou_loss`: each pair's intersection area (0 where apart) and union area."""
    x1, y1, x2, y2 = predicted.unbind(dim=-1)
    tx1, ty1, tx2, ty2 = target.unbind(dim=-1)
    left, top, right, bottom = torch.max(x1, tx1), torch.max(y1, ty1), torch.min(x2, tx2), torch.min(y2, ty2)
    overlapping = (bottom > top) & (right > left)
    intersection = torch.where(overlapping, (right - left) * (bottom - top), 0.0)
    return intersection, (x2 - x1) * (y2 - y1) + (tx2 - tx1) * (ty2 - ty1) - intersection


def class_weights(counts, exponent: float) -> list[float]:
    """Per-class loss weights for class-balanced training: (the most common class's count / the class's
    count) ** exponent, scaled so that their mean over the counted objects is 1 (the loss keeps its size; the
    rare classes' positives weigh more). A class with no object gets 1. counts: objects per class id."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    present = counts > 0
    weights = torch.ones_like(counts)
    weights[present] = (counts.max() / counts[present]) ** exponent
    weights[present] /= (weights * counts).sum() / counts.sum()
    return weights.tolist()


def objectness_balance(num_levels: int) -> tuple[float, ...]:
    """Objectness loss weight of each level, finest first (YOLOv5: 3 levels -> 4.0, 1.0, 0.4)."""
    if num_levels in _OBJECTNESS_BALANCE:
        return _OBJECTNESS_BALANCE[num_levels]
    if num_levels > len(_OBJECTNESS_BALANCE_DEFAULT):
        raise ValueError(f"no objectness balance for {num_levels} levels")
    return _OBJECTNESS_BALANCE_DEFAULT[:num_levels]


def _scatter_best_iou(obj_target: Tensor, positives: LevelTargets, iou: Tensor) -> None:
    """Write each positive's CIoU (clamped >= 0) into obj_target [B, na, H, W], in place.

    Several targets can land on one (image, anchor, cell); the highest IoU wins. A max-reduce is
    used rather than YOLOv5's sort-then-assign, whose last-write-wins is not guaranteed by PyTorch
    for repeated indices.
    """
    batch, anchor, grid_y, grid_x = positives.indices
    _, num_anchors, height, width = obj_target.shape
    flat_index = ((batch * num_anchors + anchor) * height + grid_y) * width + grid_x
    obj_target.view(-1).scatter_reduce_(0, flat_index, iou.clamp(min=0), reduce="amax")
