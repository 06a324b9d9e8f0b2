"""YOLOv5-style target assignment: which (image, anchor, cell) of each level learns which box.

A ground-truth box is a positive for every anchor whose shape is within a factor `anchor_t` of its
own (YOLOv5's side-ratio rule, no IoU), and for each such anchor it is learnt at three cells: the
cell holding its centre and the neighbouring cell on the nearer side in x and in y. The decoded
centre offset `sigmoid(t) * 2 - 0.5` spans [-0.5, 1.5], so a neighbouring cell can reach the centre
and three cells share the work instead of one (more positives, faster training).
"""

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass(frozen=True)
class LevelTargets:
    """The positives of one pyramid level; P rows, one per (target, anchor, cell) assignment.

    batch, anchor, grid_y, grid_x: [P] int64, index the level's raw output [B, na, H, W, 5 + nc].
    box: [P, 4] float32 (tx, ty, tw, th), grid units: centre relative to the top-left corner of the
        assigned cell (in [-0.5, 1.5]) and the box size.
    class_id: [P] int64.
    anchor_wh: [P, 2] float32 (w, h), grid units: the matched anchor.
    """

    batch: Tensor
    anchor: Tensor
    grid_y: Tensor
    grid_x: Tensor
    box: Tensor
    class_id: Tensor
    anchor_wh: Tensor

    @property
    def indices(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(batch, anchor, grid_y, grid_x): `raw[indices]` gives the positives' predictions [P, 5 + nc]."""
        return self.batch, self.anchor, self.grid_y, self.grid_x

    def __len__(self) -> int:
        return self.batch.shape[0]

    def to(self, device: torch.device) -> "LevelTargets":
        """These positives on `device`. From the host to a GPU through pinned memory, without waiting: the
        copies are queued behind the forward pass, and the host goes on."""
        if device.type == "cpu":
            return self
        return LevelTargets(
            *(getattr(self, field.name).pin_memory().to(device, non_blocking=True) for field in fields(self))
        )


def assign_targets(
    targets: Tensor,
    anchors_px: Tensor,
    strides: Tensor,
    grid_shapes: list[tuple[int, int]],
    anchor_t: float,
) -> list[LevelTargets]:
    """Assign ground-truth boxes to anchors and grid cells of every level.

    targets: [M, 6] float (batch_index, class_id, cx, cy, w, h), pixels of the network input.
    anchors_px: [nl, na, 2] float (w, h), pixels.
    strides: [nl] float, pixels per grid cell.
    grid_shapes: nl pairs (H, W), the grid size of each level.
    anchor_t: a box matches an anchor when max(w / aw, aw / w, h / ah, ah / h) < anchor_t.
    Returns nl LevelTargets on the device of `targets` (empty tensors when nothing matches).
    """
    if targets.ndim != 2 or targets.shape[1] != 6:
        raise ValueError(f"targets must be [M, 6], got {tuple(targets.shape)}")
    if not len(anchors_px) == len(strides) == len(grid_shapes):
        raise ValueError(
            f"levels disagree: {len(anchors_px)} anchor sets, {len(strides)} strides, {len(grid_shapes)} grids"
        )
    targets = targets.float()
    strides = torch.as_tensor(strides, dtype=torch.float32, device=targets.device)
    anchors_px = anchors_px.to(device=targets.device, dtype=torch.float32)
    return [
        _assign_level(targets, anchors_px[level] / strides[level], strides[level], grid_shape, anchor_t)
        for level, grid_shape in enumerate(grid_shapes)
    ]


def _assign_level(
    targets: Tensor, anchors: Tensor, stride: Tensor, grid_shape: tuple[int, int], anchor_t: float
) -> LevelTargets:
    """One level. targets: [M, 6] float32, pixels; anchors: [na, 2] float32, grid units."""
    grid_h, grid_w = grid_shape
    xywh = targets[:, 2:6] / stride  # grid units

    ratio = xywh[None, :, 2:4] / anchors[:, None, :]  # [na, M, 2]
    worst_ratio = torch.maximum(ratio, 1 / ratio).amax(dim=2)  # [na, M]
    anchor_idx, target_idx = torch.nonzero(worst_ratio < anchor_t, as_tuple=True)

    centre = xywh[target_idx, :2]  # [P, 2] (x, y)
    grid_size = torch.tensor([grid_w, grid_h], device=targets.device)
    own_cell = torch.minimum(centre.floor().long().clamp(min=0), grid_size - 1)
    cells, valid = _own_and_neighbour_cells(centre - centre.floor(), own_cell, grid_size)  # [3, P, 2], [3, P]

    cells = cells[valid]  # [Q, 2]
    anchor_idx = anchor_idx.expand(3, -1)[valid]
    target_idx = target_idx.expand(3, -1)[valid]
    matched = targets[target_idx]
    box = torch.cat([xywh[target_idx, :2] - cells, xywh[target_idx, 2:4]], dim=1)
    return LevelTargets(
        batch=matched[:, 0].long(),
        anchor=anchor_idx,
        grid_y=cells[:, 1],
        grid_x=cells[:, 0],
        box=box,
        class_id=matched[:, 1].long(),
        anchor_wh=anchors[anchor_idx],
    )


def _own_and_neighbour_cells(fraction: Tensor, own_cell: Tensor, grid_size: Tensor) -> tuple[Tensor, Tensor]:
    """Candidate cells: own, x-neighbour, y-neighbour ([3, P, 2] int64 (x, y)) and which exist ([3, P] bool).

    fraction: [P, 2] float32, centre position inside its cell, in [0, 1).
    The neighbour lies on the side the centre is nearer to: left/up when the fraction is < 0.5,
    right/down when > 0.5, none at exactly 0.5 (as YOLOv5) or when it would leave the grid.
    Unlike YOLOv5's `(W - x) % 1 < 0.5` test, a centre exactly on a cell's left edge (fraction 0)
    gets its left neighbour only, not a second copy of its own cell.
    """
    step = (fraction > 0.5).long() - (fraction < 0.5).long()  # [P, 2] in {-1, 0, 1}
    neighbour = own_cell + step
    exists = (step != 0) & (neighbour >= 0) & (neighbour < grid_size)  # [P, 2]
    zero = torch.zeros_like(step[:, 0])
    x_neighbour = own_cell + torch.stack([step[:, 0], zero], dim=1)
    y_neighbour = own_cell + torch.stack([zero, step[:, 1]], dim=1)
    cells = torch.stack([own_cell, x_neighbour, y_neighbour])
    valid = torch.stack([torch.ones_like(exists[:, 0]), exists[:, 0], exists[:, 1]])
    return cells, valid
