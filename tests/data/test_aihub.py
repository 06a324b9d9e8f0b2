"""The AIHub tree as downloaded: class mapping, every bad-input case, meta, the grouped split."""

import codecs
import json
import os
import re

import pytest

from drowsy.cli import main
from drowsy.data import meta
from drowsy.data.aihub import is_aihub_tree, read_tree
from drowsy.data.labels import load_manifest
from drowsy.data.prepare import prepare_dataset
from drowsy.data.split import split_records
from drowsy.errors import DrowsyError
from tests.helpers import (
    AIHUB_H,
    AIHUB_W,
    CONTROLLED,
    CONTROLLED_IMAGES,
    AIHubTree,
    aihub_box,
    aihub_hidden,
    aihub_label,
    controlled_stem,
)


def test_meta_from_the_three_naming_schemes():
    found, recognised = meta.from_path(
        f"{CONTROLLED_IMAGES}/001_G1/001_G1_03_좌측광원_룸미러_하품재현_20200917_182234_02144.jpg"
    )
    assert recognised and found == {
        "aihub_split": "training",
        "environment": "controlled",
        "subject": "001",
        "group": "G1",
        "scenario": "03",
        "lighting": "left",
        "gaze_target": "rear-view mirror",
        "behaviour": "yawning",
    }
    real_road = {
        "aihub_split": "validation",
        "environment": "real road",
        "vehicle": "bus",
        "subject": "R_216",
        "age": 60,
        "gender": "male",
        "scenario": "01",
        "mask": False,
        "glasses": True,
        "cap": False,
    }
    for path in (
        "Validation/[원천]bbox(실제도로환경)/1.버스/R_216_60_M/R_216_60_M_01_M0_G1_C0_01.jpg",
        "Validation/[원천]bbox(실제도로환경)/1.버스/R_216_60_M/R_216_60_M_01_M0_G1_C0 01.jpg",  # a space
        "2.Validation/원천데이터/bbox(실제도로환경)/1.버스/R_216_60_M/R_216_60_M_01_M0_G1_C0_01.jpg",  # repackaged
    ):
        assert meta.from_path(path) == (real_road, True), path
    found, recognised = meta.from_path(
        "Training/[원천]keypoint(준통제환경)/Q_105_40_F_02_M1_G0_C1/Q_105_40_F_02_M1_G0_C1_23.jpg"
    )
    assert recognised and found == {
        "aihub_split": "training",
        "environment": "semi-controlled",
        "subject": "Q_105",
        "age": 40,
        "gender": "female",
        "scenario": "02",
        "mask": True,
        "glasses": False,
        "cap": True,
    }
    # a name off the scheme keeps what its folders say: the subject of a real-road or sequence folder too
    for path, subject in (
        ("Training/[원천]bbox(실제도로환경)/4.트럭/R_233_40_M/frame.jpg", "R_233"),
        ("Training/[원천]keypoint(준통제환경)/Q_105_40_M_02_M0_G0_C0/x.jpg", "Q_105"),
    ):
        found, recognised = meta.from_path(path)
        assert not recognised and found["subject"] == subject and "scenario" not in found
    found, recognised = meta.from_path("Training/[원천]bbox(준통제환경)/x/some_other_name.jpg")
    assert not recognised and found == {"aihub_split": "training", "environment": "semi-controlled"}
    found, recognised = meta.from_path("001_G1_01_달빛_계기판_정상주시_20200917_182234_00001.jpg")  # unknown lighting
    assert not recognised and "lighting" not in found and found["behaviour"] == "normal"
    # the invented scheme of earlier versions is not a real one
    assert not meta.from_path("R_0123_45_M_02_1_0_Y_00017.jpg")[1]


