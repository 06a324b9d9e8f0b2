"""Labels and manifests: reading, image headers without decoding, and every bad-input case."""

import json

import cv2
import numpy as np
import pytest

from drowsy.dataset import DetectionDataset
from drowsy.errors import DrowsyError
from drowsy.files import read_gray
from drowsy.labels import load_manifest, read_image_header, read_image_headers, read_labels, validate_records


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
    assert (issue["field"], issue["action"]) == ("file_name", "info") and "EXIF orientation 6" in issue["reason"]
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
    assert "empty" in read_image_header(tmp_path / "empty.png")
    assert "not found" in read_image_header(tmp_path / "missing.jpg")


def test_threaded_headers_match_one_by_one_in_order(tmp_path):
    write_image(tmp_path / "a.jpg", 32, 18, 1)
    write_image(tmp_path / "b.png", 20, 10, 3)
    names = ["a.jpg", "b.png", "missing.jpg"] * 900  # several chunks of work
    expected = [(32, 18, 1, 1), (20, 10, 3, 1), "image file not found"] * 900
    assert read_image_headers(tmp_path, names, workers=3) == expected
    assert read_image_headers(tmp_path, names, workers=1) == expected


# --- reading files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "top level must be an object"),
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


def test_load_manifest(tmp_path):
    record = {"file_name": "ä.jpg", "width": 32, "height": 18, "channels": 1, "objects": [obj("phone", 1, 2, 3, 4)]}
    path = tmp_path / "val.json"
    path.write_text(json.dumps({"image_root": str(tmp_path), "annotations": [record]}), encoding="utf-8")
    manifest = load_manifest(path)
    assert manifest.path == path and manifest.image_root == tmp_path and manifest.records == [record]


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
        (["face", [1, 1, 5, 5]], "objects[1]", "must be an object"),
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


@pytest.mark.parametrize(
    "bad_record, field, objects_read",
    [
        ("a.jpg", "record", 0),
        ({"objects": [obj("face", 1, 1, 5, 5)]}, "file_name", 1),
        ({"file_name": 7, "objects": []}, "file_name", 0),
        ({"file_name": "", "objects": []}, "file_name", 0),
        ({"file_name": "../secret.jpg", "objects": []}, "file_name", 0),
        ({"file_name": "/etc/passwd", "objects": []}, "file_name", 0),
        ({"file_name": "b.jpg"}, "objects", 0),
        ({"file_name": "b.jpg", "objects": {"class": "face"}}, "objects", 0),
    ],
)
def test_bad_record_is_dropped(bad_record, field, objects_read):
    good = {"file_name": "a.jpg" if bad_record != "a.jpg" else "c.jpg", "objects": [obj("face", 1, 1, 5, 5)]}
    validation = validate_records([good, bad_record])
    issue = only_issue(validation, "dropped")
    assert (issue["record"], issue["field"]) == (1, field)
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


def test_image_without_objects_is_kept_as_negative():
    records = [{"file_name": "a.jpg", "objects": []}, {"file_name": "b.jpg", "objects": [obj("dog", 1, 1, 2, 2)]}]
    validation = validate_records(records)
    assert [r["file_name"] for r in validation.records] == ["a.jpg", "b.jpg"]
    infos = [issue for issue in validation.issues if issue["action"] == "info"]
    assert [(i["record"], i["field"]) for i in infos] == [(0, "objects"), (1, "objects")]
    assert "no objects" in infos[0]["reason"] and "all 1 objects dropped" in infos[1]["reason"]
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
