"""Data preparation: diet rules and their order, the split, manifests, report, exports and the CLI."""

import errno
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from drowsy import CLASSES
from drowsy.cli import main
from drowsy.data.exports import coco_instances, export_coco
from drowsy.data.labels import load_manifest
from drowsy.data.prepare import (
    detect_format,
    diet_rule,
    meta_stats,
    prepare_dataset,
    read_raw,
    select_diet,
    split_stats,
    summarize,
)
from drowsy.data.split import leakage, split_records, val_count
from drowsy.errors import DrowsyError
from drowsy.files import link_image
from tests.helpers import AIHubTree, controlled_stem


def record(name, *classes, size=(32, 18)):
    """A manifest record with one small box per class."""
    objects = [{"class": c, "position": [1 + i, 1, 5 + i, 6]} for i, c in enumerate(classes)]
    return {"file_name": name, "width": size[0], "height": size[1], "channels": 1, "objects": objects}


def make_raw(root, records, bad=()):
    """A competition folder: 32x18 grayscale JPEGs for `records` (manifest-style dicts) + labels.json.

    `bad` records go into labels.json without an image being written.
    """
    images = root / "images"
    images.mkdir(parents=True)
    image = np.random.default_rng(0).integers(0, 256, (18, 32), dtype=np.uint8)
    for r in records:
        assert cv2.imwrite(str(images / r["file_name"]), image)
    labels = [{"file_name": r["file_name"], "objects": r["objects"]} for r in records] + list(bad)
    (root / "labels.json").write_text(json.dumps({"annotations": labels}), encoding="utf-8")
    return root


def names(records):
    return [r["file_name"] for r in records]


# --- diet rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "classes, rule",
    [
        ({"cigar"}, "cigar_or_phone"),
        ({"phone", "face"}, "cigar_or_phone"),
        ({"phone", "mouth_opened"}, "cigar_or_phone"),
        ({"cigar", "eye_closed", "mouth_closed"}, "cigar_or_phone"),
        ({"eye_closed", "mouth_closed"}, "eye_closed_and_mouth_closed"),
        ({"eye_closed", "mouth_closed", "mouth_opened"}, "eye_closed_and_mouth_closed"),
        ({"eye_closed", "mouth_opened", "face"}, "eye_closed_and_mouth_opened"),
        ({"mouth_opened", "eye_opened", "face"}, "mouth_opened_every_3rd"),
        ({"eye_closed", "face"}, None),
        ({"eye_opened", "mouth_closed", "face"}, None),
        (set(), None),
    ],
)
def test_first_matching_diet_rule(classes, rule):
    assert diet_rule(classes) == rule


def test_every_third_mouth_opened_image_counts_only_its_own():
    train = [
        record("m1", "mouth_opened"),
        record("p1", "phone", "mouth_opened"),  # phone rule: not a mouth_opened candidate
        record("m2", "mouth_opened", "face"),
        record("e1", "eye_closed", "mouth_opened"),  # eye_closed rule: not a candidate either
        record("m3", "mouth_opened"),
        record("n1", "face", "eye_opened"),
        record("m4", "mouth_opened"),
        record("m5", "mouth_opened"),
        record("m6", "mouth_opened"),
        record("c1", "cigar"),
        record("k1", "eye_closed", "mouth_closed"),
        record("m7", "mouth_opened"),
    ]
    diet, counts = select_diet(train)
    assert names(diet) == ["p1", "e1", "m3", "m6", "c1", "k1"]
    assert counts["kept_by_rule"] == {
        "cigar_or_phone": 2,
        "eye_closed_and_mouth_closed": 1,
        "eye_closed_and_mouth_opened": 1,
        "mouth_opened_every_3rd": 2,
    }
    assert counts["mouth_opened_candidates"] == 7
    assert counts["dropped"] == len(train) - len(diet) == 6


# --- split ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_images, val_size, expected",
    [
        (0, 20000, 0),
        (1, 20000, 0),
        (2, 20000, 1),
        (4, 20000, 1),
        (100, 20000, 20),
        (100, 5, 5),
        (100, 0, 0),
        (273224, 20000, 20000),
    ],
)
def test_val_count_is_clamped_to_a_fifth(num_images, val_size, expected):
    assert val_count(num_images, val_size) == expected


def test_split_is_seeded_disjoint_and_complete():
    records = [record(f"{i:03d}.jpg", "face") for i in range(200)]
    train, val = split_records(records, val_size=30, seed=0)
    again_train, again_val = split_records(records, val_size=30, seed=0)
    _, other_val = split_records(records, val_size=30, seed=1)
    assert names(val) == names(again_val) and names(train) == names(again_train)
    assert names(val) != names(other_val)
    assert len(val) == 30 and not set(names(train)) & set(names(val))
    assert sorted(names(train) + names(val)) == names(records)
    assert names(train) == sorted(names(train))  # input order kept