def test_the_label_file_fills_only_what_the_path_does_not_say_and_disagreements_are_named():
    path_meta = {"subject": "R_216", "age": 60, "gender": "male", "mask": False}
    label = {"subject": "0", "age": 63, "gender": "female", "glasses": True, "mask": False}
    assert meta.merge_label(path_meta, label) == ["subject", "gender"]  # 63 is in the sixties the name says
    assert path_meta == {"subject": "R_216", "age": 60, "gender": "male", "mask": False, "glasses": True}
    agreeing = {"subject": "001"}
    assert meta.merge_label(agreeing, {"subject": "1", "age": 34}) == [] and agreeing == {"subject": "001", "age": 34}
    assert meta.merge_label({"subject": "R_216", "age": 60}, {"subject": "216", "age": 59}) == ["age"]


def test_meta_from_the_label_json():
    found = meta.from_label(
        {
            "UserInfo": {"ID": 7, "Gender": "여", "Age": "34"},
            "Accessory": {"Mask": False, "Glasses": "Y", "Cap": "maybe"},
        }
    )
    assert found == {"subject": "7", "gender": "female", "age": 34, "mask": False, "glasses": True}


def test_a_clean_tree_maps_every_box_to_its_class(tmp_path):
    tree = AIHubTree(tmp_path / "raw")
    tree.add("001_G1", controlled_stem(1, 1))
    phone = aihub_label(
        f"{controlled_stem(2, 1, behaviour='통화재현')}.jpg",
        boxes={
            "Face": aihub_box("20.00", "30.00", "60.00", "90.00"),
            "Leye": aihub_hidden(),
            "Reye": aihub_box(42, 45, 52, 52, opened=True),
            "Mouth": aihub_box(32, 70, 48, 80, opened=False),
            "Cigar": aihub_box(45, 75, 70, 80),
            "Phone": aihub_box(60, 40, 78, 90),
        },
        user={"ID": "002", "Gender": "남", "Age": 30},
        accessory={"Mask": False, "Glasses": True, "Cap": False},
    )
    tree.add("002_G1", controlled_stem(2, 1, behaviour="통화재현"), phone)
    report = prepare_dataset(tree.root, tmp_path / "out", val_size=0, progress=False)
    assert report["format"] == "aihub" and report["totals"]["records"] == {
        "read": 2,
        "kept": 2,
        "dropped": 0,
        "keypoint_only": 0,
    }
    records = {r["meta"]["subject"]: r for r in load_manifest(tmp_path / "out" / "train.json").records}
    assert sorted(o["class"] for o in records["001"]["objects"]) == ["eye_closed", "eye_opened", "face", "mouth_opened"]
    second = records["002"]
    assert sorted(o["class"] for o in second["objects"]) == ["cigar", "eye_opened", "face", "mouth_closed", "phone"]
    assert next(o for o in second["objects"] if o["class"] == "face")["position"] == [20.0, 30.0, 60.0, 90.0]
    assert second["file_name"] == f"{CONTROLLED_IMAGES}/002_G1/{controlled_stem(2, 1, behaviour='통화재현')}.jpg"
    assert second["meta"] | {} == {
        "aihub_split": "training",
        "environment": "controlled",
        "subject": "002",
        "group": "G1",
        "scenario": "01",
        "lighting": "none",
        "gaze_target": "instrument cluster",
        "behaviour": "phone call",
        "gender": "male",
        "age": 30,
        "mask": False,
        "glasses": True,
        "cap": False,
    }
    assert (second["width"], second["height"], second["channels"]) == (AIHUB_W, AIHUB_H, 1)


DEFECT_LABELS, DEFECT_IMAGES = f"{CONTROLLED}/009_G1", f"{CONTROLLED_IMAGES}/009_G1"  # the defect cases' folders
CP949_PREFIX = b'{"FileInfo": {"FileName": "'  # a label saved in the Korean code page: its name is not UTF-8


