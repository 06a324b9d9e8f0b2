"""From head outputs to detections in original pixels: the one post-process that engine validation,
`drowsy predict`, the ablation and the driver monitor all use, so the model picked as best is
scored exactly as the submission is made.

decode:              head logits, per level [B, na, H_l, W_l, 5 + nc] -> decoded [B, N, 5 + nc]
                     (cx, cy, w, h network pixels, objectness, class probabilities)
to_candidates:       decoded + letterbox geometry -> per image [n, 5 + nc] in ORIGINAL pixels, clipped to
                     the image, boxes under MIN_BOX_PX dropped, objectness > conf
to_detections:       one or more ensemble members (model x test-time view) -> per image [m, 6] float32
                     (x1, y1, x2, y2 original pixels, score, class_id): candidates joined, then one
                     class-aware NMS (the recipe), or NMS per member then weighted boxes fusion
to_records:          detections -> competition records (rounded as the submission is)

Mapping candidates back before NMS instead of after changes nothing for a single view: the letterbox
is a uniform scale plus a shift, under which IoU, and so NMS, is invariant. Clipping before NMS
(YOLOv5 clips after) makes NMS compare boxes as they will be submitted.
"""

import functools

import torch
import torchvision

from drowsy import CLASSES
from drowsy.data.geometry import Letterbox
from drowsy.infer.ensemble import weighted_boxes_fusion

# More candidates than this per image only happen for an untrained model; NMS time grows
# quadratically with them, so keep the best-scoring ones.
MAX_NMS_CANDIDATES = 30000
FUSE_MODES = ("nms", "wbf")
# Boxes thinner than this (original pixels) after clipping cannot match a labelled object at IoU 0.75,
# and their area vanishes in the float32 arithmetic of class-offset NMS (IoU 0/0), so duplicates of
# them from different ensemble members would all survive NMS.
MIN_BOX_PX = 1.0


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
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack((xs, ys), dim=-1).view(1, 1, height, width, 2)


