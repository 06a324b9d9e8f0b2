"""Autoanchor: check that the model's anchors can match the training boxes, refit them when not.

A box can be assigned to an anchor when no side ratio exceeds anchor_t, i.e.
max(w / aw, aw / w, h / ah, ah / h) < anchor_t (YOLOv5's matching rule). Best possible recall (BPR) is the
share of boxes with at least one such anchor; the fit is the mean over boxes of the best anchor's
worst-side ratio min(w / aw, aw / w, h / ah, ah / h), counted as 0 when the box cannot be matched.
Refitting = k-means on the log box sizes, then a seeded mutation search that maximises the fit.
scipy is not available, so the small k-means is written here.
"""

import numpy as np
import torch

from drowsy.errors import DrowsyError
from drowsy.progress import progress as progress_bar

MIN_BOX_SIDE = 2.0  # px; smaller boxes are annotation noise and would drag anchors towards zero
KMEANS_MAX_STEPS = 30
MAX_FIT_BOXES = 30_000  # bounds the search cost on 250k-box sets; a subset this large moves the fit by ~0.002
KMEANS_RESTARTS = 5  # one k-means++ seeding can still merge two clusters; keep the best of a few
MUTATION_PROB = 0.9  # chance that one anchor side is perturbed in a generation
MUTATION_SIGMA = 0.1  # relative size of a perturbation


def _wh_tensor(values) -> torch.Tensor:
    """Tensor, array or list of (w, h) pairs -> [M, 2] float32 on the CPU."""
    return torch.as_tensor(values, dtype=torch.float32, device="cpu").reshape(-1, 2)


def ratio_fit(anchors_px, boxes_wh) -> torch.Tensor:
    """[N, K] float32 in [0, 1]: for each box and anchor, the worst side ratio min(w / aw, aw / w, h / ah, ah / h).

    anchors_px: [K, 2] (w, h) pixels; boxes_wh: [N, 2] (w, h) pixels; tensors or arrays.
    """
    ratio = _wh_tensor(boxes_wh)[:, None] / _wh_tensor(anchors_px)[None]
    return torch.minimum(ratio, 1 / ratio).amin(dim=2)


def best_possible_recall(anchors_px, boxes_wh, anchor_t: float) -> float:
    """Share of boxes that at least one anchor can match under the anchor_t ratio rule."""
    best = ratio_fit(anchors_px, boxes_wh).amax(dim=1)
    return (best > 1 / anchor_t).float().mean().item()


def anchor_fitness(anchors_px, boxes_wh, anchor_t: float) -> float:
    """Mean over boxes of the best anchor's worst-side ratio, 0 for boxes no anchor can match; in [0, 1]."""
    best = ratio_fit(anchors_px, boxes_wh).amax(dim=1)
    return (best * (best > 1 / anchor_t)).mean().item()