@pytest.fixture
def defects(tmp_path):
    """A tree with one good image per subject (5 subjects x 4 frames) and one of every defect."""
    tree = AIHubTree(tmp_path / "raw")
    for subject in range(1, 6):
        for frame in range(4):
            tree.add(f"{subject:03d}_G1", controlled_stem(subject, frame))
    folder, images = DEFECT_LABELS, DEFECT_IMAGES
    cases = {}

    def bad(stem, document=None, image=True, **kwargs):
        if image:
            tree.image_at(images, f"{stem}.jpg")
        cases[stem] = tree.label_at(folder, stem, document, **kwargs)

    bad("not_json", text='{"FileInfo": ')
    good = aihub_label("bom.jpg")
    bad("bom", data=codecs.BOM_UTF8 + json.dumps(good).encode())
    bad("no_objectinfo", {"FileInfo": {"FileName": "no_objectinfo.jpg"}})
    bad("no_boundingbox", {"FileInfo": {"FileName": "no_boundingbox.jpg"}, "ObjectInfo": {"KeyPoints": {}}})
    boxes = aihub_label("x")["ObjectInfo"]["BoundingBox"]
    bad(
        "bad_position",
        aihub_label("bad_position.jpg", boxes=boxes | {"Face": {"isVisible": True, "Position": [1, 2, 3]}}),
    )
    bad("no_opened", aihub_label("no_opened.jpg", boxes=boxes | {"Leye": aihub_box(28, 45, 38, 52)}))
    bad("zero_box", aihub_label("zero_box.jpg", boxes=boxes | {"Mouth": aihub_box(0, 0, 0, 0, opened=False)}))
    bad("inverted_box", aihub_label("inverted_box.jpg", boxes=boxes | {"Reye": aihub_box(52, 45, 42, 52, opened=True)}))
    bad("past_edge", aihub_label("past_edge.jpg", boxes=boxes | {"Face": aihub_box(-5, 30, AIHUB_W + 10, 90)}))
    bad("wrong_size", aihub_label("wrong_size.jpg", size=(AIHUB_H, AIHUB_W)))
    bad("no_image", aihub_label("no_image.jpg"), image=False)
    bad("names_bom_image", aihub_label("bom.jpg"), image=False)  # a second label file for bom.jpg
    bad("cp949", data=CP949_PREFIX + '운전자.jpg"}}'.encode("cp949"))
    bad("top_list", text="[]")
    bad("objectinfo_text", {"FileInfo": {"FileName": "objectinfo_text.jpg"}, "ObjectInfo": "none"})
    odd = {
        "Leye": aihub_box(28, 45, 38, 52, opened=True),
        "Reye": {"isVisible": "true", "Position": [42, 45, 52, 52]},
        "Mouth": aihub_box(32, 70, 48, 80, opened=True),
        "Cigar": aihub_hidden(),
        "Phone": "n/a",
    }  # and no Face at all
    bad("odd_boxes", aihub_label("odd_boxes.jpg", boxes=odd))
    thin = {"Cigar": aihub_box(45, 75, 45, 80), "Phone": aihub_box(60, 40, 78, 40)}  # no width; no height
    bad("thin_boxes", aihub_label("thin_boxes.jpg", boxes=boxes | thin))
    bad("all_hidden", aihub_label("all_hidden.jpg", boxes={key: aihub_hidden() for key in boxes}))
    no_size = aihub_label("no_size.jpg")
    del no_size["FileInfo"]["Width"]
    bad("no_size", no_size)
    bad("broken_image", aihub_label("broken_image.jpg"), image=False)
    (tree.root / images / "broken_image.jpg").write_bytes(b"not an image")
    cases["dangling"] = tree.root / folder / "dangling.json"
    cases["dangling"].symlink_to(tree.root / "gone.json")  # a link whose target was not unpacked
    tree.image_at(images, "unlabelled.jpg")
    for subject_images in {path.parent for path in tree.root.rglob("*.jpg")}:
        (subject_images / "Thumbs.db").write_bytes(b"")  # not an image: ignored
    for where, suffix in ((folder, b".json"), (images, b".jpg")):
        with open(os.fsencode(tree.root / where) + b"/\xc0\xaf" + suffix, "wb") as f:  # CP949 bytes, not UTF-8
            f.write(json.dumps(aihub_label("x.jpg")).encode())
    return tree.root, cases


