"""Labels and manifests: reading, validating records against their images, and every bad-input case."""

import json
import re

import cv2
import numpy as np
import pytest

from drowsy.data.dataset import DetectionDataset
from drowsy.data.image_header import read_image_header
from drowsy.data.labels import load_manifest, read_labels, spread, validate_records
from drowsy.errors import DrowsyError
from drowsy.files import read_gray
from tests.helpers import EOI, JFIF, SCAN, SOI, exif_app1, jpeg_frame, jpeg_segment, obj, write_image


def check_counts(validation):
    counts = validation.counts
    assert counts["records_kept"] + counts["records_dropped"] == counts["records_read"]
    assert counts["objects_kept"] + counts["objects_dropped"] == counts["objects_read"]
    assert counts["records_kept"] == len(validation.records)
    assert counts["objects_kept"] == sum(len(r["objects"]) for r in validation.records)


def only_issue(validation, action):
    issues = [issue for issue in validation.issues if issue["action"] == action]
    assert len(issues) == 1, validation.issues
    return issues[0]


@pytest.mark.parametrize("byte_order", ["II", "MM"])
def test_exif_orientation_is_reported_and_images_read_as_stored(tmp_path, byte_order):
    stored = np.tile(np.arange(30, dtype=np.uint8) * 8, (20, 1))  # 30 wide, 20 high, brighter to the right
    ok, encoded = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 100])
    data = encoded.tobytes()
    (tmp_path / "rotated.jpg").write_bytes(data[:2] + exif_app1(6, byte_order) + data[2:])
    assert cv2.imread(str(tmp_path / "rotated.jpg"), cv2.IMREAD_GRAYSCALE).shape == (30, 20)  # OpenCV would turn it
    assert read_image_header(tmp_path / "rotated.jpg") == (30, 20, 1, 6)
    image = read_gray(tmp_path / "rotated.jpg")
    assert image.shape == (20, 30) and image[:, -1].mean() > image[:, 0].mean() + 100  # as stored
    records = [{"file_name": "rotated.jpg", "objects": [{"class": "face", "position": [20, 2, 30, 18]}]}]
    result = validate_records(records, tmp_path)
    assert result.records[0]["objects"][0]["position"] == [20, 2, 30, 18]  # inside the stored 30x20 image
    (issue,) = result.issues
    assert issue == {
        "record": 0,
        "file_name": "rotated.jpg",
        "field": "file_name",
        "action": "info",
        "reason": "EXIF orientation 6 ignored: the image is read as stored, by this check and by every "
        "decoder of drowsy, and its boxes with it",
    }
    item = DetectionDataset(tmp_path, result.records, 32)[0]  # the decoder agrees with the header: no size error
    assert item[0].shape == (1, 32, 32)


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "top level must be an object with an 'annotations' list, got list"),
        ('{"images": []}', "'annotations': must be a list of records, is missing"),
        ('{"annotations": {"file_name": "a.jpg"}}', "'annotations': must be a list of records, is a dict"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
    ],
)
def test_unusable_labels_file_is_one_line_naming_it(tmp_path, content, problem):
    path = tmp_path / "labels.json"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DrowsyError) as err:
        read_labels(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and problem in message


def test_read_labels_accepts_competition_file_and_manifest(tmp_path):
    records = [{"file_name": "a.jpg", "objects": [obj("face", 1, 2, 3, 4)]}]
    (tmp_path / "labels.json").write_text(json.dumps({"annotations": records}))
    (tmp_path / "val.json").write_text(json.dumps({"image_root": "/x", "annotations": records}))
    assert read_labels(tmp_path / "labels.json") == records
    assert read_labels(tmp_path / "val.json") == records


def test_missing_manifest_says_what_makes_it(tmp_path):
    with pytest.raises(
        DrowsyError, match=r"train\.json not found: run notebooks/02_build_diet\.ipynb \(or drowsy prepare\) first"
    ):
        load_manifest(tmp_path / "train.json")


def test_labels_file_is_not_a_manifest(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"annotations": [{"file_name": "a.jpg", "objects": []}]}))
    with pytest.raises(DrowsyError, match="'image_root'"):
        load_manifest(path)
    path.write_text(json.dumps({"image_root": "/x", "annotations": [{"file_name": "a.jpg", "objects": []}]}))
    with pytest.raises(DrowsyError, match="record 0: field 'width'"):
        load_manifest(path)
    path.write_text("[]")
    with pytest.raises(DrowsyError, match=f"^{re.escape(str(path))}: top level must be an object"):
        load_manifest(path)


