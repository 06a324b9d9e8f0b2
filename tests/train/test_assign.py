"""Target assignment: the anchor ratio rule, the own + neighbour cells, empty/crowded/batched inputs."""

import math
import re

import pytest
import torch

from drowsy.train.assign import LevelTargets, assign_targets

# YOLOv5 P5 anchors (w, h) in pixels, strides 8, 16, 32.
P5_ANCHORS = torch.tensor(
    [[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]], [[116, 90], [156, 198], [373, 326]]],
    dtype=torch.float32,
)
P5_STRIDES = torch.tensor([8.0, 16.0, 32.0])
ANCHOR_T = 4.0


def grids_for(image_size: int) -> list[tuple[int, int]]:
    return [(image_size // int(s), image_size // int(s)) for s in P5_STRIDES]


def level_rows(level: LevelTargets) -> list[tuple]:
    """One tuple per assignment: (b, a, gy, gx, class, tx, ty, tw, th, aw, ah), sorted."""
    columns = [level.batch, level.anchor, level.grid_y, level.grid_x, level.class_id]
    integers = torch.stack(columns, dim=1).tolist()
    floats = torch.cat([level.box, level.anchor_wh], dim=1).tolist()
    return sorted(tuple(i) + tuple(f) for i, f in zip(integers, floats))


def reference_assign(targets, anchors_px, strides, grid_shapes, anchor_t) -> list[list[tuple]]:
    """Slow, readable statement of the rule, one target and one anchor at a time."""
    levels = []
    for level, (grid_h, grid_w) in enumerate(grid_shapes):
        stride = float(strides[level])
        rows = []
        for b, c, cx, cy, w, h in targets.tolist():
            x, y, w, h = cx / stride, cy / stride, w / stride, h / stride
            for a, (aw, ah) in enumerate((anchors_px[level] / stride).tolist()):
                if max(w / aw, aw / w, h / ah, ah / h) >= anchor_t:
                    continue
                own_x = min(max(math.floor(x), 0), grid_w - 1)
                own_y = min(max(math.floor(y), 0), grid_h - 1)
                cells = [(own_x, own_y)]
                frac_x, frac_y = x - math.floor(x), y - math.floor(y)
                if frac_x < 0.5 and own_x > 0:
                    cells.append((own_x - 1, own_y))
                if frac_x > 0.5 and own_x < grid_w - 1:
                    cells.append((own_x + 1, own_y))
                if frac_y < 0.5 and own_y > 0:
                    cells.append((own_x, own_y - 1))
                if frac_y > 0.5 and own_y < grid_h - 1:
                    cells.append((own_x, own_y + 1))
                for gx, gy in cells:
                    rows.append((int(b), a, gy, gx, int(c), x - gx, y - gy, w, h, aw, ah))
        levels.append(sorted(rows))
    return levels


def assert_rows_equal(actual: list[tuple], expected: list[tuple]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert got[:5] == want[:5]
        assert got[5:] == pytest.approx(want[5:], abs=1e-5)


def crowded_targets(generator: torch.Generator, batch_index: int, count: int, image_size: int) -> torch.Tensor:
    """`count` random boxes, 4 to 200 px, centres anywhere, plus boxes on cell centres and cell edges."""
    centres = torch.rand(count, 2, generator=generator) * image_size
    sizes = 4 + torch.rand(count, 2, generator=generator) * 196
    classes = torch.randint(0, 7, (count, 1), generator=generator).float()
    special = torch.tensor([[28.0, 44.0, 20, 20], [32.0, 32.0, 40, 30], [0.5, 0.5, 8, 8], [319.5, 319.5, 30, 60]])
    boxes = torch.cat([torch.cat([centres, sizes], dim=1), special])
    classes = torch.cat([classes, torch.zeros(len(special), 1)])
    return torch.cat([torch.full((len(boxes), 1), float(batch_index)), classes, boxes], dim=1)


def test_no_targets_gives_empty_levels_of_the_right_shapes():
    levels = assign_targets(torch.zeros(0, 6), P5_ANCHORS, P5_STRIDES, grids_for(64), ANCHOR_T)

    assert len(levels) == 3
    for level in levels:
        assert len(level) == 0
        for index in level.indices + (level.class_id,):
            assert index.shape == (0,) and index.dtype == torch.int64
        assert level.box.shape == (0, 4) and level.box.dtype == torch.float32
        assert level.anchor_wh.shape == (0, 2) and level.anchor_wh.dtype == torch.float32


def test_target_at_cell_centre_gets_its_own_cell_and_only_anchors_within_ratio():
    # Grid units at stride 8: anchors 1x1 (ratio 2), 5x5 (ratio 2.5), 2x0.5 (h ratio exactly 4: no match).
    anchors = torch.tensor([[[8.0, 8.0], [40.0, 40.0], [16.0, 4.0]]])
    target = torch.tensor([[0, 3, 28.0, 44.0, 16.0, 16.0]])  # centre (3.5, 5.5): middle of cell x=3, y=5

    (level,) = assign_targets(target, anchors, torch.tensor([8.0]), [(8, 8)], ANCHOR_T)

    # A centre exactly mid-cell is equally near both sides: no neighbour (YOLOv5's strict < 0.5).
    assert level_rows(level) == [
        (0, 0, 5, 3, 3, 0.5, 0.5, 2.0, 2.0, 1.0, 1.0),
        (0, 1, 5, 3, 3, 0.5, 0.5, 2.0, 2.0, 5.0, 5.0),
    ]


def test_off_centre_target_also_gets_nearer_neighbours_in_x_and_y():
    anchors = torch.tensor([[[8.0, 8.0]]])
    target = torch.tensor([[0, 1, 26.4, 46.4, 8.0, 8.0]])  # centre (3.3, 5.8): nearer the left and bottom

    (level,) = assign_targets(target, anchors, torch.tensor([8.0]), [(8, 8)], ANCHOR_T)

    cells = sorted(zip(level.grid_x.tolist(), level.grid_y.tolist(), level.box[:, :2].tolist()))
    assert [(gx, gy) for gx, gy, _ in cells] == [(2, 5), (3, 5), (3, 6)]
    assert [offset for _, _, offset in cells] == [
        pytest.approx([1.3, 0.8], abs=1e-5),  # left neighbour: centre 1.3 cells right of its corner
        pytest.approx([0.3, 0.8], abs=1e-5),
        pytest.approx([0.3, -0.2], abs=1e-5),  # lower neighbour: centre above its top edge
    ]


def test_neighbours_never_leave_the_grid():
    anchors = torch.tensor([[[8.0, 8.0]]])
    corners = torch.tensor([[0, 0, 2.0, 2.0, 8.0, 8.0], [0, 0, 62.0, 62.0, 8.0, 8.0]])  # (0.25, 0.25), (7.75, 7.75)

    (level,) = assign_targets(corners, anchors, torch.tensor([8.0]), [(8, 8)], ANCHOR_T)

    assert sorted(zip(level.grid_x.tolist(), level.grid_y.tolist())) == [(0, 0), (7, 7)]


def test_a_centre_on_the_far_image_edge_is_learnt_inside_the_grid():
    anchors = torch.tensor([[[8.0, 8.0]]])
    corner = torch.tensor([[0, 2, 64.0, 64.0, 8.0, 8.0]])  # centre (8, 8) on an 8 x 8 grid: past the last cell

    (level,) = assign_targets(corner, anchors, torch.tensor([8.0]), [(8, 8)], ANCHOR_T)

    cells = sorted(zip(level.grid_x.tolist(), level.grid_y.tolist()))
    assert (7, 7) in cells  # its own cell is the last one, as YOLOv5 clamps
    assert all(0 <= gx < 8 and 0 <= gy < 8 for gx, gy in cells)  # every index fits raw[B, na, 8, 8, 5 + nc]


def test_crowded_image_matches_the_reference_loop():
    generator = torch.Generator().manual_seed(0)
    targets = crowded_targets(generator, batch_index=0, count=50, image_size=320)

    levels = assign_targets(targets, P5_ANCHORS, P5_STRIDES, grids_for(320), ANCHOR_T)
    expected = reference_assign(targets, P5_ANCHORS, P5_STRIDES, grids_for(320), ANCHOR_T)

    assert sum(len(level) for level in levels) > 100  # the test exercises many assignments
    for level, expected_rows in zip(levels, expected):
        assert_rows_equal(level_rows(level), expected_rows)
        assert level.box[:, :2].min() >= -0.5 and level.box[:, :2].max() <= 1.5


def test_batched_assignment_equals_one_image_at_a_time():
    generator = torch.Generator().manual_seed(1)
    first = crowded_targets(generator, batch_index=0, count=20, image_size=320)
    second = crowded_targets(generator, batch_index=1, count=30, image_size=320)

    batched = assign_targets(torch.cat([first, second]), P5_ANCHORS, P5_STRIDES, grids_for(320), ANCHOR_T)
    alone_first = assign_targets(first, P5_ANCHORS, P5_STRIDES, grids_for(320), ANCHOR_T)
    second_as_image_0 = second.clone()
    second_as_image_0[:, 0] = 0
    alone_second = assign_targets(second_as_image_0, P5_ANCHORS, P5_STRIDES, grids_for(320), ANCHOR_T)

    for level, level_first, level_second in zip(batched, alone_first, alone_second):
        rows = level_rows(level)
        reindexed_second = [(1,) + row[1:] for row in level_rows(level_second)]
        assert_rows_equal([r for r in rows if r[0] == 0], level_rows(level_first))
        assert_rows_equal([r for r in rows if r[0] == 1], sorted(reindexed_second))


def test_mismatched_levels_are_rejected():
    with pytest.raises(ValueError, match="levels disagree"):
        assign_targets(torch.zeros(0, 6), P5_ANCHORS, P5_STRIDES[:2], grids_for(64), ANCHOR_T)


@pytest.mark.parametrize("shape", [(4, 5), (6,), (2, 6, 1)])
def test_targets_of_another_shape_are_rejected_with_their_shape(shape):
    with pytest.raises(ValueError, match=rf"^targets must be \[M, 6\], got {re.escape(str(shape))}$"):
        assign_targets(torch.zeros(shape), P5_ANCHORS, P5_STRIDES, grids_for(64), ANCHOR_T)


def test_integer_strides_and_float64_anchors_assign_as_float32():
    targets = torch.tensor([[0.0, 1.0, 28.0, 44.0, 20.0, 20.0]])
    expected = assign_targets(targets, P5_ANCHORS, P5_STRIDES, grids_for(64), ANCHOR_T)
    got = assign_targets(targets, P5_ANCHORS.double(), [int(s) for s in P5_STRIDES], grids_for(64), ANCHOR_T)
    for a, b in zip(expected, got):
        assert a.box.dtype == b.box.dtype == torch.float32 and torch.equal(a.box, b.box)
        assert a.anchor_wh.dtype == b.anchor_wh.dtype == torch.float32 and torch.equal(a.anchor_wh, b.anchor_wh)
        assert all(torch.equal(x, y) for x, y in zip(a.indices, b.indices))