def test_every_defect_is_named_and_nothing_good_is_lost(defects, tmp_path):
    raw, cases = defects
    report = prepare_dataset(raw, tmp_path / "out", val_size=0, progress=False)
    records, objects = report["totals"]["records"], report["totals"]["objects"]
    assert records["read"] == records["kept"] + records["dropped"]
    assert objects["read"] == objects["kept"] + objects["dropped"]
    kept = {r["file_name"].rsplit("/", 1)[-1] for r in load_manifest(tmp_path / "out" / "train.json").records}
    good = {f"{controlled_stem(s, f)}.jpg" for s in range(1, 6) for f in range(4)}
    assert (
        good
        | {
            "bom.jpg",
            "bad_position.jpg",
            "no_opened.jpg",
            "zero_box.jpg",
            "inverted_box.jpg",
            "past_edge.jpg",
            "odd_boxes.jpg",
            "thin_boxes.jpg",
            "all_hidden.jpg",
            "no_size.jpg",
        }
        == kept
    )
    assert _issues_by_file(report["issues"]) == _expected_defect_issues(cases)
    past_edge = next(
        r for r in load_manifest(tmp_path / "out" / "train.json").records if r["file_name"].endswith("past_edge.jpg")
    )
    assert next(o for o in past_edge["objects"] if o["class"] == "face")["position"] == [0, 30, AIHUB_W, 90]
    zero_box = next(
        r for r in load_manifest(tmp_path / "out" / "train.json").records if r["file_name"].endswith("zero_box.jpg")
    )
    assert "mouth_closed" not in {o["class"] for o in zero_box["objects"]}
    assert records["read"] == len(cases) + 20 + 1  # every label file, the undecodable name included
    assert report["meta"]["unrecognised_names"] == 12  # the defect cases that reached an image (named off-scheme)


def _issues_by_file(issues: list[dict]) -> dict[str, list[dict]]:
    """Issues grouped by the label file they name (else the image), in the order they were raised."""
    grouped = {}
    for issue in issues:
        grouped.setdefault(issue["label_file"] or issue["file_name"], []).append(issue)
    return grouped