def test_load_manifest(tmp_path):
    record = {"file_name": "ä.jpg", "width": 32, "height": 18, "channels": 1, "objects": [obj("phone", 1, 2, 3, 4)]}
    path = tmp_path / "val.json"
    path.write_text(json.dumps({"image_root": str(tmp_path), "annotations": [record]}), encoding="utf-8")
    manifest = load_manifest(path)
    assert manifest.path == path and manifest.image_root == tmp_path and manifest.records == [record]


def test_spread_picks_evenly_from_first_to_last():
    items = list("abcdefghij")
    assert spread(items, 4) == ["a", "d", "g", "j"]  # every 9/3 = 3rd
    assert spread(items, 2) == ["a", "j"]
    assert spread(items, 1) == ["a"]
    assert spread(items, 0) == items and spread(items, 10) == items and spread(items, 11) == items


@pytest.mark.parametrize(
    "bad_object, field, reason",
    [
        (obj("dog", 1, 1, 5, 5), "objects[1].class", "unknown class 'dog'"),
        ({"position": [1, 1, 5, 5]}, "objects[1].class", "unknown class None"),
        ({"class": "face", "position": [1, 1, 5]}, "objects[1].position", "4 finite numbers"),
        ({"class": "face", "position": [1, "1", 5, 5]}, "objects[1].position", "4 finite numbers"),
        ({"class": "face", "position": [1, 1, float("nan"), 5]}, "objects[1].position", "4 finite numbers"),
        ({"class": "face", "position": [1, 1, float("inf"), 5]}, "objects[1].position", "4 finite numbers"),
        ({"class": "face", "position": [True, 1, 5, 5]}, "objects[1].position", "4 finite numbers"),
        ({"class": "face", "position": [1, 1, 10**400, 5]}, "objects[1].position", "4 finite numbers"),
        ({"class": "face"}, "objects[1].position", "4 finite numbers"),
        (obj("face", 5, 1, 5, 5), "objects[1].position", "empty box"),
        (obj("face", 1, 6, 5, 5), "objects[1].position", "empty box"),
        (obj("face", 1, 5, 5, 5), "objects[1].position", "empty box [1, 5, 5, 5] (needs x2 > x1 and y2 > y1)"),
        (["face", [1, 1, 5, 5]], "objects[1]", "must be an object, got list"),
    ],
)
def test_bad_object_is_dropped_and_the_record_kept(bad_object, field, reason):
    records = [{"file_name": "a.jpg", "objects": [obj("face", 1, 1, 5, 5), bad_object, obj("eye_opened", 2, 2, 3, 3)]}]
    validation = validate_records(records)
    issue = only_issue(validation, "dropped")
    assert (issue["record"], issue["file_name"], issue["field"]) == (0, "a.jpg", field)
    assert reason in issue["reason"]
    assert [o["class"] for o in validation.records[0]["objects"]] == ["face", "eye_opened"]
    assert validation.counts["objects_dropped"] == 1
    check_counts(validation)


NAME_MISSING = "missing or not a non-empty string"
NAME_OUTSIDE = "must be a path inside the images folder"