def driver(subject, frames, *classes):
    """`frames` records of one driver (`meta` subject), each with one object per class."""
    return [{**record(f"{subject}_{f}.jpg", *classes), "meta": {"subject": subject}} for f in range(frames)]


def test_records_without_the_group_key_are_groups_of_their_own():
    # 4 frames of driver "a" and 6 records that name no driver, the last without any meta
    records = (
        driver("a", 4, "face")
        + [{**record(f"x{i}.jpg", "face"), "meta": {}} for i in range(5)]
        + [record("x5.jpg", "face")]
    )
    for seed in range(4):
        train, val = split_records(records, val_size=2, seed=seed, group_by="subject")
        assert len(val) == 2 and set(names(val)) <= {f"x{i}.jpg" for i in range(6)}  # "a" alone would overshoot
        assert len(train) == 8 and {f"a_{f}.jpg" for f in range(4)} <= set(names(train))


@pytest.mark.parametrize(
    "records, val",
    [
        (driver("a", 10, "face"), []),  # one driver: validation would take every image
        # val_count(10) = 2: "b" fills it best (1 face of the 2 due, "a" brings 7 too many), then "a" would
        # leave train empty: validation stops short at 1 image
        (driver("a", 9, "face") + driver("b", 1, "face"), ["b_0.jpg"]),
    ],
)
def test_a_grouped_split_leaves_train_a_group_even_if_val_stays_short(records, val):
    for seed in range(4):
        train, got = split_records(records, val_size=2, seed=seed, group_by="subject")
        assert names(got) == val and len(train) == len(records) - len(val)


@pytest.mark.parametrize(
    "records, val_size, val_classes",
    [
        # val_count(10) = 2; due: 9 faces x 2 / 10 = 1.8, 4 phones x 2 / 10 = 0.8 (each relative to max(due, 1)).
        # 1st draw: a face+phone image fills 1/1.8 + 0.8 - 0.2 = 1.16 (two faces: 1 - 0.2/1.8 = 0.89, one: 0.56);
        # then 0.8 faces and no phone lack: one face (0.6/1.8) beats two (-0.4/1.8) and a phone (-0.67)
        (
            [
                {**record(f"{i}.jpg", *classes), "meta": {"subject": str(i)}}
                for i, classes in enumerate([()] * 3 + [("face",)] + [("face", "face")] * 2 + [("face", "phone")] * 4)
            ],
            2,
            [["face"], ["face", "phone"]],
        ),
        # val_count(4) = 1 image; driver "c" brings 4 cigars where 1 is due (-2), "f" 2 faces where 0.5 are (-1)
        (driver("c", 2, "cigar", "cigar") + driver("f", 2, "face"), 1, [["face"], ["face"]]),
    ],
)
def test_each_grouped_draw_takes_the_driver_that_best_fills_what_val_lacks(records, val_size, val_classes):
    for seed in range(8):  # the outcome does not depend on the order the drivers are weighed in
        _, val = split_records(records, val_size=val_size, seed=seed, group_by="subject")
        assert sorted(sorted(obj["class"] for obj in r["objects"]) for r in val) == val_classes


def test_leakage_counts_val_subjects_seen_in_each_other_split_and_their_val_images():
    splits = {
        "train": driver("a", 2) + driver("b", 1) + driver("c", 3) + [record("n1.jpg")],
        "val": driver("a", 3) + driver("c", 1) + driver("d", 2) + [{**record("n2.jpg"), "meta": {"lighting": "left"}}],
        "diet": driver("c", 1) + driver("e", 1),
    }
    assert leakage(splits) == {
        "key": "subject",
        "val_values": 3,  # a, c, d
        "records_without_key": 2,  # n1 (no meta), n2 (meta without a subject)
        "train": {"shared_values": 2, "val_images": 4},  # a (3 val images) and c (1)
        "diet": {"shared_values": 1, "val_images": 1},  # c
    }


def test_meta_stats_count_records_per_key_and_value_and_list_values_up_to_50():
    # 51 drivers, 50 scenarios (the last two drivers share "49"); one meta dict per driver shared by its frames
    metas = [{"subject": str(i), "scenario": str(min(i, 49)), "environment": "controlled"} for i in range(51)]
    records = [{"file_name": f"{i}_{f}.jpg", "meta": m} for i, m in enumerate(metas) for f in range(2)]
    records.append({"file_name": "other.jpg"})
    stats = meta_stats(records, {"unrecognised_names": 1})
    assert stats == {
        "unrecognised_names": 1,
        "records_with": {"subject": 102, "scenario": 102, "environment": 102},
        "distinct": {"subject": 51, "scenario": 50, "environment": 1},
        "values": {"scenario": {**{str(i): 2 for i in range(49)}, "49": 4}, "environment": {"controlled": 102}},
    }
    assert list(stats["records_with"]) == ["subject", "scenario", "environment"]  # meta.META_KEYS order