def decode(logits: list[torch.Tensor], anchors: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """YOLOv5 decoding of every level, joined.

    logits: list over levels of [B, na, H_l, W_l, 5 + nc] logits (any float dtype); anchors: [nl, na, 2] (w, h)
    pixels; strides: [nl]. Returns [B, N, 5 + nc] float32 with N = sum of na * H_l * W_l, ordered level,
    anchor, row, column: (cx, cy, w, h) pixels, objectness probability, class probabilities.
    Computed in float32 whatever the logits' dtype: they are cast first, and autocast leaves these
    elementwise ops in their inputs' dtype.
    """
    levels = []
    for level, prediction in enumerate(logits):
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


def non_max_suppression(
    decoded: torch.Tensor,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    multi_label: bool = True,
) -> list[torch.Tensor]:
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


def to_candidates(
    decoded: torch.Tensor, geometries: list[Letterbox], original_hw: list[tuple[int, int]], conf: float
) -> list[torch.Tensor]:
    """One member's candidates per image, in original pixels.

    decoded: [B, N, 5 + nc] float (cx, cy, w, h pixels of the network input, objectness, class
    probabilities); geometries: the B letterboxes that made the input; original_hw: B (h, w).
    Returns per image [n, 5 + nc] float32: (cx, cy, w, h) original pixels, clipped to the image, boxes
    under MIN_BOX_PX wide or high dropped, objectness > conf (NMS would drop the others anyway, and
    thresholding here keeps a joined ensemble small).
    """
    decoded = decoded.float()
    ratio = torch.tensor([g.ratio for g in geometries], dtype=decoded.dtype, device=decoded.device)[:, None, None]
    pad = torch.tensor([g.pad for g in geometries], dtype=decoded.dtype, device=decoded.device)[:, None, :]
    flip_width = torch.tensor([g.flip_width for g in geometries], dtype=decoded.dtype, device=decoded.device)
    restored = decoded.clone()
    mirrored = flip_width > 0  # a mirrored centre x lands at width - x; widths are unchanged
    restored[mirrored, :, 0] = flip_width[mirrored, None] - decoded[mirrored, :, 0]
    restored[..., :2] = (restored[..., :2] - pad) / ratio
    restored[..., 2:4] = decoded[..., 2:4] / ratio
    return [_clipped(image[image[:, 4] > conf], hw) for image, hw in zip(restored, original_hw)]


def _clipped(candidates: torch.Tensor, original_hw: tuple[int, int]) -> torch.Tensor:
    """Clip [n, 5 + nc] candidates ((cx, cy, w, h) first) to the image; drop those left under MIN_BOX_PX."""
    height, width = original_hw
    boxes = xywh_to_xyxy(candidates[:, :4])
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    clipped = torch.cat((xyxy_to_xywh(boxes), candidates[:, 4:]), dim=1)
    return clipped[(clipped[:, 2] >= MIN_BOX_PX) & (clipped[:, 3] >= MIN_BOX_PX)]


def to_detections(
    members: list[tuple[torch.Tensor, list[Letterbox]]],
    original_hw: list[tuple[int, int]],
    conf: float,
    iou: float,
    max_det: int,
    fuse: str = "nms",
) -> list[torch.Tensor]:
    """Detections in original pixels from one or more ensemble members of one batch of B images.

    members: an iterable (e.g. a generator, which keeps one member's whole output in memory at a time)
    of, per member (a model at one test-time view), its decoded [B, N, 5 + nc] output and the B
    letterboxes of its input (`to_candidates`); original_hw: B (h, w). conf: score and objectness
    threshold; iou: NMS IoU (also WBF's clustering IoU); max_det: detections kept per image.
    fuse "nms": every member's candidates joined, then one class-aware NMS (the winning recipe);
    "wbf": NMS per member, then weighted boxes fusion across members. One member is plain detection.
    Returns per image [m, 6] float32 (x1, y1, x2, y2 original pixels, score, class_id), best first, on
    the first member's device.
    """
    per_member, device = [], None
    for decoded, geometries in members:  # one member's whole output in memory at a time
        device = device or decoded.device  # ONNX members' outputs come from the CPU
        per_member.append([c.to(device) for c in to_candidates(decoded, geometries, original_hw, conf)])
    per_image = list(zip(*per_member))
    if len(per_member) == 0:
        raise ValueError("to_detections: no members")
    if fuse == "nms" or len(per_member) == 1:
        return [_nms(torch.cat(candidates), conf, iou, max_det) for candidates in per_image]
    return [_fuse_wbf([_nms(c, conf, iou, max_det) for c in candidates], iou, max_det) for candidates in per_image]


def _nms(candidates: torch.Tensor, conf: float, iou: float, max_det: int) -> torch.Tensor:
    """[n, 5 + nc] candidates of one image -> [m, 6] detections (x1, y1, x2, y2, score, class_id)."""
    return non_max_suppression(candidates[None], conf_thres=conf, iou_thres=iou, max_det=max_det)[0]


def _fuse_wbf(member_detections: list[torch.Tensor], iou: float, max_det: int) -> torch.Tensor:
    """Weighted boxes fusion of one image's per-member detections ([n_k, 6], original pixels) -> [m, 6]."""
    boxes, scores, labels = weighted_boxes_fusion(
        [d[:, :4] for d in member_detections],
        [d[:, 4] for d in member_detections],
        [d[:, 5] for d in member_detections],
        iou_thres=iou,
        max_det=max_det,
    )
    return torch.cat((boxes, scores[:, None], labels[:, None].float()), dim=1)


def to_records(file_names: list[str], detections: list[torch.Tensor], classes=CLASSES) -> list[dict]:
    """Competition records: per image `{"file_name", "objects": [{"class", "position": [x1, y1, x2, y2],
    "confidence_score"}]}`, positions rounded to 0.1 px and scores to 4 decimals.

    detections: per image [n, 6] (x1, y1, x2, y2 original pixels, score, class_id); classes: id -> name.
    """
    if len(file_names) != len(detections):
        raise ValueError(f"{len(file_names)} file names but {len(detections)} detection tensors")
    records = []
    for file_name, image_detections in zip(file_names, detections):
        rows = image_detections.detach().cpu().tolist()
        records.append(
            {
                "file_name": file_name,
                "objects": [
                    {
                        "class": classes[int(class_id)],
                        "position": [round(v, 1) for v in (x1, y1, x2, y2)],
                        "confidence_score": round(score, 4),
                    }
                    for x1, y1, x2, y2, score, class_id in rows
                ],
            }
        )
    return records