def _kmeans(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means, best of KMEANS_RESTARTS k-means++ seedings. points: [M, D] float64 -> centres [n, D]."""
    best_centers, best_inertia = None, np.inf
    for _ in range(KMEANS_RESTARTS):
        centers = _lloyd(points, _kmeans_plus_plus(points, n, rng))
        inertia = _squared_distances(points, centers).min(1).sum()
        if inertia < best_inertia:
            best_centers, best_inertia = centers, inertia
    return best_centers


def _squared_distances(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return ((points[:, None] - centers[None]) ** 2).sum(-1)


def _kmeans_plus_plus(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Arthur & Vassilvitskii 2007: each next seed is drawn with probability proportional to its squared
    distance from the seeds so far, which spreads the seeds over the clusters."""
    centers = points[rng.integers(len(points))][None]
    for _ in range(n - 1):
        squared = _squared_distances(points, centers).min(1)
        # Fewer distinct points than clusters leaves all distances 0: then any point will do.
        weights = squared / squared.sum() if squared.sum() > 0 else None
        centers = np.vstack((centers, points[rng.choice(len(points), p=weights)]))
    return centers


def _lloyd(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Alternate assignment and mean updates until the assignment is stable (or KMEANS_MAX_STEPS)."""
    centers, assignment = centers.copy(), None
    for _ in range(KMEANS_MAX_STEPS):
        new_assignment = _squared_distances(points, centers).argmin(1)
        if assignment is not None and (new_assignment == assignment).all():
            break
        assignment = new_assignment
        for k in range(len(centers)):
            members = points[assignment == k]
            if len(members):  # an empty cluster keeps its centre
                centers[k] = members.mean(0)
    return centers


def kmeans_anchors(
    boxes_wh,
    n: int,
    img_size: int | None = None,
    anchor_t: float = 4.0,
    seed: int = 0,
    iterations: int = 1000,
    progress: bool = False,
) -> torch.Tensor:
    """Fit n anchors to box sizes.

    boxes_wh: [N, 2] (w, h) pixels at the training image size; boxes under 2 px on both sides are ignored,
    and at most MAX_FIT_BOXES of the rest (a seeded random subset) are used.
    k-means on log sizes, then `iterations` generations of a seeded mutation search keeping any change
    that raises `anchor_fitness`. Anchors are clipped to [2, img_size] px
    when img_size is given. Returns [n, 2] float32 (w, h) pixels, sorted by area (smallest first).
    """
    rng = np.random.default_rng(seed)
    all_wh = np.asarray(boxes_wh, dtype=np.float64).reshape(-1, 2)
    wh = all_wh[(all_wh >= MIN_BOX_SIDE).any(1)]
    if len(wh) == 0:
        raise DrowsyError(f"autoanchor: no box with a side of at least {MIN_BOX_SIDE:g} px to fit anchors to")
    if len(wh) > MAX_FIT_BOXES:
        wh = wh[rng.choice(len(wh), MAX_FIT_BOXES, replace=False)]
    fit_wh = torch.as_tensor(wh, dtype=torch.float32)
    # Cluster log sizes: the matching rule compares ratios, and in log space a 2x mismatch costs the same
    # for a 10 px eye as for a 400 px face (linear k-means spends its clusters on the large boxes).
    anchors = np.exp(_kmeans(np.log(wh.clip(MIN_BOX_SIDE)), n, rng))
    upper = float(img_size) if img_size else np.inf
    anchors = anchors.clip(MIN_BOX_SIDE, upper)
    fitness = anchor_fitness(anchors, fit_wh, anchor_t)
    for _ in progress_bar(range(iterations), desc="autoanchor search", enabled=progress):
        factors = np.ones_like(anchors)
        while (factors == 1).all():  # a generation that changes nothing is wasted
            perturbed = rng.random(anchors.shape) < MUTATION_PROB
            factors = perturbed * rng.random() * rng.standard_normal(anchors.shape) * MUTATION_SIGMA + 1
            factors = factors.clip(0.3, 3.0)
        candidate = (anchors * factors).clip(MIN_BOX_SIDE, upper)
        candidate_fitness = anchor_fitness(candidate, fit_wh, anchor_t)
        if candidate_fitness > fitness:
            anchors, fitness = candidate, candidate_fitness
    anchors = anchors[np.argsort(anchors.prod(1))]
    return torch.tensor(anchors, dtype=torch.float32)


def check_anchors(
    model: torch.nn.Module,
    boxes_wh: np.ndarray,
    anchor_t: float,
    threshold: float = 0.98,
    seed: int = 0,
    img_size: int | None = None,
    iterations: int = 1000,
    progress: bool = False,
) -> dict:
    """Check the model's anchors against the training boxes; refit them when BPR < threshold.

    model: has a buffer `anchors` [nl, na, 2] (w, h) pixels, written in place when the refit anchors
    are better (higher BPR, then higher fit); new anchors go to stride levels smallest area first.
    boxes_wh: [N, 2] (w, h) pixels at the training image size.
    Returns {"bpr_before", "fit_before", "bpr_after", "fit_after", "replaced", "anchors"} where
    "anchors" is the model's final [nl][na][2] list, pixels.
    """
    boxes_wh = np.asarray(boxes_wh, dtype=np.float32)
    if boxes_wh.ndim != 2 or boxes_wh.shape[1] != 2:
        raise ValueError(f"boxes_wh must be [N, 2], got shape {boxes_wh.shape}")
    if len(boxes_wh) == 0:
        raise DrowsyError("autoanchor: the training set has no boxes to check the anchors against")
    current = model.anchors.detach().cpu().view(-1, 2)
    before = (best_possible_recall(current, boxes_wh, anchor_t), anchor_fitness(current, boxes_wh, anchor_t))
    after, replaced = before, False
    if before[0] < threshold:
        refit = kmeans_anchors(boxes_wh, len(current), img_size, anchor_t, seed, iterations, progress)
        candidate = (best_possible_recall(refit, boxes_wh, anchor_t), anchor_fitness(refit, boxes_wh, anchor_t))
        if candidate > before:
            with torch.no_grad():
                model.anchors.copy_(refit.view_as(model.anchors))
            after, replaced = candidate, True
    return {
        "bpr_before": before[0],
        "fit_before": before[1],
        "bpr_after": after[0],
        "fit_after": after[1],
        "replaced": replaced,
        "anchors": model.anchors.detach().cpu().round(decimals=1).tolist(),
    }