# --- prepare_dataset ----------------------------------------------------------------------------


@pytest.fixture
def raw(tmp_path):
    kinds = [
        ("face", "eye_opened", "mouth_closed"),
        ("face", "phone"),
        ("face", "eye_closed", "mouth_closed"),
        ("face", "mouth_opened"),
        ("face", "cigar"),
        (),
    ]
    records = [record(f"image_{i:04d}.jpg", *kinds[i % len(kinds)]) for i in range(40)]
    bad = [
        {"file_name": "missing.jpg", "objects": [{"class": "face", "position": [1, 1, 5, 5]}]},
        {"file_name": "image_0000.jpg", "objects": []},
        {"file_name": "image_0001.jpg"},
    ]
    return make_raw(tmp_path / "raw", records, bad)


def test_prepare_writes_consistent_manifests_and_report(raw, tmp_path):
    out = tmp_path / "runs" / "out"  # parents made too
    report = prepare_dataset(raw, out, val_size=6, seed=0, progress=False)
    train, val, diet = (load_manifest(out / f"{split}.json") for split in ("train", "val", "diet"))
    assert train.image_root == val.image_root == diet.image_root == raw / "images"
    assert train.image_root.is_absolute()
    assert all((r["width"], r["height"], r["channels"]) == (32, 18, 1) for r in train.records + val.records)
    assert len(val.records) == 6 and len(train.records) == 34
    assert not set(names(train.records)) & set(names(val.records))
    assert set(names(train.records)) | set(names(val.records)) == {f"image_{i:04d}.jpg" for i in range(40)}
    assert set(names(diet.records)) <= set(names(train.records))
    assert diet.records == [r for r in train.records if r in diet.records]  # train order
    assert not list(out.rglob("*.jpg"))  # images are never copied

    totals = report["totals"]
    assert totals["records"] == {"read": 43, "kept": 40, "dropped": 3, "keypoint_only": 0}
    assert totals["objects"]["read"] == totals["objects"]["kept"] + totals["objects"]["dropped"]
    assert totals["objects"]["dropped"] == 1
    dropped = [(i["record"], i["field"], i["action"]) for i in report["issues"] if i["action"] != "info"]
    # every dropped record listed once, with the field at fault (the order is no contract)
    assert sorted(dropped) == [(40, "file_name", "dropped"), (41, "file_name", "dropped"), (42, "objects", "dropped")]
    assert report["issue_counts"] == {"dropped": 3, "repaired": 0, "info": 6}
    splits = report["splits"]
    assert splits["train"]["images"] + splits["val"]["images"] == totals["records"]["kept"]
    for split, manifest in (("train", train), ("val", val), ("diet", diet)):
        per_class = splits[split]["objects_per_class"]
        assert list(per_class) == list(CLASSES)
        assert sum(per_class.values()) == splits[split]["objects"] == sum(len(r["objects"]) for r in manifest.records)
    assert sum(report["diet"]["kept_by_rule"].values()) == splits["diet"]["images"] == len(diet.records)
    assert report["image_shapes"] == {"32x18x1": 40}
    assert json.loads((out / "report.json").read_text()) == report

    assert (report["format"], report["labels"], report["image_root"]) == (
        "competition",
        str(raw / "labels.json"),
        str(raw / "images"),
    )
    no_subjects = {"shared_values": 0, "val_images": 0}
    assert report["split"] == {
        "split": "draw",
        "seed": 0,
        "group_by": None,
        "val_size_requested": 6,
        "val_images": 6,
        "train_images": 34,
        "rule": "val = min(val_size, 20% of kept images, at least 1 when >= 2 images), drawn at random with the seed; "
        "train = the rest",
        "leakage": {
            "key": "subject",
            "val_values": 0,
            "records_without_key": 40 + len(diet.records),
            "train": no_subjects,
            "diet": no_subjects,
        },
    }
    assert (report["diet"]["source"], report["diet"]["rules_in_order"]) == (
        "train split",
        ["cigar_or_phone", "eye_closed_and_mouth_closed", "eye_closed_and_mouth_opened", "mouth_opened_every_3rd"],
    )
    assert report["outputs"] == {
        **{split: str(out / f"{split}.json") for split in ("train", "val", "diet")},
        "report": str(out / "report.json"),
    }
    # "image_0000.jpg" fits no AIHub naming scheme: no meta, every name unrecognised
    assert report["meta"] == {"unrecognised_names": 40, "records_with": {}, "distinct": {}, "values": {}}
    assert summarize(report).splitlines()[:3] == [
        "records: 43 read, 40 kept, 3 dropped",
        "objects: 83 read, 82 kept (0 clipped), 1 dropped",  # 6 x (3+2+3+2+2+0) + 3+2+3+2 kept, missing.jpg's face
        f"split: 34 train, 6 val images; diet set: {len(diet.records)} images from train",
    ]


