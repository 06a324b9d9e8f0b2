"""Augmentation: mosaic, random affine, brightness and flip move the boxes with the pixels."""

import numpy as np
import pytest
import torch

from drowsy.data.augment import augment_value, box_candidates, flip_lr, mosaic4, random_affine
from drowsy.data.geometry import FILL, Letterbox, letterbox, letterbox_boxes, rect_letterbox
from drowsy.infer.postprocess import to_candidates, xywh_to_xyxy, xyxy_to_xywh


def unletterbox(boxes, geometry: Letterbox, original_hw) -> torch.Tensor:
    """Network xyxy boxes -> original xyxy boxes through the one post-process (scores 1, class 0)."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    decoded = torch.cat((xyxy_to_xywh(boxes), torch.ones(len(boxes), 2)), dim=1)[None]
    [candidates] = to_candidates(decoded, [geometry], [original_hw], conf=0.5)
    return xywh_to_xyxy(candidates[:, :4])


BRIGHT = 255


def square_image(hw, box, background=30, value=BRIGHT):
    """uint8 [h, w] of `background` with a filled rectangle `box` = (x1, y1, x2, y2) of `value`."""
    image = np.full(hw, background, np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = value
    return image


def bright_extent(image, threshold=128):
    """xyxy hull of the pixels above threshold (x2, y2 exclusive, like the boxes)."""
    ys, xs = np.nonzero(image > threshold)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_letterbox_shrinks_landscape_image_and_centres_it():
    image = np.full((360, 640), 200, np.uint8)
    out, geometry = letterbox(image, 320)
    assert out.shape == (320, 320)
    assert geometry == Letterbox(0.5, (0, 70))
    assert (out[:70] == FILL).all() and (out[250:] == FILL).all()
    assert (out[70:250] == 200).all()


def test_letterbox_grows_portrait_image_and_keeps_channels():
    image = np.full((50, 25, 3), 7, np.uint8)
    out, geometry = letterbox(image, 200)
    assert out.shape == (200, 200, 3)
    assert geometry == Letterbox(4.0, (50, 0))
    assert (out[:, :50] == FILL).all() and (out[:, 50:150] == 7).all()


def test_letterbox_boxes_land_on_the_object_and_round_trip():
    box = (100, 60, 300, 200)
    image = square_image((360, 640), box)
    out, geometry = letterbox(image, 320)
    network_boxes = letterbox_boxes(np.array([box], np.float32), geometry)
    np.testing.assert_allclose(network_boxes[0], bright_extent(out), atol=1)
    restored = unletterbox(network_boxes, geometry, (360, 640))
    np.testing.assert_allclose(restored, [box], atol=1e-4)


def test_unletterbox_clips_to_the_original_image_and_drops_slivers():
    geometry = Letterbox(0.5, (0, 70))
    boxes = torch.tensor([[-10.0, 60.0, 330.0, 260.0], [10.0, 80.0, 20.0, 90.0], [-30.0, 80.0, -0.2, 90.0]])
    restored = unletterbox(boxes, geometry, (360, 640))
    # the third box is 0.4 px wide once clipped to the image: under MIN_BOX_PX, dropped
    torch.testing.assert_close(restored, torch.tensor([[0.0, 0.0, 640.0, 360.0], [20.0, 20.0, 40.0, 40.0]]))


def test_rect_letterbox_pads_the_short_side_to_the_stride_only():
    frames = [np.full((360, 640), 7, np.uint8)] * 2
    padded, geometry = rect_letterbox(frames, 320, 32)
    assert padded.shape == (2, 192, 320)  # 320 x 180 inside, padded to 192 (not to 320)
    assert geometry == Letterbox(0.5, (0, 6))
    assert (padded[:, :6] == FILL).all() and (padded[:, 6:186] == 7).all() and (padded[:, 186:] == FILL).all()


def test_flip_lr_mirrors_boxes_with_the_image():
    image = square_image((40, 100), (10, 5, 30, 25))
    boxes = np.array([[10, 5, 30, 25]], np.float32)
    flipped, flipped_boxes = flip_lr(image, boxes)
    np.testing.assert_array_equal(flipped_boxes, [[70, 5, 90, 25]])
    np.testing.assert_array_equal(bright_extent(flipped), flipped_boxes[0])
    again, again_boxes = flip_lr(flipped, flipped_boxes)
    np.testing.assert_array_equal(again, image)
    np.testing.assert_array_equal(again_boxes, boxes)


def test_affine_with_identity_parameters_keeps_image_and_boxes():
    image = square_image((48, 64), (8, 10, 40, 30))
    boxes = np.array([[8, 10, 40, 30], [50, 2, 60, 40]], np.float32)
    classes = np.array([4, 0])
    out, out_boxes, out_classes = random_affine(image, boxes, classes, np.random.default_rng(0))
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(out_boxes, boxes)
    np.testing.assert_array_equal(out_classes, classes)


@pytest.mark.parametrize("seed", range(5))
def test_affine_box_follows_the_warped_object(seed):
    box = (60, 50, 110, 90)
    image = square_image((160, 160), box)
    out, boxes, classes = random_affine(
        image,
        np.array([box], np.float32),
        np.array([1]),
        np.random.default_rng(seed),
        degrees=30,
        translate=0.1,
        scale=0.3,
        shear=5,
    )
    assert out.shape == image.shape
    assert classes.tolist() == [1]
    # the corners' hull is the exact hull of the warped rectangle; pixels differ by interpolation only
    np.testing.assert_allclose(boxes[0], bright_extent(out), atol=1.5)


def test_affine_border_crops_the_output_and_perspective_keeps_boxes_inside():
    image = square_image((200, 200), (80, 80, 120, 120))
    boxes = np.array([[80, 80, 120, 120]], np.float32)
    out, out_boxes, _ = random_affine(
        image, boxes, np.array([0]), np.random.default_rng(1), perspective=0.0005, border=50
    )
    assert out.shape == (100, 100)
    assert len(out_boxes) == 1
    assert (out_boxes >= 0).all() and (out_boxes <= 100).all()
    np.testing.assert_allclose(out_boxes[0], bright_extent(out), atol=1.5)


def test_box_candidates_rule():
    cases = [  # (before, after, kept)
        ([0, 0, 10, 10], [0, 0, 10, 10], True),
        ([0, 0, 10, 10], [0, 0, 2, 10], False),  # a side of 2 px is not > 2
        ([0, 0, 10, 10], [0, 0, 3, 3], False),  # 9 % of the area left
        ([0, 0, 60, 3], [0, 0, 60, 3], False),  # aspect 20 is not < 20
        ([0, 0, 50, 3], [0, 0, 50, 3], True),  # thin but aspect 16.7
    ]
    before, after, kept = zip(*cases)
    assert box_candidates(np.array(before, np.float32), np.array(after, np.float32)).tolist() == list(kept)


@pytest.mark.parametrize("seed", range(4))
def test_mosaic_places_every_box_over_its_object(seed):
    size = 64
    shades = (100, 150, 200, 250)
    shapes = ((64, 48), (40, 64), (64, 64), (30, 50))
    images, boxes_list = [], []
    for (h, w), shade in zip(shapes, shades):
        box = (w // 4, h // 4, w // 4 + 12, h // 4 + 10)
        images.append(square_image((h, w), box, background=20, value=shade))
        boxes_list.append(np.array([box], np.float32))
    classes_list = [np.array([k]) for k in range(4)]
    canvas, boxes, classes = mosaic4(images, boxes_list, classes_list, size, np.random.default_rng(seed))
    assert canvas.shape == (2 * size, 2 * size)
    assert (boxes >= 0).all() and (boxes <= 2 * size).all()
    for shade_index, shade in enumerate(shades):
        visible = canvas == shade
        if shade_index not in classes:  # its object fell off the canvas
            assert not visible.any()
            continue
        x1, y1, x2, y2 = boxes[classes.tolist().index(shade_index)].astype(int)
        inside = np.zeros_like(visible)
        inside[y1:y2, x1:x2] = True
        assert (visible == inside).all()


def test_augment_value_scales_brightness_within_the_gain():
    image = np.tile(np.arange(0, 256, 5, dtype=np.uint8), (3, 1))
    assert augment_value(image, 0.0, np.random.default_rng(0)) is image
    values = image[0].astype(float)
    outputs = []
    for seed in range(10):
        out = augment_value(image, 0.4, np.random.default_rng(seed))[0].astype(float)
        # out = min(floor(v * f), 255) for one factor f: intersect the f each pixel allows
        lowest = (out[1:] / values[1:]).max()
        unsaturated = out[1:] < 255
        highest = ((out[1:][unsaturated] + 1) / values[1:][unsaturated]).min(initial=np.inf)
        assert lowest < highest and highest >= 0.6 and lowest <= 1.4
        assert out[0] == 0
        outputs.append(out)
    assert len({tuple(out) for out in outputs}) > 1
    same_seed = [augment_value(image, 0.4, np.random.default_rng(3)) for _ in range(2)]
    np.testing.assert_array_equal(*same_seed)