@pytest.mark.parametrize(
    "bad_record, field, reason, objects_read",
    [
        ("a.jpg", "record", "must be an object, got str", 0),
        ({"objects": [obj("face", 1, 1, 5, 5)]}, "file_name", NAME_MISSING, 1),
        ({"file_name": 7, "objects": []}, "file_name", NAME_MISSING, 0),
        ({"file_name": "", "objects": []}, "file_name", NAME_MISSING, 0),
        ({"file_name": "../secret.jpg", "objects": []}, "file_name", NAME_OUTSIDE, 0),
        ({"file_name": "sub\\..\\..\\secret.jpg", "objects": []}, "file_name", NAME_OUTSIDE, 0),  # Windows separators
        ({"file_name": "/etc/passwd", "objects": []}, "file_name", NAME_OUTSIDE, 0),
        ({"file_name": "b.jpg"}, "objects", "missing or not a list", 0),
        ({"file_name": "b.jpg", "objects": {"class": "face"}}, "objects", "missing or not a list", 0),
    ],
)
def test_bad_record_is_dropped(bad_record, field, reason, objects_read):
    good = {"file_name": "a.jpg" if bad_record != "a.jpg" else "c.jpg", "objects": [obj("face", 1, 1, 5, 5)]}
    validation = validate_records([good, bad_record])
    issue = only_issue(validation, "dropped")
    name = bad_record.get("file_name") if isinstance(bad_record, dict) else None
    assert issue == {
        "record": 1,
        "file_name": name if isinstance(name, str) else None,
        "field": field,
        "reason": reason,
        "action": "dropped",
    }
    assert validation.counts["records_dropped"] == 1
    assert validation.counts["objects_read"] == 1 + objects_read
    assert validation.records == [good]
    check_counts(validation)


def test_duplicate_file_name_drops_the_later_record():
    first = {"file_name": "a.jpg", "objects": [obj("face", 1, 1, 5, 5)]}
    later = {"file_name": "a.jpg", "objects": [obj("phone", 1, 1, 5, 5), obj("cigar", 1, 1, 2, 2)]}
    validation = validate_records([first, later])
    issue = only_issue(validation, "dropped")
    assert (issue["record"], issue["field"], issue["reason"]) == (1, "file_name", "duplicate of record 0")
    assert validation.records == [first]
    assert validation.counts["objects_dropped"] == 2
    check_counts(validation)


def test_boxes_of_ints_floats_or_both_are_kept_as_is():
    objects = [obj("face", 1, 2, 3, 4), obj("phone", 1.5, 2.5, 3.5, 4.5), obj("cigar", 1, 2.5, 3, 4.5)]
    validation = validate_records([{"file_name": "a.jpg", "objects": objects}])
    assert validation.records[0]["objects"] == objects and validation.issues == []


def test_image_without_objects_is_kept_as_negative():
    records = [{"file_name": "a.jpg", "objects": []}, {"file_name": "b.jpg", "objects": [obj("dog", 1, 1, 2, 2)]}]
    validation = validate_records(records)
    assert [r["file_name"] for r in validation.records] == ["a.jpg", "b.jpg"]
    infos = [issue for issue in validation.issues if issue["action"] == "info"]
    assert [(i["record"], i["file_name"], i["field"], i["reason"]) for i in infos] == [
        (0, "a.jpg", "objects", "no objects: kept as a negative example"),
        (1, "b.jpg", "objects", "all 1 objects dropped: kept as a negative example"),
    ]
    check_counts(validation)


def test_image_checks_and_box_clipping(tmp_path):
    images = tmp_path / "images"
    write_image(images / "gray.jpg", 32, 18, 1)
    write_image(images / "colour.JPG", 32, 18, 3)
    write_image(images / "운전자_ü.png", 40, 20, 1)
    write_image(images / "sub" / "deep.jpg", 32, 18, 1)
    truncated = write_image(images / "cut.jpg", 64, 48, 3)
    truncated.write_bytes(truncated.read_bytes()[:-200])
    (images / "garbage.jpg").write_bytes(b"\x00" * 64)
    records = [
        {"file_name": "gray.jpg", "objects": [obj("face", -3, 2, 10, 20), obj("eye_opened", 1, 1, 4, 4)]},
        {"file_name": "colour.JPG", "objects": [obj("phone", 40, 1, 50, 5), obj("cigar", 0, 0, 32, 18)]},
        {"file_name": "운전자_ü.png", "objects": [obj("mouth_opened", 1, 1, 5, 5)]},
        {"file_name": "missing.jpg", "objects": [obj("face", 1, 1, 5, 5)]},
        {"file_name": "cut.jpg", "objects": [obj("face", 1, 1, 5, 5), obj("eye_closed", 1, 1, 2, 2)]},
        {"file_name": "garbage.jpg", "objects": []},
        {"file_name": "sub/deep.jpg", "objects": [obj("face", 1, 1, 5, 5)]},
    ]
    validation = validate_records(records, images)
    check_counts(validation)
    kept = {r["file_name"]: r for r in validation.records}
    assert list(kept) == ["gray.jpg", "colour.JPG", "운전자_ü.png", "sub/deep.jpg"]
    assert [(r["width"], r["height"], r["channels"]) for r in kept.values()] == [
        (32, 18, 1),
        (32, 18, 3),
        (40, 20, 1),
        (32, 18, 1),
    ]
    assert kept["gray.jpg"]["objects"][0]["position"] == [0, 2, 10, 18]
    assert [o["class"] for o in kept["colour.JPG"]["objects"]] == ["cigar"]  # on the border: kept as is
    by_record = {(i["record"], i["field"]): i for i in validation.issues}
    assert by_record[(0, "objects[0].position")]["action"] == "repaired"
    assert by_record[(1, "objects[0].position")]["action"] == "dropped"
    assert "outside the 32x18 image" in by_record[(1, "objects[0].position")]["reason"]
    for record, reason in ((3, "not found"), (4, "truncated JPEG"), (5, "unreadable")):
        issue = by_record[(record, "file_name")]
        assert issue["action"] == "dropped" and reason in issue["reason"]
    assert len(validation.issues) == 5
    counts = validation.counts
    assert (counts["records_dropped"], counts["objects_dropped"], counts["objects_repaired"]) == (3, 4, 1)