def controlled_name(subject, frame, lighting="무광원"):
    return f"{controlled_stem(subject, frame, lighting)}.jpg"


@pytest.fixture
def named_raw(tmp_path):
    """A competition folder whose names tell the driver: 5 drivers x 4 frames, driver 6's one frame with
    a lighting word no table knows, and 2 names that fit no scheme; one face each."""
    files = [controlled_name(s, f) for s in range(1, 6) for f in range(4)]
    files += [controlled_name(6, 0, lighting="달빛"), "extra_0.jpg", "extra_1.jpg"]
    return make_raw(tmp_path / "named", [record(name, "face") for name in files])


def test_competition_names_give_meta_for_a_split_by_driver_and_the_report(named_raw, tmp_path):
    out = tmp_path / "out"
    report = prepare_dataset(named_raw, out, val_size=4, seed=0, group_by="subject", progress=False)
    train, val = (load_manifest(out / f"{split}.json").records for split in ("train", "val"))
    by_name = {r["file_name"]: r.get("meta") for r in train + val}
    assert by_name[controlled_name(2, 3)] == {
        "subject": "002",
        "group": "G1",
        "scenario": "01",
        "environment": "controlled",
        "lighting": "none",
        "gaze_target": "instrument cluster",
        "behaviour": "normal",
    }
    assert "lighting" not in by_name[controlled_name(6, 0, lighting="달빛")] and by_name["extra_0.jpg"] is None
    # val_count(23) = 4 images; a driver's 4 faces fill the 4 due exactly: validation is one whole driver
    val_subjects = {r["meta"]["subject"] for r in val}
    assert (
        len(val) == 4
        and len(val_subjects) == 1
        and not val_subjects & {r.get("meta", {}).get("subject") for r in train}
    )
    nothing_shared = {"shared_values": 0, "val_images": 0}
    assert report["split"] == {
        "split": "draw",
        "seed": 0,
        "group_by": "subject",
        "val_size_requested": 4,
        "val_images": 4,
        "train_images": 19,
        "rule": "val = min(val_size, 20% of kept images, at least 1 when >= 2 images), whole groups drawn at random "
        "until val_size with the seed; train = the rest",
        "leakage": {
            "key": "subject",
            "val_values": 1,
            "records_without_key": 2,  # the extras; the diet set is empty
            "train": nothing_shared,
            "diet": nothing_shared,
        },
    }
    assert report["meta"] == {
        "unrecognised_names": 3,  # driver 6's frame and the two extras
        "records_with": {
            "subject": 21,
            "group": 21,
            "scenario": 21,
            "lighting": 20,
            "gaze_target": 21,
            "behaviour": 21,
            "environment": 21,
        },
        "distinct": {
            "subject": 6,
            "group": 1,
            "scenario": 1,
            "lighting": 1,
            "gaze_target": 1,
            "behaviour": 1,
            "environment": 1,
        },
        "values": {
            "subject": {"001": 4, "002": 4, "003": 4, "004": 4, "005": 4, "006": 1},
            "group": {"G1": 21},
            "scenario": {"01": 21},
            "lighting": {"none": 20},
            "gaze_target": {"instrument cluster": 21},
            "behaviour": {"normal": 21},
            "environment": {"controlled": 21},
        },
    }
    assert summarize(report).splitlines()[3] == "subjects: 1 in val, 0 of them also in train (0 val images)"


def test_prepare_defaults_to_seed_0_and_20000_val_images(raw, tmp_path):
    split = prepare_dataset(raw, tmp_path / "out", progress=False)["split"]
    assert (split["seed"], split["val_size_requested"], split["val_images"]) == (0, 20000, 8)  # 20% of 40


def test_resize_to_the_smallest_long_side_is_accepted(raw, tmp_path):
    report = prepare_dataset(raw, tmp_path / "out", val_size=0, resize=32, progress=False)
    assert report["resize"] == {"long_side": 32, "resized": 0, "linked": 40}  # 32x18 images already fit


