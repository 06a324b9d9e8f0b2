"""YOLOv5 loss: terms, perfect predictions, batching, optimisation, gradients and dtypes."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, complete_box_iou_loss

from drowsy.config import Hyp, load_yaml
from drowsy.data.dataset import DetectionDataset
from drowsy.train.assign import assign_targets
from drowsy.train.loss import LOSS_PARTS, YoloLoss, class_weights, complete_iou_loss, objectness_balance
from drowsy.train.run import loss_hyp

NUM_CLASSES = 7
IMAGE_SIZE = 64
HYP = load_yaml("data/hyp.scratch-p6.yaml")


# YOLOv5's default anchors (w, h), pixels: P3-P5 and P3-P6 models.
ANCHORS = {
    3: [[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]], [[116, 90], [156, 198], [373, 326]]],
    4: [
        [[19, 27], [44, 40], [38, 94]],
        [[96, 68], [86, 152], [180, 137]],
        [[140, 301], [303, 264], [238, 542]],
        [[436, 615], [739, 380], [925, 792]],
    ],
}


class StandInDetector(nn.Module):
    """Smallest model with the detector's interface: one 1x1 conv per level on a pooled image."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 1, num_levels: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("strides", 2.0 ** torch.arange(3, 3 + num_levels))
        self.register_buffer("anchors", torch.tensor(ANCHORS[num_levels], dtype=torch.float32))
        outputs = self.anchors.shape[1] * (5 + num_classes)
        self.heads = nn.ModuleList(nn.Conv2d(in_channels, outputs, 1) for _ in range(len(self.strides)))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        raw = []
        for stride, head in zip(self.strides.tolist(), self.heads):
            level = head(F.avg_pool2d(images, int(stride)))
            batch, _, height, width = level.shape
            level = level.view(batch, self.anchors.shape[1], 5 + self.num_classes, height, width)
            raw.append(level.permute(0, 1, 3, 4, 2).contiguous())
        return raw


