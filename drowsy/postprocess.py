"""From raw head outputs to detections: YOLOv5 box decoding and class-aware NMS.

decode:              raw list of [B, na, H_l, W_l, 5 + nc] -> [B, N, 5 + nc] (cx, cy, w, h pixels, obj, class probs)
non_max_suppression: [B, N, 5 + nc] -> per image [n, 6] float32 (x1, y1, x2, y2 pixels, score, class_id)
"""

import functools

import torch
import torchvision

# More candidates than this per image only happen for an untrained model; NMS time grows
# quadratically with them, so keep the best-scoring ones.
MAX_NMS_CANDIDATES = 30000


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2), same units and dtype."""
    center, size = boxes[..., :2], boxes[..., 2:4]
    return torch.cat((center - size / 2, center + size / 2), dim=-1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (x1, y1, x2, y2) -> [..., 4] (cx, cy, w, h), same units and dtype."""
    top_left, bottom_right = boxes[..., :2], boxes[..., 2:4]
    return torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), dim=-1)


@functools.lru_cache(maxsize=32)
def _cell_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """[1, 1, H, W, 2] float32 (x, y) index of every cell of one level."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack((xs, ys), dim=-1).view(1, 1, height, width, 2)


def decode(raw: list[torch.Tensor], anchors: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """YOLOv5 decoding of every level, joined.

    raw: list over levels of [B, na, H_l, W_l, 5 + nc] logits (any float dtype); anchors: [nl, na, 2] (w, h)
    pixels; strides: [nl]. Returns [B, N, 5 + nc] float32 with N = sum of na * H_l * W_l, ordered level,
    anchor, row, column: (cx, cy, w, h) pixels, objectness probability, class probabilities.
    Computed in float32 even under autocast, where exp-like terms would lose precision.
    """
    levels = []
    with torch.autocast(device_type=raw[0].device.type, enabled=False):
        for level, prediction in enumerate(raw):
            prediction = prediction.float()
            batch, num_anchors, height, width, _ = prediction.shape
            grid = _cell_grid(height, width, prediction.device)
            stride = strides[level].float()
            anchor_wh = anchors[level].float().view(1, num_anchors, 1, 1, 2)
            sigmoid = prediction.sigmoid()
            # The 2x-scaled sigmoids let centres reach past their cell and sizes span 0-4x the anchor,
            # the range the loss's anchor_t matching assumes.
            xy = (sigmoid[..., :2] * 2 - 0.5 + grid) * stride
            wh = (sigmoid[..., 2:4] * 2) ** 2 * anchor_wh
            levels.append(torch.cat((xy, wh, sigmoid[..., 4:]), dim=-1).view(batch, -1, prediction.shape[-1]))
    return torch.cat(levels, dim=1)


def non_max_suppression(decoded: torch.Tensor, conf_thres: float = 0.001, iou_thres: float = 0.6,
                        max_det: int = 300, multi_label: bool = True) -> list[torch.Tensor]:
    """Class-aware NMS per image.

    decoded: [B, N, 5 + nc] from `decode`. score = objectness * class probability; a box is a candidate
    when its objectness and its score both exceed conf_thres. With multi_label one box may yield one
    detection per class above the threshold (better recall for mAP), otherwise only its best class.
    Returns per image [n, 6] float32 (x1, y1, x2, y2 pixels, score, class_id), best score first, n <= max_det.
    """
    detections = []
    for prediction in decoded.float():
        prediction = prediction[prediction[:, 4] > conf_thres]
        boxes = xywh_to_xyxy(prediction[:, :4])
        class_scores = prediction[:, 5:] * prediction[:, 4:5]
        if multi_label:
            box_index, class_id = (class_scores > conf_thres).nonzero(as_tuple=True)
            scores = class_scores[box_index, class_id]
        else:
            scores, class_id = class_scores.max(dim=1)
            box_index = (scores > conf_thres).nonzero(as_tuple=True)[0]
            scores, class_id = scores[box_index], class_id[box_index]
        if scores.numel() > MAX_NMS_CANDIDATES:
            top = scores.topk(MAX_NMS_CANDIDATES).indices
            box_index, class_id, scores = box_index[top], class_id[top], scores[top]
        candidate_boxes = boxes[box_index]
        keep = torchvision.ops.batched_nms(candidate_boxes, scores, class_id, iou_thres)[:max_det]
        detections.append(torch.cat((candidate_boxes[keep], scores[keep, None], class_id[keep, None].float()), dim=1))
    return detections