def _expected_defect_issues(cases: dict) -> dict[str, list[dict]]:
    """Every issue the `defects` tree must raise: record = position among the label files sorted by path."""
    folder, images = DEFECT_LABELS, DEFECT_IMAGES
    good = [f"{CONTROLLED}/{s:03d}_G1/{controlled_stem(s, f)}.json" for s in range(1, 6) for f in range(4)]
    label_files = sorted(good + [f"{folder}/{stem}.json" for stem in cases])
    not_utf8 = "path is not valid UTF-8 (a zip unpacked with the wrong encoding? try 'unzip -O cp949')"

    def at(stem, field, reason, action="dropped", image=None):
        label_file = f"{folder}/{stem}.json"
        return {
            "record": label_files.index(label_file),
            "label_file": label_file,
            "file_name": image and f"{images}/{image}",
            "field": field,
            "reason": reason,
            "action": action,
        }

    def empty(stem, key, position):
        return at(
            stem,
            f"ObjectInfo.BoundingBox.{key}.Position",
            f"isVisible is true but the box {position} is empty or inverted",
        )

    expected = [
        at("not_json", "file", "not valid JSON: Expecting value (line 1 column 14)"),  # 13 characters, then nothing
        at("bom", "file", "UTF-8 byte-order mark removed", "repaired"),
        at("cp949", "file", f"not UTF-8 text (byte {len(CP949_PREFIX)})"),
        at("top_list", "file", "top level must be an object, got list"),
        at("dangling", "file", "cannot read (No such file or directory)"),
        at("no_objectinfo", "ObjectInfo", "missing or not an object"),
        at("objectinfo_text", "ObjectInfo", "missing or not an object"),
        at("no_boundingbox", "ObjectInfo.BoundingBox", "missing or not an object"),
        at("bad_position", "ObjectInfo.BoundingBox.Face.Position", "must be 4 numbers [x1, y1, x2, y2], got [1, 2, 3]"),
        at("no_opened", "ObjectInfo.BoundingBox.Leye.Opened", "must be true or false on a visible Leye, got None"),
        at("odd_boxes", "ObjectInfo.BoundingBox.Reye.isVisible", "must be true or false, got 'true'"),
        at("odd_boxes", "ObjectInfo.BoundingBox.Phone", "must be an object, got str"),
        empty("zero_box", "Mouth", [0, 0, 0, 0]),
        empty("inverted_box", "Reye", [52, 45, 42, 52]),
        empty("thin_boxes", "Cigar", [45, 75, 45, 80]),  # no width
        empty("thin_boxes", "Phone", [60, 40, 78, 40]),  # no height
        at("no_image", "FileInfo.FileName", "no image named no_image.jpg under the image folder"),
        at(
            "names_bom_image",
            "FileInfo.FileName",
            f"image {images}/bom.jpg already labelled by {folder}/bom.json: duplicate dropped",
            image="bom.jpg",
        ),
        at(
            "past_edge",
            "ObjectInfo.BoundingBox.Face.Position",
            f"box [-5, 30, {AIHUB_W + 10}, 90] clipped to the {AIHUB_W}x{AIHUB_H} image: [0, 30, {AIHUB_W}, 90]",
            "repaired",
            "past_edge.jpg",
        ),
        at(
            "wrong_size",
            "FileInfo.Width/Height",
            f"the label says {AIHUB_H}x{AIHUB_W} but the image is {AIHUB_W}x{AIHUB_H}",
            image="wrong_size.jpg",
        ),
        at("all_hidden", "objects", "no objects: kept as a negative example", "info", "all_hidden.jpg"),
        at("broken_image", "image", "unreadable image (not a format OpenCV can decode)", image="broken_image.jpg"),
        {
            "record": None,
            "label_file": f"{folder}/\ufffd\ufffd.json",
            "file_name": None,
            "field": "path",
            "reason": not_utf8,
            "action": "dropped",
        },
        {
            "record": None,
            "label_file": None,
            "file_name": f"{images}/\ufffd\ufffd.jpg",
            "field": "path",
            "reason": not_utf8,
            "action": "dropped",
        },
    ] + [
        {
            "record": None,
            "label_file": None,
            "file_name": f"{images}/{stem}.jpg",
            "field": "image",
            "reason": "no label file names this image: not used",
            "action": "info",
        }  # their label files were dropped
        for stem in (
            "cp949",
            "no_boundingbox",
            "no_objectinfo",
            "not_json",
            "objectinfo_text",
            "top_list",
            "unlabelled",
        )
    ]
    return _issues_by_file(expected)


def test_grouped_split_puts_no_subject_on_both_sides(defects, tmp_path):
    raw, _ = defects
    report = prepare_dataset(raw, tmp_path / "out", val_size=5, seed=1, group_by="subject", progress=False)
    train, val = (load_manifest(tmp_path / "out" / f"{s}.json").records for s in ("train", "val"))
    subjects = [{r["meta"].get("subject") for r in part} for part in (train, val)]
    assert val and not subjects[0] & subjects[1]
    assert len(val) >= 5
    leak = report["split"]["leakage"]
    assert leak["key"] == "subject" and leak["train"] == {"shared_values": 0, "val_images": 0}
    assert leak["val_values"] == len(subjects[1] - {None})
    assert report["split"]["group_by"] == "subject"


def test_random_split_reports_its_leakage():
    records = [
        {"file_name": f"{s}_{f}.jpg", "objects": [], "meta": {"subject": str(s)}} for s in range(10) for f in range(10)
    ]
    train, val = split_records(records, val_size=20, seed=0)
    shared = {r["meta"]["subject"] for r in train} & {r["meta"]["subject"] for r in val}
    assert len(val) == 20 and shared  # 20 random frames of 10 drivers: some drivers on both sides
    grouped_train, grouped_val = split_records(records, val_size=20, seed=0, group_by="subject")
    assert len(grouped_val) == 20
    assert not {r["meta"]["subject"] for r in grouped_train} & {r["meta"]["subject"] for r in grouped_val}