def random_raw(model: StandInDetector, batch_size: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(IMAGE_SIZE // int(stride),) * 2 for stride in model.strides]
    na, outputs = model.anchors.shape[1], 5 + model.num_classes
    return [torch.randn(batch_size, na, height, width, outputs, generator=generator) for height, width in shapes]


def image_targets(batch_index: int) -> torch.Tensor:
    """Three well separated boxes (batch_index, class, cx, cy, w, h), pixels of a 64 px image."""
    boxes = torch.tensor([[1, 13.0, 14.0, 12.0, 16.0], [4, 44.0, 40.0, 30.0, 36.0], [5, 20.0, 50.0, 9.0, 7.0]])
    return torch.cat([torch.full((3, 1), float(batch_index)), boxes], dim=1)


def logit(probability: torch.Tensor) -> torch.Tensor:
    return torch.log(probability / (1 - probability))


def positives_of(raw: list[torch.Tensor], model: StandInDetector, targets: torch.Tensor, anchor_t: float):
    grid_shapes = [(level.shape[2], level.shape[3]) for level in raw]
    return assign_targets(targets, model.anchors, model.strides, grid_shapes, anchor_t)


def make_perfect(raw: list[torch.Tensor], model: StandInDetector, targets: torch.Tensor, anchor_t: float) -> None:
    """Set the box logits of every positive so its decoded box equals its target, in place."""
    for prediction, positives in zip(raw, positives_of(raw, model, targets, anchor_t)):
        centre_p = (positives.box[:, :2] + 0.5) / 2  # inverse of sigmoid(t) * 2 - 0.5
        size_p = torch.sqrt(positives.box[:, 2:] / positives.anchor_wh) / 2  # inverse of (sigmoid(t) * 2) ** 2 * a
        prediction[positives.indices + (slice(0, 4),)] = logit(torch.cat([centre_p, size_p], dim=1))


def named(parts: torch.Tensor) -> dict:
    """YoloLoss's parts tensor as {"box": ..., "obj": ..., "cls": ...} floats."""
    return dict(zip(LOSS_PARTS, parts.tolist()))


def test_empty_image_has_only_objectness_loss():
    model = StandInDetector()
    loss, parts = YoloLoss(model, HYP)(random_raw(model, 1, seed=0), torch.zeros(0, 6))
    parts = named(parts)

    assert parts["box"] == 0 and parts["cls"] == 0
    assert parts["obj"] > 0
    assert loss.item() == pytest.approx(parts["obj"])


def test_perfect_boxes_give_zero_box_loss():
    model = StandInDetector()
    targets = image_targets(0)
    raw = random_raw(model, 1, seed=0)
    make_perfect(raw, model, targets, HYP["anchor_t"])

    _, parts = YoloLoss(model, HYP)(raw, targets)
    parts = named(parts)

    assert parts["box"] == pytest.approx(0, abs=1e-6)
    assert parts["cls"] > 0  # the class logits were left random


def test_highest_iou_wins_where_targets_share_a_cell():
    # Two boxes with one centre share every cell and anchor; the loose one must not lower the
    # objectness target written by the exactly predicted one, whatever their order.
    model = StandInDetector()
    hyp = dict(HYP, anchor_t=100.0)  # both boxes match the same anchors
    exact = torch.tensor([[0, 1, 30.0, 34.0, 20.0, 22.0]])
    loose = torch.tensor([[0, 1, 30.0, 34.0, 6.0, 40.0]])
    raw = random_raw(model, 1, seed=3)
    make_perfect(raw, model, exact, hyp["anchor_t"])
    for level in raw:
        level[..., 4] = 12.0  # confident everywhere: the loss is small only where the target is ~1

    loss = YoloLoss(model, hyp)
    _, alone = loss(raw, exact)
    alone = named(alone)
    _, loose_first = loss(raw, torch.cat([loose, exact]))
    loose_first = named(loose_first)
    _, loose_last = loss(raw, torch.cat([exact, loose]))
    loose_last = named(loose_last)

    assert loose_first["obj"] == pytest.approx(alone["obj"], rel=1e-5)
    assert loose_last["obj"] == pytest.approx(alone["obj"], rel=1e-5)


def test_batch_loss_is_the_sum_of_per_image_losses():
    # Same boxes in both images, so each level has as many positives per image (see YoloLoss).
    model = StandInDetector()
    loss = YoloLoss(model, HYP)
    raw = random_raw(model, 2, seed=1)

    batch_loss, batch_parts = loss(raw, torch.cat([image_targets(0), image_targets(1)]))
    batch_parts = named(batch_parts)
    first_loss, first_parts = loss([level[:1] for level in raw], image_targets(0))
    first_parts = named(first_parts)
    second_loss, second_parts = loss([level[1:] for level in raw], image_targets(0))
    second_parts = named(second_parts)

    assert batch_loss.item() == pytest.approx(first_loss.item() + second_loss.item(), rel=1e-5)
    for name in ("box", "obj", "cls"):
        assert batch_parts[name] == pytest.approx((first_parts[name] + second_parts[name]) / 2, rel=1e-5)


def test_optimising_raw_predictions_lowers_the_loss():
    model = StandInDetector()
    loss = YoloLoss(model, HYP)
    targets = torch.cat([image_targets(0), image_targets(1)])
    raw = [nn.Parameter(level) for level in random_raw(model, 2, seed=2)]
    optimiser = torch.optim.Adam(raw, lr=0.05)

    history = []
    for _ in range(50):
        value, parts = loss(raw, targets)
        parts = named(parts)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        history.append(parts)

    for name in ("box", "obj", "cls"):
        assert history[-1][name] < 0.5 * history[0][name], name


@pytest.mark.parametrize("num_levels", [3, 4])
def test_gradients_reach_the_model_and_are_finite(num_levels):
    model = StandInDetector(num_levels=num_levels)
    images = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))

    value, _ = YoloLoss(model, HYP)(model(images), torch.cat([image_targets(0), image_targets(1)]))
    value.backward()

    gradients = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert all(g.abs().sum() > 0 for g in gradients)


@pytest.mark.parametrize("raw_wh", [-12.0, -60.0])  # a side that cancels to 0 in xyxy; one that underflows to 0
def test_collapsed_predicted_boxes_give_finite_gradients(raw_wh):
    # the untrained head at 1280 px gave positives raw t_wh under -10, and every gradient turned NaN
    model = StandInDetector()
    targets = image_targets(0)
    raw = random_raw(model, 1, seed=0)
    for prediction, positives in zip(raw, positives_of(raw, model, targets, HYP["anchor_t"])):
        prediction[positives.indices + (slice(2, 4),)] = raw_wh
    raw = [level.requires_grad_() for level in raw]

    value, parts = YoloLoss(model, HYP)(raw, targets)
    parts = named(parts)
    value.backward()

    assert math.isfinite(parts["box"]) and parts["box"] > 0
    assert all(torch.isfinite(level.grad).all() for level in raw)


