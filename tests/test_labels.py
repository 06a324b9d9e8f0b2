"""Labels and manifests: reading, image headers without decoding, and every bad-input case."""

import json
import re

import cv2
import numpy as np
import pytest

from drowsy.dataset import DetectionDataset
from drowsy.errors import DrowsyError
from drowsy.files import read_gray
from drowsy.labels import load_manifest, read_image_header, read_image_headers, read_labels, spread, validate_records


def write_image(path, width=32, height=18, channels=1):
    """A noisy image (so JPEG has real scan data) written with OpenCV; returns the path."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    return path


def obj(cls, x1, y1, x2, y2):
    return {"class": cls, "position": [x1, y1, x2, y2]}


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


# --- image headers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, width, height, channels",
    [
        ("gray.jpg", 32, 18, 1),
        ("colour.jpg", 40, 30, 3),
        ("upper.JPG", 17, 9, 3),
        ("gray.png", 21, 13, 1),
        ("colour.png", 32, 18, 3),
        ("alpha.png", 8, 6, 4),
        ("fallback.bmp", 12, 7, 3),
        ("fallback.pgm", 12, 7, 1),  # decoded to a 2-D array
    ],
)
def test_header_matches_decoded_image(tmp_path, name, width, height, channels):
    path = write_image(tmp_path / name, width, height, channels)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert decoded.shape[:2] == (height, width)
    assert read_image_header(path) == (width, height, channels, 1)


def test_jpeg_header_after_a_large_app_segment(tmp_path):
    # An EXIF-sized segment pushes the frame header past the first 4096 bytes read.
    data = write_image(tmp_path / "a.jpg", 30, 20, 3).read_bytes()
    payload = bytes(10000)
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    (tmp_path / "exif.jpg").write_bytes(data[:2] + app1 + data[2:])
    assert read_image_header(tmp_path / "exif.jpg") == (30, 20, 3, 1)


def exif_app1(orientation: int, byte_order: str) -> bytes:
    """An APP1 segment holding a TIFF IFD with one entry, the orientation tag (SHORT)."""
    order = "little" if byte_order == "II" else "big"
    entry = (0x0112).to_bytes(2, order) + (3).to_bytes(2, order) + (1).to_bytes(4, order) + \
        orientation.to_bytes(2, order) + bytes(2)
    tiff = byte_order.encode() + (42).to_bytes(2, order) + (8).to_bytes(4, order) + (1).to_bytes(2, order) + entry + \
        bytes(4)
    payload = b"Exif\0\0" + tiff
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


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
    assert issue == {"record": 0, "file_name": "rotated.jpg", "field": "file_name", "action": "info",
                     "reason": "EXIF orientation 6 ignored: the image is read as stored, by this check and by every "
                     "decoder of drowsy, and its boxes with it"}
    item = DetectionDataset(tmp_path, result.records, 32)[0]  # the decoder agrees with the header: no size error
    assert item[0].shape == (1, 32, 32)


@pytest.mark.parametrize("suffix, keep", [(".jpg", 0.6), (".png", 0.6), (".jpg", 0.02)])
def test_truncated_image_is_reported(tmp_path, suffix, keep):
    data = write_image(tmp_path / f"full{suffix}", 64, 48, 3).read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: int(len(data) * keep)])
    assert "truncated" in read_image_header(tmp_path / f"cut{suffix}")


def test_unusable_files_give_a_reason(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    assert "unreadable" in read_image_header(tmp_path / "text.jpg")
    assert read_image_header(tmp_path / "empty.png") == "empty image file"
    assert "not found" in read_image_header(tmp_path / "missing.jpg")


def test_threaded_headers_match_one_by_one_in_order(tmp_path):
    write_image(tmp_path / "a.jpg", 32, 18, 1)
    write_image(tmp_path / "b.png", 20, 10, 3)
    names = ["a.jpg", "b.png", "missing.jpg"] * 900  # several chunks of work
    expected = [(32, 18, 1, 1), (20, 10, 3, 1), "image file not found"] * 900
    assert read_image_headers(tmp_path, names[:3]) == expected[:3]  # one chunk
    assert read_image_headers(tmp_path, names, workers=3) == expected
    assert read_image_headers(tmp_path, names, workers=1) == expected


# --- reading files ----------------------------------------------------------------------------


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
    with pytest.raises(DrowsyError, match=r"train\.json not found: run notebooks/02_build_diet\.ipynb \(or drowsy prepare\) first"):
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


# --- record validation without images ---------------------------------------------------------


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
    assert issue == {"record": 1, "file_name": name if isinstance(name, str) else None, "field": field,
                     "reason": reason, "action": "dropped"}
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


# --- record validation with images ------------------------------------------------------------


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
        (32, 18, 1), (32, 18, 3), (40, 20, 1), (32, 18, 1)
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
        {"file_name": "b.jpg", "objects": [obj("face", -1, 1, 5, 5), obj("eye_opened", 1, 1, 40, 5),
                                           {**obj("phone", 1, 1, 5, 5), "attributes": {"occluded": True}}]},
        {"file_name": "missing.jpg", "objects": [face]},
    ]
    validation = validate_records(records, tmp_path)
    assert validation.counts == {"records_read": 5, "records_kept": 2, "records_dropped": 3, "objects_read": 12,
                                 "objects_kept": 4, "objects_dropped": 8, "objects_repaired": 2}
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
        obj("face", 0, 1, 5, 5), obj("eye_opened", 1, 1, 32, 5), obj("phone", 1, 1, 5, 5)
    ]


def test_image_whose_size_differs_from_the_declared_one_is_dropped(tmp_path):
    write_image(tmp_path / "a.jpg", 32, 18)
    write_image(tmp_path / "b.jpg", 32, 18)
    records = [{"file_name": "a.jpg", "declared_size": [18, 32], "objects": [obj("face", 1, 1, 5, 5)]},
               {"file_name": "b.jpg", "declared_size": [32, 18], "objects": []}]
    validation = validate_records(records, tmp_path)
    issue = only_issue(validation, "dropped")
    assert issue == {"record": 0, "file_name": "a.jpg", "field": "declared_size", "action": "dropped",
                     "reason": "the label says 18x32 but the image is 32x18"}
    assert [r["file_name"] for r in validation.records] == ["b.jpg"]
    check_counts(validation)


def test_header_progress_is_off_by_default_and_counts_the_images(tmp_path, monkeypatch, capsys):
    write_image(tmp_path / "a.jpg")
    records = [{"file_name": "a.jpg", "objects": []}, {"file_name": "b.jpg", "objects": []}]
    monkeypatch.setenv("DROWSY_PROGRESS", "lines")
    validate_records(records, tmp_path)
    read_image_headers(tmp_path, ["a.jpg"])
    assert capsys.readouterr().out == ""
    validate_records(records, tmp_path, progress=True)
    assert capsys.readouterr().out.startswith("image headers: 2 img in ")  # one closing line in a log
    monkeypatch.setenv("DROWSY_PROGRESS", "bars")
    read_image_headers(tmp_path, ["a.jpg", "b.jpg", "c.jpg"], progress=True)
    assert "image headers: 100%" in capsys.readouterr().err  # a watched bar knows its total


# --- image headers: hand-made JPEG and PNG bytes ----------------------------------------------

SOI, EOI = b"\xff\xd8", b"\xff\xd9"


def jpeg_segment(marker: int, payload: bytes = b"") -> bytes:
    """FF `marker`, a big-endian length that counts itself, then `payload`."""
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def jpeg_frame(width: int, height: int, channels: int = 1, marker: int = 0xC0) -> bytes:
    """A start-of-frame segment (8-bit samples) with one component entry per channel."""
    components = b"".join(bytes([i + 1, 0x11, 0]) for i in range(channels))
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return jpeg_segment(marker, b"\x08" + size + bytes([channels]) + components)


JFIF = jpeg_segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
SCAN = jpeg_segment(0xDA, bytes([1, 1, 0, 0, 63, 0])) + b"\x12\x34\x56"


@pytest.mark.parametrize(
    "body, expected",
    [
        (JFIF + jpeg_frame(40, 30, 3) + SCAN, (40, 30, 3, 1)),
        (JFIF + jpeg_segment(0xC4, bytes(29)) + jpeg_frame(40, 30) + SCAN, (40, 30, 1, 1)),  # DHT is no frame
        (JFIF + jpeg_segment(0xCC, bytes(4)) + jpeg_frame(41, 31) + SCAN, (41, 31, 1, 1)),  # nor is DAC
        (JFIF + jpeg_frame(640, 480, 3, marker=0xC2) + SCAN, (640, 480, 3, 1)),  # progressive
        (b"\xff\xff\xff" + JFIF + b"\xff\xff" + jpeg_frame(40, 30) + SCAN, (40, 30, 1, 1)),  # fill bytes
        (JFIF + b"\xff\x01" + jpeg_frame(40, 30) + SCAN, (40, 30, 1, 1)),  # TEM has no length field
        (JFIF + jpeg_frame(65535, 258) + SCAN, (65535, 258, 1, 1)),  # sizes are big-endian
        # 2 + 4084 bytes before the frame: its 10-byte header ends exactly at the end of the first 4096 read
        (jpeg_segment(0xE0, bytes(4080)) + jpeg_frame(40, 30) + SCAN, (40, 30, 1, 1)),
    ],
    ids=["baseline", "dht-first", "dac-first", "progressive", "fill-bytes", "tem-marker", "big-endian",
         "frame-ends-at-4096"],
)
def test_hand_made_jpeg_header_is_read_from_its_frame_segment(tmp_path, body, expected):
    (tmp_path / "a.jpg").write_bytes(SOI + body + EOI)
    assert read_image_header(tmp_path / "a.jpg") == expected


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
        (SOI + JFIF + jpeg_segment(0xE1, b"Exif\0\0" + SOI + b"thumbnail" + EOI) + jpeg_frame(40, 30) + SCAN,
         "truncated JPEG: no end-of-image marker"),
    ],
    ids=["bad-marker", "scan-first", "end-first", "zero-width", "zero-height", "zero-channels", "soi-only",
         "cut-in-marker", "segment-past-end", "frame-cut-off", "frame-cut-after-length", "no-end-marker",
         "thumbnail-end-before-frame"],
)
def test_corrupt_jpeg_is_dropped_with_one_line_reason(tmp_path, data, reason):
    (tmp_path / "bad.jpg").write_bytes(data)
    assert read_image_header(tmp_path / "bad.jpg") == reason and "\n" not in reason
    validation = validate_records([{"file_name": "bad.jpg", "objects": [obj("face", 1, 1, 5, 5)]}], tmp_path)
    issue = only_issue(validation, "dropped")
    assert (issue["file_name"], issue["field"], issue["reason"]) == ("bad.jpg", "file_name", reason)
    assert validation.records == [] and validation.counts["objects_dropped"] == 1


def encoded(suffix: str, width: int, height: int, channels: int = 1, params=()) -> bytes:
    shape = (height, width) if channels == 1 else (height, width, channels)
    ok, data = cv2.imencode(suffix, np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8), list(params))
    assert ok
    return data.tobytes()


def decoded_size(path) -> tuple[int, int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image.shape[1], image.shape[0], 1 if image.ndim == 2 else image.shape[2]


def baseline_with_fill_bytes() -> bytes:
    data = encoded(".jpg", 37, 23, 3)
    frame = data.index(b"\xff\xc0")
    return data[:frame] + b"\xff" * 5 + data[frame:]


@pytest.mark.parametrize(
    "make",
    [
        baseline_with_fill_bytes,
        lambda: encoded(".jpg", 37, 23, 3, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
        lambda: encoded(".jpg", 37, 23) + bytes(16),  # zero padding after EOI
        lambda: encoded(".png", 37, 23, 4) + bytes(16),  # zero padding after IEND
        lambda: encoded(".jpg", 37, 23) + bytes(4096),  # padded to a block
        lambda: encoded(".jpg", 37, 23) + b"\xff" * 4 + b"maker trailer" * 50,  # a camera's data after EOI
        lambda: encoded(".png", 37, 23) + b"\x01" * 3000,
    ],
    ids=["fill-bytes-before-frame", "progressive", "jpeg-zero-padding", "png-zero-padding", "jpeg-block-padding",
         "jpeg-trailer", "png-trailer"],
)
def test_opencv_images_with_unusual_layout_match_decoded_size(tmp_path, make):
    path = tmp_path / "image.bin"
    path.write_bytes(make())
    header = read_image_header(path)
    assert header == (*decoded_size(path), 1) and header[:2] == (37, 23)


def png_with_header(width: int, height: int, colour_type: int) -> bytes:
    """A real 5x3 PNG whose IHDR is rewritten (its CRC left stale: the header reader does not check it)."""
    data = bytearray(encoded(".png", 5, 3))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[25] = colour_type
    return bytes(data)


@pytest.mark.parametrize(
    "data, reason",
    [
        (png_with_header(0, 3, 0), "corrupt PNG: header says 0x3, colour type 0"),
        (png_with_header(5, 0, 0), "corrupt PNG: header says 5x0, colour type 0"),
        (png_with_header(5, 3, 5), "corrupt PNG: header says 5x3, colour type 5"),  # no colour type 5 exists
        (b"\x89PNG\r\n\x1a\n", "corrupt PNG: no IHDR chunk"),
        (b"\x89PNG\r\n\x1a\n" + bytes(4) + b"IDAT" + bytes(30), "corrupt PNG: no IHDR chunk"),
        (b"\x89PNG\r\n\x1a\x0b" + encoded(".png", 5, 3)[8:], "unreadable image (not a format OpenCV can decode)"),
        (encoded(".png", 5, 3)[:-12], "truncated PNG: no IEND chunk"),
        (encoded(".png", 5, 3)[:26], "truncated PNG: no IEND chunk"),  # cut right after the colour type
        (encoded(".png", 5, 3)[:33], "truncated PNG: no IEND chunk"),  # cut right after the IHDR chunk
    ],
    ids=["zero-width", "zero-height", "bad-colour-type", "signature-only", "idat-first", "bad-signature", "no-iend",
         "cut-after-colour-type", "cut-after-ihdr"],
)
def test_corrupt_png_gives_one_line_reason(tmp_path, data, reason):
    (tmp_path / "bad.png").write_bytes(data)
    assert read_image_header(tmp_path / "bad.png") == reason and "\n" not in reason


def test_png_colour_types_give_decoded_channels(tmp_path):
    for channels in (1, 3, 4):
        (tmp_path / "a.png").write_bytes(encoded(".png", 6, 4, channels))
        assert read_image_header(tmp_path / "a.png") == (*decoded_size(tmp_path / "a.png"), 1)
    (tmp_path / "gray_alpha.png").write_bytes(png_with_header(5, 3, 4))
    assert read_image_header(tmp_path / "gray_alpha.png") == (5, 3, 2, 1)  # gray + alpha


def test_png_sizes_are_four_byte_big_endian(tmp_path):
    (tmp_path / "huge.png").write_bytes(png_with_header(2**24 + 5, 2**25 + 3, 2))
    assert read_image_header(tmp_path / "huge.png") == (16_777_221, 33_554_435, 3, 1)


def tiff_ifd(entries: list[tuple[int, int]], order: str = "little", next_ifd: int = 0) -> bytes:
    """A TIFF IFD: its entry count, (tag, SHORT value) `entries`, the offset of the next IFD (0: none)."""
    return len(entries).to_bytes(2, order) + b"".join(
        tag.to_bytes(2, order) + (3).to_bytes(2, order) + (1).to_bytes(4, order) + value.to_bytes(2, order) + bytes(2)
        for tag, value in entries
    ) + next_ifd.to_bytes(4, order)


def tiff_app1(entries: list[tuple[int, int]], byte_order: str = "II", ifd_offset: int = 8, pad: bool = True,
              cut: int = 0) -> bytes:
    """An EXIF APP1 segment whose first IFD holds (tag, SHORT value) `entries`, at `ifd_offset` (or, without
    `pad`, right after the TIFF header whatever the offset says); `cut` bytes short at its end."""
    order = "little" if byte_order == "II" else "big"
    tiff = byte_order.encode() + (42).to_bytes(2, order) + ifd_offset.to_bytes(4, order)
    payload = b"Exif\0\0" + tiff + bytes(ifd_offset - 8 if pad else 0) + tiff_ifd(entries, order)
    return jpeg_segment(0xE1, payload[: len(payload) - cut])


# IFD0 (the image's) at offset 256 with one entry, and IFD1 (the thumbnail's) right after it at 274
# (little-endian 274 reads as the orientation tag 0x0112 where IFD0's entries end).
THUMBNAIL_IFD_TIFF = b"II" + (42).to_bytes(2, "little") + (256).to_bytes(4, "little") + bytes(248) + \
    tiff_ifd([(0x0101, 20)], next_ifd=274) + tiff_ifd([(0x0112, 6)])


@pytest.mark.parametrize(
    "app1, orientation",
    [
        (tiff_app1([(0x010F, 7), (0x0110, 2), (0x0112, 8)], "MM"), 8),  # after other tags
        (tiff_app1([(0x0112, 3)], "II", ifd_offset=20), 3),  # IFD not right after the TIFF header
        (tiff_app1([(0x0112, 0)]), 1),  # out of range: as stored
        (tiff_app1([(0x0112, 9)]), 1),
        (tiff_app1([(0x0110, 6)]), 1),  # the value 6 under another tag
        (tiff_app1([(0x0112, 6)], "XX"), 1),  # no byte order mark
        (tiff_app1([(0x0112, 6)], "II", ifd_offset=4000, pad=False), 1),  # IFD offset past the segment
        (jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"), 1),  # XMP, not EXIF
        (tiff_app1([(0x0100, 274), (0x0112, 6)]), 6),  # entries are 12 bytes apart: 274 is no tag
        (tiff_app1([(0x0112, 6)], cut=4), 6),  # the segment ends right after the entry (no next-IFD offset)
        (tiff_app1([(0x0112, 6)], cut=5), 1),  # the segment cuts the entry short
        (jpeg_segment(0xE1, b"Exif\0\0" + THUMBNAIL_IFD_TIFF), 1),  # the thumbnail's orientation is not the image's
    ],
    ids=["after-other-tags", "ifd-further-on", "zero", "nine", "other-tag", "no-byte-order", "ifd-past-segment",
         "xmp", "value-274-before", "entry-ends-the-segment", "entry-cut-short", "thumbnail-ifd"],
)
def test_exif_orientation_read_only_from_a_valid_orientation_tag(tmp_path, app1, orientation):
    data = encoded(".jpg", 30, 20)
    (tmp_path / "a.jpg").write_bytes(data[:2] + app1 + data[2:])
    assert read_image_header(tmp_path / "a.jpg") == (30, 20, 1, orientation)


def test_header_workers_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        read_image_headers(tmp_path, ["a.jpg"], workers=0)
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        validate_records([{"file_name": "a.jpg", "objects": []}], tmp_path, workers=0)


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
    ids=["right-edge", "bottom-edge", "left-edge", "top-edge", "all-sides", "corner", "one-pixel-left",
         "one-pixel-top"],
)
def test_box_on_the_image_edge_is_dropped_and_one_across_it_clipped(tmp_path, position, action, kept):
    write_image(tmp_path / "a.jpg", 32, 18)
    validation = validate_records([{"file_name": "a.jpg", "objects": [obj("face", *position)]}], tmp_path)
    issue = only_issue(validation, action)
    assert (issue["file_name"], issue["field"]) == ("a.jpg", "objects[0].position") and "\n" not in issue["reason"]
    assert [o["position"] for o in validation.records[0]["objects"]] == ([kept] if kept else [])
    check_counts(validation)


def test_a_thumbnails_end_marker_does_not_hide_a_truncated_jpeg(tmp_path):
    data = encoded(".jpg", 37, 23)
    thumbnail = b"Exif\0\0" + b"\xff\xd8 a thumbnail \xff\xd9"  # its own end marker, before the frame header
    app1 = b"\xff\xe1" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:2] + app1 + data[2:-40])  # cut off in the image data
    assert read_image_header(path) == "truncated JPEG: no end-of-image marker"
    path.write_bytes(data[:2] + app1 + data[2:])
    assert read_image_header(path)[:2] == (37, 23)