def test_every_decision_is_one_issue_and_every_object_counted(tmp_path):
    write_image(tmp_path / "a.jpg", 32, 18)
    write_image(tmp_path / "b.jpg", 32, 18)
    face = obj("face", 1, 1, 5, 5)
    records = [
        {"file_name": "a.jpg", "objects": [face, obj("dog", 1, 1, 5, 5), {"class": "face"}]},
        {"file_name": "a.jpg", "objects": [face, face]},
        {"file_name": "../a.jpg", "objects": [face, face, face]},
        {
            "file_name": "b.jpg",
            "objects": [
                obj("face", -1, 1, 5, 5),
                obj("eye_opened", 1, 1, 40, 5),
                {**obj("phone", 1, 1, 5, 5), "attributes": {"occluded": True}},
            ],
        },
        {"file_name": "missing.jpg", "objects": [face]},
    ]
    validation = validate_records(records, tmp_path)
    assert validation.counts == {
        "records_read": 5,
        "records_kept": 2,
        "records_dropped": 3,
        "objects_read": 12,
        "objects_kept": 4,
        "objects_dropped": 8,
        "objects_repaired": 2,
    }
    assert [(i["record"], i["file_name"], i["field"], i["action"]) for i in validation.issues] == [
        (1, "a.jpg", "file_name", "dropped"),
        (2, "../a.jpg", "file_name", "dropped"),
        (0, "a.jpg", "objects[1].class", "dropped"),
        (0, "a.jpg", "objects[2].position", "dropped"),
        (3, "b.jpg", "objects[0].position", "repaired"),
        (3, "b.jpg", "objects[1].position", "repaired"),
        (4, "missing.jpg", "file_name", "dropped"),
    ]
    assert validation.records[1]["objects"] == [  # objects keep only their class and position
        obj("face", 0, 1, 5, 5),
        obj("eye_opened", 1, 1, 32, 5),
        obj("phone", 1, 1, 5, 5),
    ]


def test_image_whose_size_differs_from_the_declared_one_is_dropped(tmp_path):
    write_image(tmp_path / "a.jpg", 32, 18)
    write_image(tmp_path / "b.jpg", 32, 18)
    records = [
        {"file_name": "a.jpg", "declared_size": [18, 32], "objects": [obj("face", 1, 1, 5, 5)]},
        {"file_name": "b.jpg", "declared_size": [32, 18], "objects": []},
    ]
    validation = validate_records(records, tmp_path)
    issue = only_issue(validation, "dropped")
    assert issue == {
        "record": 0,
        "file_name": "a.jpg",
        "field": "declared_size",
        "action": "dropped",
        "reason": "the label says 18x32 but the image is 32x18",
    }
    assert [r["file_name"] for r in validation.records] == ["b.jpg"]
    check_counts(validation)