@pytest.mark.parametrize("seed", range(20))
def test_grouped_split_gives_a_rare_class_its_share(seed):
    # 40 drivers of 10 frames; only 4 of them smoke: a random draw of 8 drivers misses all 4 in 39 % of draws
    smokers = {3, 17, 22, 35}
    records = [
        {
            "file_name": f"{s}_{f}.jpg",
            "meta": {"subject": str(s)},
            "objects": [{"class": "face"}, *([{"class": "cigar"}] if s in smokers else [])],
        }
        for s in range(40)
        for f in range(10)
    ]
    train, val = split_records(records, val_size=80, seed=seed, group_by="subject")
    val_subjects = {r["meta"]["subject"] for r in val}
    assert len(val) == 80 and not val_subjects & {r["meta"]["subject"] for r in train}
    assert sum(o["class"] == "cigar" for r in val for o in r["objects"]) == 10  # due: 40 x 80 / 400 = 8


def test_images_elsewhere_and_forced_format(tmp_path):
    tree = AIHubTree(tmp_path / "labels_only")
    in_folder, at_top = controlled_stem(1, 1), controlled_stem(1, 2)
    for stem in (in_folder, at_top):
        tree.label_at(f"{CONTROLLED}/001_G1", stem, aihub_label(f"{stem}.jpg"))
    images = AIHubTree(tmp_path / "images")
    images.image_at("001_G1", f"{in_folder}.jpg")
    images.image_at(".", f"{at_top}.jpg")
    hint = "(expected AIHub image folders like '[원천]bbox(통제환경)/<subject>/*.jpg'; or point --images at them)"
    with pytest.raises(DrowsyError, match=re.escape(f": no image found {hint}") + "$"):
        prepare_dataset(tree.root, tmp_path / "out", val_size=0, progress=False)
    report = prepare_dataset(tree.root, tmp_path / "out", val_size=0, images_dir=tmp_path / "images", progress=False)
    assert report["totals"]["records"]["kept"] == 2
    assert {r["file_name"] for r in load_manifest(tmp_path / "out" / "train.json").records} == {
        f"001_G1/{in_folder}.jpg",
        f"{at_top}.jpg",
    }