def test_boxes_of_ordinary_size_are_scored_as_torchvision_scores_them():
    model = StandInDetector()
    targets = image_targets(0)
    raw = random_raw(model, 1, seed=3)
    parts = named(YoloLoss(model, HYP)(raw, targets)[1])
    expected = 0.0
    for prediction, positives in zip(raw, positives_of(raw, model, targets, HYP["anchor_t"])):
        positive = prediction[positives.indices]
        centre = positive[:, :2].sigmoid() * 2 - 0.5
        size = (positive[:, 2:4].sigmoid() * 2) ** 2 * positives.anchor_wh
        assert size.min() > 1e-3  # nowhere near the floor
        predicted = box_convert(torch.cat([centre, size], dim=1), "cxcywh", "xyxy")
        expected += complete_box_iou_loss(predicted, box_convert(positives.box, "cxcywh", "xyxy")).mean().item()
    assert parts["box"] == pytest.approx(expected * HYP["box"], rel=1e-6)


def test_bfloat16_predictions_give_a_float32_loss():
    model = StandInDetector()
    raw = [level.bfloat16().requires_grad_() for level in random_raw(model, 2, seed=0)]

    value, parts = YoloLoss(model, HYP)(raw, torch.cat([image_targets(0), image_targets(1)]))
    parts = named(parts)
    value.backward()

    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert all(math.isfinite(v) for v in parts.values())
    assert all(level.grad.dtype == torch.bfloat16 and torch.isfinite(level.grad).all() for level in raw)


def test_anchors_are_read_at_call_time():
    model = StandInDetector()
    loss = YoloLoss(model, HYP)
    raw, targets = random_raw(model, 1, seed=0), image_targets(0)

    _, before = loss(raw, targets)

    before = named(before)
    model.anchors.mul_(1.5)  # as autoanchor would, after the loss was built
    _, after = loss(raw, targets)
    after = named(after)

    assert after["box"] != pytest.approx(before["box"])


def test_focal_loss_down_weights_easy_negatives():
    model = StandInDetector()
    raw, targets = random_raw(model, 1, seed=0), image_targets(0)
    for level in raw:
        level[..., 4] -= 4.0  # mostly confident "no object": easy negatives

    _, plain = YoloLoss(model, HYP)(raw, targets)

    plain = named(plain)
    _, focal = YoloLoss(model, dict(HYP, fl_gamma=1.5))(raw, targets)
    focal = named(focal)

    assert focal["obj"] < 0.1 * plain["obj"]


def test_label_smoothing_penalises_overconfident_classes():
    model = StandInDetector()
    targets = image_targets(0)
    raw = [torch.full_like(level, -20.0) for level in random_raw(model, 1, seed=0)]
    for prediction, positives in zip(raw, positives_of(raw, model, targets, HYP["anchor_t"])):
        prediction[positives.indices + (5 + positives.class_id,)] = 20.0  # certain and right

    _, sharp = YoloLoss(model, HYP)(raw, targets)

    sharp = named(sharp)
    _, smoothed = YoloLoss(model, dict(HYP, label_smoothing=0.1))(raw, targets)
    smoothed = named(smoothed)

    assert sharp["cls"] < 1e-6
    assert smoothed["cls"] > 1e-3


def test_class_weights_favour_rare_classes_and_keep_the_mean_over_objects():
    counts = [100, 25, 0, 4]
    weights = class_weights(counts, 0.5)
    assert weights[2] == 1.0  # no object of that class
    assert weights[1] / weights[0] == pytest.approx(2.0) and weights[3] / weights[0] == pytest.approx(5.0)
    assert sum(w * c for w, c in zip(weights, counts)) / sum(counts) == pytest.approx(1.0)
    assert class_weights(counts, 0.0) == [1.0, 1.0, 1.0, 1.0]


