"""The synthetic AIHub tree: the real download's three subsets and names, read back by drowsy prepare,
behaviour drives content, recordings, rates."""

import json
from collections import Counter

import pytest

from drowsy import CLASSES
from drowsy.cli import main
from drowsy.data.labels import load_manifest
from drowsy.data.prepare import prepare_dataset
from drowsy.synth.aihub_tree import face_keypoints, write_aihub_tree
from drowsy.synth.scene import CAP_RATE, CLASS_RATES, GLASSES_RATE, PHONE_IN_HAND_RATE, SUNGLASSES_RATE

SIZE = (160, 256)  # portrait like 800x1280, small for speed
OTHER_SIZE = (144, 256)  # real road and semi-controlled: 0.9 x as wide, like 720x1280
# behaviour -> (class it implies, class it rules out); other behaviours show neither implied class
IMPLIED = {
    "drowsy": ("eye_closed", "eye_opened"),
    "yawning": ("mouth_opened", "mouth_closed"),
    "phone call": ("phone", None),
    "smoking": ("cigar", None),
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("aihub")
    write_aihub_tree(root / "raw", 240, seed=4, size=SIZE, frames=4, recordings_per_subject=3, progress=False)
    report = prepare_dataset(root / "raw", root / "out", val_size=20, seed=0, group_by="subject", progress=False)
    records = [r for s in ("train", "val") for r in load_manifest(root / "out" / f"{s}.json").records]
    return root, report, records


def test_the_reader_reads_every_frame_with_full_meta(tree):
    root, report, records = tree
    assert report["format"] == "aihub"
    # one 0-byte label file; the semi-controlled sequences with key points only are counted apart
    keypoint_only = report["totals"]["records"]["keypoint_only"]
    assert report["totals"]["records"] == {
        "read": 240,
        "kept": 239 - keypoint_only,
        "dropped": 1,
        "keypoint_only": keypoint_only,
    }
    assert keypoint_only % 4 == 0 and keypoint_only == len(report["keypoint_only"]["files"])
    assert report["issue_counts"] == {"dropped": 1, "repaired": 0, "info": 1}  # the empty file, its image
    assert report["issues"][0]["reason"] == "empty label file (0 bytes)"
    assert report["meta"]["unrecognised_names"] == 0 and report["meta"]["label_disagrees"] == {}
    subsets = Counter(r["meta"]["environment"] for r in records)
    assert set(subsets) == {"controlled", "real road", "semi-controlled"}, subsets
    assert {r["meta"]["subject"] for r in records} == {
        f"{ {'controlled': '', 'real road': 'R_', 'semi-controlled': 'Q_'}[r['meta']['environment']] }{s:03d}"
        for s, r in ((int(r["meta"]["subject"][-3:]), r) for r in records)
    }
    assert len({r["meta"]["subject"][-3:] for r in records}) == 20  # 60 recordings / 3
    for record in records:
        meta = record["meta"]
        keys = {"lighting", "gaze_target", "behaviour"} if meta["environment"] == "controlled" else {"scenario", "mask"}
        assert keys | {"gender", "age", "aihub_split"} <= meta.keys(), record["file_name"]
        size = SIZE if meta["environment"] == "controlled" else OTHER_SIZE
        assert (record["width"], record["height"], record["channels"]) == (*size, 1)
        assert ("keypoints" in record) == (meta["environment"] == "semi-controlled")
    assert {r["meta"]["aihub_split"] for r in records} == {"training", "validation"}
    assert any(" " in r["file_name"] for r in records)
    assert report["split"]["leakage"]["train"]["shared_values"] == 0


def test_key_points_sit_on_the_face_and_its_parts():
    objects = [
        {"class": "face", "position": [100, 100, 200, 240]},
        {"class": "eye_opened", "position": [120, 140, 140, 150]},
        {"class": "eye_closed", "position": [160, 140, 180, 150]},
        {"class": "mouth_opened", "position": [130, 200, 170, 220]},
    ]
    found = face_keypoints(objects)
    points = [float(v) for v in found["Points"]]
    pairs = list(zip(points[::2], points[1::2]))
    assert found["Count"] == 70 and len(pairs) == 70 and all(isinstance(v, str) for v in found["Points"])
    assert all(99.9 <= x <= 200.1 and 99.9 <= y <= 240.1 for x, y in pairs)
    assert pairs[68] == (130.0, 145.0) and pairs[69] == (170.0, 145.0)  # the pupils: the eye boxes' centres
    assert face_keypoints(objects[1:]) == {"Count": 0, "Points": []}


def test_behaviour_in_the_name_drives_the_content(tree):
    _, _, records = tree
    seen = Counter()
    for record in records:
        if "behaviour" not in record["meta"]:  # only the controlled names say it
            continue
        classes = {o["class"] for o in record["objects"]}
        behaviour = record["meta"]["behaviour"]
        seen[behaviour] += 1
        assert "face" in classes
        for other, (implied, ruled_out) in IMPLIED.items():
            if other != behaviour:
                assert implied not in classes, (record["file_name"], classes)
            elif implied.startswith("eye"):  # both eyes closed (or hidden)
                assert ruled_out not in classes, (record["file_name"], classes)
            else:
                assert implied in classes and ruled_out not in classes, (record["file_name"], classes)
    assert seen["normal"] > 0 and len(seen) >= 2


def test_frames_of_a_recording_share_everything_but_the_frame(tree):
    _, _, records = tree

    def recording(record):  # the name without its frame number (after "_", or a space in a few real-road names)
        return record["file_name"].replace(" ", "_").rsplit("_", 1)[0]

    recordings = Counter(recording(r) for r in records)
    # 60 recordings of 4 frames, less the key-point-only ones; one lost a frame to its 0-byte label file
    kept = 60 - len(tree[1]["keypoint_only"]["files"]) // 4
    assert sorted(Counter(recordings.values()).items()) == [(3, 1), (4, kept - 1)]
    by_recording = {}
    for r in records:
        by_recording.setdefault(recording(r), []).append(r)
    for frames in by_recording.values():
        faces = [next(o["position"] for o in r["objects"] if o["class"] == "face") for r in frames]
        assert len({json.dumps(r["meta"], sort_keys=True) for r in frames}) == 1
        # smooth motion: the face moves, but by a few pixels between frames
        assert max(abs(a - b) for f, g in zip(faces, faces[1:]) for a, b in zip(f, g)) < 0.1 * SIZE[1]


def test_same_output_for_any_number_of_workers(tmp_path, monkeypatch):
    write_aihub_tree(tmp_path / "a", 30, seed=1, size=SIZE, frames=3, progress=False)
    monkeypatch.setattr("drowsy.synth.competition._CHUNK", 7)  # several chunks, split over two processes
    write_aihub_tree(tmp_path / "b", 30, seed=1, size=SIZE, frames=3, workers=2, progress=False)
    files = [
        {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.*")) if p.is_file()}
        for root in (tmp_path / "a", tmp_path / "b")
    ]
    assert len(files[0]) == 60 and files[0] == files[1]


def test_class_rates_follow_the_real_table(tmp_path):
    write_aihub_tree(tmp_path / "raw", 1500, seed=0, size=(96, 160), frames=1, progress=False)
    report = prepare_dataset(tmp_path / "raw", tmp_path / "out", val_size=0, progress=False)
    objects = report["splits"]["train"]["objects_per_class"]
    for name in CLASSES:
        rate = objects[name] / 1500
        assert rate == pytest.approx(CLASS_RATES[name], abs=max(0.25 * CLASS_RATES[name], 0.015)), name
    records = load_manifest(tmp_path / "out" / "train.json").records
    glasses = GLASSES_RATE + (1 - GLASSES_RATE) * SUNGLASSES_RATE  # sunglasses are glasses in the JSON
    for key, rate in (("glasses", glasses), ("cap", CAP_RATE)):  # Accessory in the JSON -> meta
        assert sum(r["meta"][key] for r in records) / 1500 == pytest.approx(rate, abs=0.04), key
    # a phone call holds the phone at the ear or, where there is room, in front of the chest (below the face)
    calls = [
        {o["class"]: o["position"] for o in r["objects"]}
        for r in records
        if r["meta"].get("behaviour") == "phone call"  # the controlled names say it
    ]
    in_hand = sum(boxes["phone"][1] > boxes["face"][3] - 2 for boxes in calls if "face" in boxes)
    assert len(calls) >= 40 and 0.25 * PHONE_IN_HAND_RATE < in_hand / len(calls) <= PHONE_IN_HAND_RATE + 0.1


def test_cli_writes_the_tree(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "raw"), "--images", "3", "--size", "96x160"]) == 0  # the default layout
    assert len(list((tmp_path / "raw").rglob("*.json"))) == 3
    assert main(["synth", str(tmp_path / "x"), "--format", "aihub", "--labels-out", str(tmp_path / "l.json")]) == 2
    assert "labels-out" in capsys.readouterr().err