@pytest.mark.parametrize(
    "data, reason",
    [
        (SOI + JFIF + b"\x00\x00" + jpeg_frame(40, 30) + SCAN + EOI, "corrupt JPEG: bad marker"),
        (SOI + JFIF + SCAN + jpeg_frame(40, 30) + EOI, "corrupt JPEG: no frame header before the image data"),
        (SOI + JFIF + EOI + jpeg_frame(40, 30) + SCAN + EOI, "corrupt JPEG: no frame header before the image data"),
        (SOI + JFIF + jpeg_frame(0, 30) + SCAN + EOI, "corrupt JPEG: frame header says 0x30x1"),
        (SOI + JFIF + jpeg_frame(40, 0) + SCAN + EOI, "corrupt JPEG: frame header says 40x0x1"),
        (SOI + JFIF + jpeg_frame(40, 30, 0) + SCAN + EOI, "corrupt JPEG: frame header says 40x30x0"),
        (SOI, "truncated JPEG: no frame header"),
        (SOI + JFIF[:3], "truncated JPEG: no frame header"),
        (SOI + b"\xff\xe0\x00\x40" + bytes(12), "truncated JPEG: no frame header"),  # length runs past the end
        (SOI + JFIF + jpeg_frame(40, 30)[:7], "truncated JPEG: frame header cut off"),
        (SOI + JFIF + jpeg_frame(40, 30)[:4], "truncated JPEG: frame header cut off"),  # right after its length
        (SOI + JFIF + jpeg_frame(40, 30) + SCAN, "truncated JPEG: no end-of-image marker"),
        # an EXIF thumbnail's end marker in the segment right before the frame header is not the image's
        (
            SOI + JFIF + jpeg_segment(0xE1, b"Exif\0\0" + SOI + b"thumbnail" + EOI) + jpeg_frame(40, 30) + SCAN,
            "truncated JPEG: no end-of-image marker",
        ),
    ],
    ids=[
        "bad-marker",
        "scan-first",
        "end-first",
        "zero-width",
        "zero-height",
        "zero-channels",
        "soi-only",
        "cut-in-marker",
        "segment-past-end",
        "frame-cut-off",
        "frame-cut-after-length",
        "no-end-marker",
        "thumbnail-end-before-frame",
    ],
)
def test_corrupt_jpeg_is_dropped_with_one_line_reason(tmp_path, data, reason):
    (tmp_path / "bad.jpg").write_bytes(data)
    assert read_image_header(tmp_path / "bad.jpg") == reason and "\n" not in reason
    validation = validate_records([{"file_name": "bad.jpg", "objects": [obj("face", 1, 1, 5, 5)]}], tmp_path)
    issue = only_issue(validation, "dropped")
    assert (issue["file_name"], issue["field"], issue["reason"]) == ("bad.jpg", "file_name", reason)
    assert validation.records == [] and validation.counts["objects_dropped"] == 1


@pytest.mark.parametrize(
    "position, action, kept",
    [
        ([32, 1, 40, 5], "dropped", None),  # starts on the right edge
        ([1, 18, 5, 25], "dropped", None),  # starts on the bottom edge
        ([-6, 1, 0, 5], "dropped", None),  # ends on the left edge
        ([1, -6, 5, 0], "dropped", None),  # ends on the top edge
        ([-2, -3, 40, 25], "repaired", [0, 0, 32, 18]),  # out on all four sides
        ([31.5, 17.5, 32.5, 18.5], "repaired", [31.5, 17.5, 32, 18]),
        ([-2, 1, 1, 5], "repaired", [0, 1, 1, 5]),  # ends one pixel in from the left edge
        ([1, -2, 5, 1], "repaired", [1, 0, 5, 1]),  # ends one pixel below the top edge
    ],
    ids=[
        "right-edge",
        "bottom-edge",
        "left-edge",
        "top-edge",
        "all-sides",
        "corner",
        "one-pixel-left",
        "one-pixel-top",
    ],
)
def test_box_on_the_image_edge_is_dropped_and_one_across_it_clipped(tmp_path, position, action, kept):
    write_image(tmp_path / "a.jpg", 32, 18)
    validation = validate_records([{"file_name": "a.jpg", "objects": [obj("face", *position)]}], tmp_path)
    issue = only_issue(validation, action)
    assert (issue["file_name"], issue["field"]) == ("a.jpg", "objects[0].position") and "\n" not in issue["reason"]
    assert [o["position"] for o in validation.records[0]["objects"]] == ([kept] if kept else [])
    check_counts(validation)