def test_a_run_weighs_classes_by_its_training_objects_only_when_class_balance_is_set(tmp_path):
    records = [  # 4 open eyes, 1 phone, nothing else
        {"file_name": f"{i}.jpg", "height": 64, "width": 64, "objects": [{"class": c, "position": [1, 1, 9, 9]}]}
        for i, c in enumerate(["eye_opened"] * 4 + ["phone"])
    ]
    data = DetectionDataset(tmp_path, records, 64)
    assert data.class_counts(NUM_CLASSES).tolist() == [4, 0, 0, 0, 0, 1, 0]
    hyp = Hyp.load("data/hyp.scratch-p6.yaml")
    assert "class_weights" not in loss_hyp(hyp, data)  # off in the recipe's file: the loss as before
    weights = loss_hyp(Hyp.from_dict(hyp.to_dict() | {"class_balance": 1.0}, "test"), data)["class_weights"]
    assert weights == pytest.approx(class_weights([4, 0, 0, 0, 0, 1, 0], 1.0)) and weights[5] == 4 * weights[0]


def test_class_weights_scale_each_positives_box_and_class_loss():
    model = StandInDetector()
    targets = image_targets(0)  # classes 1, 4 and 5
    raw = random_raw(model, 1, seed=3)
    _, plain = YoloLoss(model, HYP)(raw, targets)
    _, ones = YoloLoss(model, dict(HYP, class_weights=[1.0] * NUM_CLASSES))(raw, targets)
    assert torch.equal(plain, ones)  # weights of 1: the same loss to the bit
    _, doubled = YoloLoss(model, dict(HYP, class_weights=[2.0] * NUM_CLASSES))(raw, targets)
    plain, doubled = named(plain), named(doubled)
    assert doubled["box"] == pytest.approx(2 * plain["box"]) and doubled["cls"] == pytest.approx(2 * plain["cls"])
    assert doubled["obj"] == plain["obj"]
    rare = [1.0] * NUM_CLASSES
    rare[5] = 10.0  # only the class-5 box weighs more: box and class loss grow, by less than 10x
    _, weighted = YoloLoss(model, dict(HYP, class_weights=rare))(raw, targets)
    weighted = named(weighted)
    assert plain["box"] < weighted["box"] < 10 * plain["box"] and plain["cls"] < weighted["cls"] < 10 * plain["cls"]


def test_objectness_balance_follows_yolov5():
    assert objectness_balance(3) == (4.0, 1.0, 0.4)
    assert objectness_balance(4) == (4.0, 1.0, 0.25, 0.06)


def test_missing_hyperparameters_are_named():
    with pytest.raises(ValueError, match="obj_pw"):
        YoloLoss(StandInDetector(), {k: v for k, v in HYP.items() if k != "obj_pw"})


def test_real_yolov5n_learns_a_fixed_batch():
    from drowsy.models.yolo import build_model

    torch.manual_seed(0)
    model = build_model("yolov5n", num_classes=NUM_CLASSES, in_channels=1)
    images = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    loss = YoloLoss(model, HYP)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)

    history = []
    for _ in range(5):
        value, _ = loss(model(images), torch.cat([image_targets(0), image_targets(1)]))
        optimiser.zero_grad()
        value.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimiser.step()
        history.append(value.item())

    assert history[-1] < 0.93 * history[0]


def test_complete_iou_loss_is_torchvisions_to_the_bit_values_and_gradients():
    generator = torch.Generator().manual_seed(4)
    corners = torch.rand(400, 2, generator=generator) * 10
    sizes = torch.rand(400, 2, generator=generator) * 4 + 0.01
    predicted = torch.cat([corners, corners + sizes], dim=1)
    target = predicted[torch.randperm(400, generator=generator)]  # overlapping, touching and apart pairs
    target[:50] = predicted[:50]  # identical pairs
    target[50:100, :2] = predicted[50:100, 2:]  # corner to corner: zero overlap exactly
    target[50:100, 2:] = target[50:100, :2] + 1
    results = []
    for loss in (complete_iou_loss, complete_box_iou_loss):
        boxes = predicted.clone().requires_grad_()
        value = loss(boxes, target)
        value.sum().backward()
        results.append((value.detach(), boxes.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert (results[0][0][100:] > 1).any() and (results[0][0][:50] < 1e-6).all()  # apart pairs and equal ones