@pytest.mark.parametrize(
    "layout, message",
    [
        ("empty", "neither a competition folder"),
        (
            "labels_without_json",
            "no label JSON found (expected AIHub label folders like "
            "'[라벨]bbox(통제환경)/<subject>/*.json'; or use --format competition)",
        ),
    ],
)
def test_unusable_root_is_one_line_exit_2(tmp_path, capsys, layout, message):
    raw = tmp_path / "raw"
    raw.mkdir()
    if layout == "labels_without_json":
        (raw / "Training" / "[라벨]bbox(통제환경)").mkdir(parents=True)
    assert main(["prepare", str(raw), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_an_aihub_tree_has_a_label_folder_within_three_levels(tmp_path):
    (tmp_path / "near" / "AIHub" / "Training" / "[라벨]bbox(통제환경)").mkdir(parents=True)
    (tmp_path / "far" / "downloads" / "AIHub" / "Training" / "[라벨]bbox(통제환경)").mkdir(parents=True)
    assert is_aihub_tree(tmp_path / "near")
    assert not is_aihub_tree(tmp_path / "far")


def test_read_tree_counts_every_label_file_and_reports_progress_only_when_asked(tmp_path, capsys, monkeypatch):
    tree = AIHubTree(tmp_path / "raw")
    for frame in (1, 2):
        tree.add("001_G1", controlled_stem(1, frame))
    tree.label_at(f"{CONTROLLED}/001_G1", "orphan", aihub_label("orphan.jpg"))  # its image is missing
    reading = read_tree(tree.root)
    assert capsys.readouterr().out == ""
    assert reading.counts == {
        "records_read": 3,
        "records_dropped": 1,
        "objects_read": 12,
        "objects_dropped": 4,
        "unrecognised_names": 0,
    }  # 4 visible boxes per label file
    monkeypatch.setenv("DROWSY_PROGRESS", "lines")
    read_tree(tree.root, progress=True)
    assert capsys.readouterr().out.startswith("label files: 3 file in ")
    monkeypatch.setenv("DROWSY_PROGRESS", "bars")
    read_tree(tree.root, progress=True)
    assert "label files: 100%|" in capsys.readouterr().err  # the bar knows the total


def test_cli_groups_by_subject(defects, tmp_path, capsys):
    raw, _ = defects
    assert main(["prepare", str(raw), str(tmp_path / "out"), "--val-size", "4", "--group-by", "subject"]) == 0
    out = capsys.readouterr().out
    assert "0 of them also in train" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["split"]["group_by"] == "subject"


def test_plot_titles_get_english_names():
    assert (
        meta.english_name(f"{CONTROLLED_IMAGES}/001_G1/{controlled_stem(1, 4, '좌측광원', '하품재현')}.jpg")
        == "001_G1_01_left_instrument cluster_yawning_20200917_182234_00004.jpg"
    )
    assert meta.english_name("운전자_x.jpg") == "???_x.jpg"


# --- which image a label file names -------------------------------------------------------------

LABEL = "Training/[라벨]bbox/R_216/a.json"


def find(document: dict, images: dict, claimed: dict | None = None, label_file: str = LABEL):
    from drowsy.data.aihub import _find_image

    return _find_image(document, label_file, images, claimed or {})


def test_the_image_is_found_by_the_base_name_of_its_fileinfo_name_even_a_windows_path():
    images = {"a.jpg": ["Training/[원천]bbox/R_216/a.jpg"]}
    assert find({"FileInfo": {"FileName": " C:\\data\\R_216\\a.jpg "}}, images) == (
        "Training/[원천]bbox/R_216/a.jpg",
        None,
    )


def test_without_a_file_name_the_label_files_stem_with_any_image_suffix_is_used():
    images = {"a.png": ["Training/[원천]bbox/R_216/a.png"], "b.jpg": ["Training/[원천]bbox/R_216/b.jpg"]}
    for document in ({}, {"FileInfo": {"FileName": "  "}}, {"FileInfo": "a.png"}):
        assert find(document, images) == ("Training/[원천]bbox/R_216/a.png", None)
    assert find({}, {"b.jpg": images["b.jpg"]}) == (None, "no image named a.* under the image folder")
    assert find({"FileInfo": {"FileName": "c.jpg"}}, images) == (None, "no image named c.jpg under the image folder")


def test_of_several_images_of_one_name_the_one_mirroring_the_label_folder_wins():
    mirrored, other = "Training/[원천]bbox/R_216/a.jpg", "Validation/[원천]bbox/R_216/a.jpg"
    named = {"FileInfo": {"FileName": "a.jpg"}}
    assert find(named, {"a.jpg": [other, mirrored]}) == (mirrored, None)
    same_folder_name = "Elsewhere/2020/R_216/a.jpg"  # no mirror: the one in a folder of the label folder's name
    assert find(named, {"a.jpg": ["Elsewhere/2020/R_217/a.jpg", same_folder_name]}) == (same_folder_name, None)
    assert find(named, {"a.jpg": ["R_217/a.jpg", "R_216/a.jpg"]}) == ("R_216/a.jpg", None)  # --images at subjects
    ambiguous = ["X/R_1/a.jpg", "Y/R_2/a.jpg", "Z/R_3/a.jpg", "W/R_4/a.jpg"]
    assert find(named, {"a.jpg": ambiguous}) == (None, "4 images named a.jpg: W/R_4/a.jpg, X/R_1/a.jpg, Y/R_2/a.jpg")
    # label files right inside the label folder, no subject folders: two images of the name is one too many
    assert find(named, {"a.jpg": ["B/a.jpg", "A/a.jpg"]}, label_file="[라벨]bbox/a.json") == (
        None,
        "2 images named a.jpg: A/a.jpg, B/a.jpg",
    )


def test_an_image_another_label_file_claimed_is_reported_as_a_duplicate():
    image = "Training/[원천]bbox/R_216/a.jpg"
    found = find(
        {"FileInfo": {"FileName": "a.jpg"}}, {"a.jpg": [image]}, {image: "Training/[라벨]bbox/R_216/a_copy.json"}
    )
    assert found == (
        image,
        f"image {image} already labelled by Training/[라벨]bbox/R_216/a_copy.json: duplicate dropped",
    )