def test_prepare_is_deterministic(raw, tmp_path):
    for out in ("a", "b"):
        prepare_dataset(raw, tmp_path / out, val_size=6, seed=3, progress=False)
    for split in ("train.json", "val.json", "diet.json"):
        assert (tmp_path / "a" / split).read_bytes() == (tmp_path / "b" / split).read_bytes()


def test_output_inside_raw_folder_is_refused(raw):
    with pytest.raises(DrowsyError, match="read-only"):
        prepare_dataset(raw, raw / "prepared", progress=False)


def test_missing_images_folder(tmp_path):
    (tmp_path / "labels.json").write_text('{"annotations": []}')
    with pytest.raises(DrowsyError, match="images folder not found"):
        prepare_dataset(tmp_path, tmp_path.parent / "out_missing_images", progress=False)


def aihub_tree(root, stems):
    """An AIHub tree with one subject folder holding an image and its label JSON per stem."""
    tree = AIHubTree(root)
    for stem in stems:
        tree.add("001_G1", stem)
    return root


def test_the_raw_format_is_told_from_what_the_folder_holds(raw, tmp_path):
    tree = aihub_tree(tmp_path / "tree", ["a"])
    assert detect_format(raw) == "competition" and detect_format(tree) == "aihub"
    assert detect_format(tree, "competition") == "competition"  # a forced format is taken as given
    (tmp_path / "empty").mkdir()
    with pytest.raises(DrowsyError) as err:
        detect_format(tmp_path / "empty")
    assert str(err.value) == (
        f"{tmp_path / 'empty'}: neither a competition folder (labels.json + images/) nor an AIHub "
        "tree ('[라벨]...' label folders of per-image JSON); check the path or set --format"
    )
    # images given elsewhere: the folder is read as an AIHub tree even with no label folder in sight
    with pytest.raises(DrowsyError, match="no label JSON found"):
        read_raw(tmp_path / "empty", images_dir=tree)


def test_an_aihub_tree_is_read_with_the_tree_as_labels_and_image_root(tmp_path):
    tree = aihub_tree(tmp_path / "tree", ["a", "b"])
    raw = read_raw(tree)
    assert (raw.raw_format, raw.labels, raw.image_root) == ("aihub", tree, tree)
    assert [r["file_name"] for r in raw.validation.records] == [
        "Training/[원천]bbox(통제환경)/001_G1/a.jpg",
        "Training/[원천]bbox(통제환경)/001_G1/b.jpg",
    ]
    report = prepare_dataset(tree, tmp_path / "out", val_size=0, progress=False)
    assert (report["format"], report["labels"], report["image_root"]) == ("aihub", str(tree), str(tree))
    assert load_manifest(tmp_path / "out" / "train.json").image_root == tree


# --- exports ----------------------------------------------------------------------------------


def test_yolo_export_links_images_and_normalises_boxes(tmp_path):
    records = [
        {
            "file_name": "a.jpg",
            "width": 32,
            "height": 18,
            "channels": 1,
            "objects": [{"class": "phone", "position": [4, 3, 12, 9]}, {"class": "face", "position": [0, 0, 32, 18]}],
        },
        {"file_name": "b.jpg", "width": 32, "height": 18, "channels": 1, "objects": []},
    ]
    raw = make_raw(tmp_path / "raw", records)
    out = tmp_path / "out"
    prepare_dataset(raw, out, val_size=0, export="yolo", progress=False)
    image = out / "yolo" / "train" / "images" / "a.jpg"
    assert os.path.samefile(image, raw / "images" / "a.jpg") and not image.is_symlink()
    lines = (out / "yolo" / "train" / "labels" / "a.txt").read_text().splitlines()
    assert [line.split() for line in lines] == [
        ["5", "0.250000", "0.333333", "0.250000", "0.333333"],
        ["4", "0.500000", "0.500000", "1.000000", "1.000000"],
    ]
    assert (out / "yolo" / "train" / "labels" / "b.txt").read_text() == ""
    data = yaml.safe_load((out / "yolo" / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASSES)) and data["nc"] == 7
    assert list(data) == ["path", "train", "val", "diet", "nc", "names"] and data["path"] == str(out / "yolo")
    assert all((out / "yolo" / data[split]).is_dir() for split in ("train", "val", "diet"))  # diet is empty
    assert sorted(path.name for path in (out / "yolo" / "diet").iterdir()) == ["images", "labels"]
    report = prepare_dataset(raw, out, val_size=0, export="yolo", progress=False)  # a second run replaces the links
    assert os.path.samefile(image, raw / "images" / "a.jpg")
    assert report["outputs"]["yolo"] == str(out / "yolo" / "data.yaml")


def test_coco_export_loads_in_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    records = [record(f"{i}.jpg", "face", "eye_closed") for i in range(3)] + [record("3.jpg")]
    raw = make_raw(tmp_path / "raw", records)
    out = tmp_path / "out"
    prepare_dataset(raw, out, val_size=0, export="coco", progress=False)
    report = prepare_dataset(raw, out, val_size=0, export="coco", progress=False)  # a second run overwrites
    assert report["outputs"]["coco"] == str(out / "coco")
    coco = COCO(str(out / "coco" / "train.json"))
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) == 6
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    first = coco.loadAnns(coco.getAnnIds(imgIds=[1]))[0]
    assert first["bbox"] == [1, 1, 4, 5] and first["category_id"] == CLASSES.index("face") + 1
    assert min(coco.getAnnIds()) == 1  # COCOeval reads id 0 as "no match"


def test_coco_instances_number_images_annotations_and_categories_from_1():
    records = [
        {
            "file_name": "a.jpg",
            "width": 32,
            "height": 18,
            "objects": [{"class": "phone", "position": [4, 3, 12, 9]}, {"class": "face", "position": [0, 1, 32, 18]}],
        },
        {"file_name": "b/c.jpg", "width": 20, "height": 10, "objects": []},
        {"file_name": "d.jpg", "width": 32, "height": 18, "objects": [{"class": "face", "position": [2, 2, 6, 10]}]},
    ]
    assert coco_instances(records) == {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 32, "height": 18},
            {"id": 2, "file_name": "b/c.jpg", "width": 20, "height": 10},
            {"id": 3, "file_name": "d.jpg", "width": 32, "height": 18},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 6, "bbox": [4, 3, 8, 6], "area": 48, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 5, "bbox": [0, 1, 32, 17], "area": 544, "iscrowd": 0},
            {"id": 3, "image_id": 3, "category_id": 5, "bbox": [2, 2, 4, 8], "area": 32, "iscrowd": 0},
        ],
        "categories": [{"id": i, "name": name} for i, name in enumerate(CLASSES, start=1)],
    }


def test_export_coco_makes_its_folder_and_parents(tmp_path):
    root = export_coco(tmp_path / "new" / "out", {"train": [record("a.jpg", "face")], "val": []})
    assert root == tmp_path / "new" / "out" / "coco"
    assert sorted(path.name for path in root.iterdir()) == ["train.json", "val.json"]
    assert json.loads((root / "val.json").read_text())["images"] == []


# --- command line -----------------------------------------------------------------------------


def test_cli_missing_raw_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("drowsy: error: ") and "raw data folder not found" in err


def test_cli_forced_competition_format_without_labels_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["prepare", str(tmp_path), str(tmp_path.parent / "out"), "--format", "competition"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "labels.json" in err


def test_cli_non_json_labels_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels.json").write_text("annotations: [oops")
    assert main(["prepare", str(tmp_path), str(tmp_path.parent / "cli_out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid JSON" in err and "Traceback" not in err


def test_cli_prints_summary(raw, tmp_path, capsys):
    assert main(["prepare", str(raw), str(tmp_path / "out"), "--val-size", "6", "--seed", "1", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "records: 43 read, 40 kept, 3 dropped" in out and str(tmp_path / "out" / "diet.json") in out


def test_yolo_export_falls_back_to_symlinks_across_filesystems(tmp_path, monkeypatch):
    raw = make_raw(tmp_path / "raw", [record("a.jpg", "face")])

    def cross_device(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    prepare_dataset(raw, tmp_path / "out", val_size=0, export="yolo", progress=False)
    image = tmp_path / "out" / "yolo" / "train" / "images" / "a.jpg"
    assert image.is_symlink() and os.path.samefile(image, raw / "images" / "a.jpg")


def test_yolo_export_refuses_two_images_sharing_a_label_file(tmp_path):
    raw = make_raw(tmp_path / "raw", [record("a.jpg", "face"), record("a.png", "phone")])
    with pytest.raises(DrowsyError, match="'a.jpg' and 'a.png' would share the YOLO label file a.txt"):
        prepare_dataset(raw, tmp_path / "out", val_size=0, export="yolo", progress=False)


def test_resize_copies_large_images_once_and_scales_their_boxes(tmp_path, capsys):
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    cv2.imwrite(str(raw / "images" / "big.jpg"), np.tile(np.arange(320, dtype=np.uint8) // 2, (180, 1)))
    cv2.imwrite(str(raw / "images" / "small.png"), np.zeros((60, 100), np.uint8))
    labels = [
        {"file_name": "big.jpg", "objects": [{"class": "face", "position": [100, 40, 300, 180]}]},
        {"file_name": "small.png", "objects": [{"class": "phone", "position": [10, 10, 50, 30]}]},
    ]
    (raw / "labels.json").write_text(json.dumps({"annotations": labels}))
    assert main(["prepare", str(raw), str(tmp_path / "out"), "--val-size", "0", "--resize", "160"]) == 0
    assert "images: 1 resized to a long side of 160 px, 1 hard-linked as they were" in capsys.readouterr().out
    manifest = load_manifest(tmp_path / "out" / "train.json")
    assert Path(manifest.image_root) == tmp_path / "out" / "images"
    big, small = sorted(manifest.records, key=lambda r: r["file_name"])
    assert (big["width"], big["height"]) == (160, 90) and big["objects"][0]["position"] == [50, 20, 150, 90]
    assert cv2.imread(str(tmp_path / "out" / "images" / "big.jpg"), cv2.IMREAD_UNCHANGED).shape == (90, 160)
    assert small == {**small, "width": 100, "height": 60, "objects": [{"class": "phone", "position": [10, 10, 50, 30]}]}
    assert os.path.samefile(tmp_path / "out" / "images" / "small.png", raw / "images" / "small.png")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["resize"] == {"long_side": 160, "resized": 1, "linked": 1}
    with pytest.raises(SystemExit, match="2"):  # below 32 px: refused by the argument parser
        main(["prepare", str(raw), str(tmp_path / "again"), "--resize", "8"])
    assert "--resize: must be an integer >= 32, got '8'" in capsys.readouterr().err


# --- argument checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argument, message",
    [
        ({"export": "yaml"}, "export: must be one of yolo, coco or None, got 'yaml'"),
        ({"export": "YOLO"}, "got 'YOLO'"),
        ({"raw_format": "yolo"}, "format: must be one of auto, competition, aihub, got 'yolo'"),
        ({"val_size": -1}, "val_size: must be >= 0, got -1"),
        ({"resize": 31}, "resize: the long side must be 0 (keep the images) or >= 32 pixels, got 31"),
        ({"resize": -1}, "got -1"),
    ],
)
def test_bad_prepare_argument_is_one_line_before_reading_anything(tmp_path, argument, message):
    # RAW does not exist: a check made only after reading it would fail on the folder instead.
    with pytest.raises(DrowsyError) as err:
        prepare_dataset(tmp_path / "nowhere", tmp_path / "out", progress=False, **argument)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "folder, keys",
    [
        ("raw", "none"),
        ("named_raw", "behaviour, environment, gaze_target, group, lighting, scenario, subject"),
    ],
    ids=["no meta", "named"],
)
def test_a_group_by_key_no_record_has_is_refused_not_a_silent_random_split(request, tmp_path, folder, keys):
    raw = request.getfixturevalue(folder)
    with pytest.raises(DrowsyError) as err:
        prepare_dataset(raw, tmp_path / "out", val_size=6, group_by="subjekt", progress=False)
    assert str(err.value) == (
        f"{raw / 'labels.json'}: group_by 'subjekt': no record's meta has this key (keys: {keys}), "
        'so no group can be held out; group_by "" splits by random images'
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--val-size", "-1", "argument --val-size: must be an integer >= 0, got '-1'"),
        ("--val-size", "1.5", "argument --val-size: must be an integer >= 0, got '1.5'"),
        ("--workers", "0", "argument --workers: must be an integer >= 1, got '0'"),
        ("--resize", "31", "argument --resize: must be an integer >= 32, got '31'"),
        ("--export", "yaml", "argument --export: invalid choice: 'yaml'"),
        ("--format", "yolo", "argument --format: invalid choice: 'yolo'"),
    ],
)
def test_cli_bad_prepare_option_ends_in_one_line_naming_it(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", str(tmp_path / "nowhere"), str(tmp_path / "out"), option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == [err.splitlines()[-1]]  # usage first, then the error alone on the last line
    assert errors[0].startswith("drowsy prepare: error: ") and message in errors[0]
    assert not (tmp_path / "out").exists()


# --- exports of nested file names -------------------------------------------------------------


def make_nested_raw(root, labels):
    """A competition folder whose `labels` (file name -> classes) name images in sub-folders."""
    image = np.random.default_rng(0).integers(0, 256, (18, 32), dtype=np.uint8)
    for name in labels:
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / "images" / name), image)
    annotations = [record(name, *classes) for name, classes in labels.items()]
    (root / "labels.json").write_text(json.dumps({"annotations": annotations}), encoding="utf-8")
    return root


def test_yolo_export_mirrors_nested_file_names_without_collisions(tmp_path):
    labels = {
        "[원천]졸음운전/R_216_60_M/r_216_60_m_01_0001.jpg": ("phone",),
        "[원천]졸음운전/R_217_60_F/r_216_60_m_01_0001.jpg": ("face", "eye_closed"),
        "other/r_216_60_m_01_0001.jpg": ("cigar",),
        "deep/er/x.jpg": (),  # makes deep/ before its own image needs it
        "deep/y.jpg": (),
        "top.jpg": (),
    }
    raw = make_nested_raw(tmp_path / "raw", labels)
    out = tmp_path / "출력"
    prepare_dataset(raw, out, val_size=0, export="yolo", progress=False)
    split = out / "yolo" / "train"
    written = {path.relative_to(split / "labels").as_posix() for path in (split / "labels").rglob("*.txt")}
    assert written == {name[: -len(".jpg")] + ".txt" for name in labels}
    for name, classes in labels.items():
        lines = (split / "labels" / name).with_suffix(".txt").read_text().splitlines()
        assert [int(line.split()[0]) for line in lines] == [CLASSES.index(c) for c in classes]
        image = split / "images" / name
        assert os.path.samefile(image, raw / "images" / name) and not image.is_symlink()
    diet = out / "yolo" / "diet" / "labels"
    assert {path.relative_to(diet).as_posix() for path in diet.rglob("*.txt")} == {
        "[원천]졸음운전/R_216_60_M/r_216_60_m_01_0001.txt",
        "other/r_216_60_m_01_0001.txt",
    }
    assert f"path: {out / 'yolo'}\n" in (out / "yolo" / "data.yaml").read_text(
        encoding="utf-8"
    )  # readable, not escaped


def test_yolo_export_refuses_two_images_sharing_a_nested_label_file(tmp_path):
    raw = make_nested_raw(tmp_path / "raw", {"R_216/a.jpg": ("face",), "R_216/a.png": ("phone",)})
    with pytest.raises(DrowsyError) as err:
        prepare_dataset(raw, tmp_path / "out", val_size=0, export="yolo", progress=False)
    message = str(err.value)
    assert "'R_216/a.jpg' and 'R_216/a.png' would share the YOLO label file a.txt" in message
    assert message.startswith(str(raw / "images")) and "\n" not in message


# --- hard links -------------------------------------------------------------------------------


def refusing_link(code):
    def link(source, target):
        raise OSError(code, os.strerror(code))

    return link


@pytest.mark.parametrize("code", [errno.EPERM, errno.EMLINK])
def test_yolo_export_falls_back_to_symlinks_when_hard_links_are_refused(tmp_path, monkeypatch, code):
    raw = make_raw(tmp_path / "raw", [record("a.jpg", "face")])
    monkeypatch.setattr(os, "link", refusing_link(code))
    prepare_dataset(raw, tmp_path / "out", val_size=0, export="yolo", progress=False)
    image = tmp_path / "out" / "yolo" / "train" / "images" / "a.jpg"
    assert image.is_symlink() and os.path.samefile(image, raw / "images" / "a.jpg")
    assert (tmp_path / "out" / "yolo" / "train" / "labels" / "a.txt").read_text().startswith("4 ")


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC, errno.EEXIST, errno.ENOENT])
def test_link_image_reraises_other_link_errors(tmp_path, monkeypatch, code):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"image")
    monkeypatch.setattr(os, "link", refusing_link(code))
    with pytest.raises(OSError) as err:
        link_image(source, tmp_path / "b.jpg")
    assert err.value.errno == code and not os.path.lexists(tmp_path / "b.jpg")


# --- per-split statistics ---------------------------------------------------------------------


def test_split_stats_counts_negatives_and_each_image_once_per_class():
    records = [
        record("a", "face", "face", "eye_opened", "eye_opened"),
        record("b"),
        record("c", "face", "phone"),
        record("d"),
        record("e", "phone", "phone", "phone"),
    ]
    stats = split_stats(records)
    assert (stats["images"], stats["negatives"], stats["objects"]) == (5, 2, 9)
    assert list(stats["objects_per_class"]) == list(stats["images_per_class"]) == list(CLASSES)
    assert {c: n for c, n in stats["objects_per_class"].items() if n} == {"face": 3, "eye_opened": 2, "phone": 4}
    assert {c: n for c, n in stats["images_per_class"].items() if n} == {"face": 2, "eye_opened": 1, "phone": 2}


def test_split_stats_of_an_empty_split():
    stats = split_stats([])
    assert (stats["images"], stats["negatives"], stats["objects"]) == (0, 0, 0)
    assert set(stats["images_per_class"].values()) == set(stats["objects_per_class"].values()) == {0}
