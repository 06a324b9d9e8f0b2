"""The AIHub download as it is: the real folder and file names of its three subsets, a name with a space,
a 0-byte label file, a keypoint-only label, a UserInfo.ID that disagrees with the path, repackaged folder
names, and AIHub's own train/val split."""

import json

import pytest

from drowsy.cli import main
from drowsy.config import TrainConfig
from drowsy.data.aihub import read_tree
from drowsy.data.labels import load_manifest
from drowsy.data.prepare import prepare_dataset, summarize
from drowsy.errors import DrowsyError
from drowsy.train.engine import train
from tests.helpers import AIHubTree, aihub_label, controlled_stem

KEYPOINTS = [str(v) for i in range(70) for v in (10 + i % 10 * 5, 20 + i // 10 * 10)]  # 140 numeric strings


def real_download(root, training="Training", validation="Validation", label="[라벨]", source="[원천]"):
    """A tree with the real names: 4 controlled drivers (one in Validation), 3 real-road drivers (one in
    Validation; spaced names), 2 semi-controlled sequences (one with key points only), a 0-byte label
    file; every label file says `"UserInfo": {"ID": 0}`. Returns the tree."""
    tree = AIHubTree(root)

    def add(split, subset, folder, stem, document=None, data=None):
        tree.image_at(f"{split}/{source}{subset}/{folder}", f"{stem}.jpg")
        document = document or aihub_label(f"{stem}.jpg", user={"ID": 0, "Gender": "남", "Age": 63})
        tree.label_at(f"{split}/{label}{subset}/{folder}", stem, document, data=data)

    for subject in (1, 2, 3, 4):
        for frame in (1, 2, 3):
            add(
                training if subject < 4 else validation,
                "bbox(통제환경)",
                f"{subject:03d}_G1",
                controlled_stem(subject, frame),
            )
    for split, vehicle, person in (
        (training, "1.버스", "R_216_60_M"),
        (training, "3.택시", "R_233_40_M"),
        (validation, "2.승용", "R_300_30_F"),
    ):
        for frame in (1, 2, 3):
            separator = " " if person == "R_233_40_M" else "_"  # as in the public listing
            add(split, "bbox(실제도로환경)", f"{vehicle}/{person}", f"{person}_06_M1_G0_C0{separator}{frame:02d}")
    add(training, "bbox(실제도로환경)", "1.버스/R_216_60_M", "R_216_60_M_07_M0_G1_C1_01", data=b"")  # 0 bytes
    for sequence, boxes in (("Q_105_40_M_02_M0_G0_C0", True), ("Q_106_20_F_01_M0_G1_C0", False)):
        for frame in (1, 2):
            stem = f"{sequence}_{frame:02d}"
            document = aihub_label(f"{stem}.jpg")
            document["ObjectInfo"]["KeyPoints"] = {"Count": 70, "Points": KEYPOINTS}
            if not boxes:
                del document["ObjectInfo"]["BoundingBox"]
            add(training, "keypoint(준통제환경)", sequence, stem, document)
    return tree


def test_every_real_name_is_recognised_and_keeps_the_subject_its_path_gives(tmp_path):
    reading = read_tree(real_download(tmp_path / "raw").root)
    assert reading.counts["unrecognised_names"] == 0
    subjects = {r["meta"]["subject"] for r in reading.records}
    assert subjects == {"001", "002", "003", "004", "R_216", "R_233", "R_300", "Q_105"}
    # UserInfo.ID 0 never replaces the path's subject; where the label file disagrees is counted: its ID on
    # every record that has one (all but the 2 semi-controlled frames), its age of 63 with R_233's and R_300's
    # decades (not with R_216's sixties), its "남" with R_300's F
    assert reading.label_disagrees == {"subject": 21, "age": 6, "gender": 3}
    spaced = [r for r in reading.records if " " in r["file_name"]]
    assert len(spaced) == 3 and {r["meta"]["subject"] for r in spaced} == {"R_233"}
    assert spaced[0]["meta"] | {} == {
        "aihub_split": "training",
        "environment": "real road",
        "vehicle": "taxi",
        "subject": "R_233",
        "age": 40,
        "gender": "male",
        "scenario": "06",
        "mask": True,
        "glasses": False,
        "cap": False,
    }
    controlled = next(r for r in reading.records if r["meta"]["subject"] == "001")
    assert controlled["meta"]["age"] == 63  # what the name does not say, the label file fills
    assert reading.keypoint_only == [
        f"Training/[라벨]keypoint(준통제환경)/Q_106_20_F_01_M0_G1_C0/Q_106_20_F_01_M0_G1_C0_{f:02d}.json"
        for f in (1, 2)
    ]
    assert not reading.unlabelled_images[1:]  # only the image of the 0-byte label file
    [empty] = [i for i in reading.issues if i["label_file"] and i["label_file"].endswith("_C1_01.json")]
    assert (empty["field"], empty["reason"], empty["action"]) == ("file", "empty label file (0 bytes)", "dropped")


def test_prepare_by_subject_keeps_every_subject_on_one_side_and_no_keypoint_only_record(tmp_path):
    tree = real_download(tmp_path / "raw")
    report = prepare_dataset(tree.root, tmp_path / "out", val_size=6, group_by="subject", progress=False)
    train, val = (load_manifest(tmp_path / "out" / f"{s}.json").records for s in ("train", "val"))
    train_subjects, val_subjects = ({r["meta"]["subject"] for r in rs} for rs in (train, val))
    assert val and not train_subjects & val_subjects
    assert report["split"]["leakage"]["train"]["shared_values"] == 0
    assert report["totals"]["records"] == {"read": 26, "kept": 23, "dropped": 1, "keypoint_only": 2}
    assert report["keypoint_only"]["label_files"] == 2 and len(report["keypoint_only"]["files"]) == 2
    assert report["meta"]["unrecognised_names"] == 0 and report["meta"]["label_disagrees"]["subject"] == 21
    assert not any("Q_106" in r["file_name"] for r in train + val)
    semi = [r for r in train + val if "Q_105" in r["file_name"]]
    assert len(semi) == 2 and all(len(r["keypoints"]) == 70 and r["keypoints"][11] == [15.0, 30.0] for r in semi)
    assert "2 key points only" in summarize(report)


def test_aihub_split_uses_the_validation_folder_and_reports_shared_subjects(tmp_path):
    tree = real_download(tmp_path / "raw")
    report = prepare_dataset(tree.root, tmp_path / "out", split="aihub", progress=False)
    val = load_manifest(tmp_path / "out" / "val.json").records
    assert {r["meta"]["subject"] for r in val} == {"004", "R_300"} and len(val) == 6
    assert report["split"]["split"] == "aihub" and report["split"]["leakage"]["train"]["shared_values"] == 0
    assert report["split"]["train_images"] == 17


def test_a_split_that_would_leave_a_side_empty_stops_in_one_line(tmp_path):
    tree = AIHubTree(tmp_path / "raw")
    for frame in range(6):
        tree.add("001_G1", controlled_stem(1, frame))
    with pytest.raises(DrowsyError, match=r"split would leave validation empty: every record has the same subject"):
        prepare_dataset(tree.root, tmp_path / "out", val_size=2, group_by="subject", progress=False)
    with pytest.raises(DrowsyError, match=r"split would leave validation empty: no usable record is under a Valid"):
        prepare_dataset(tree.root, tmp_path / "out", split="aihub", progress=False)
    assert not (tmp_path / "out" / "val.json").exists()


def test_six_drivers_whose_label_files_all_say_id_0_still_split_by_driver(tmp_path):
    # the case that once wrote "split: 64 train, 0 val images" without a word
    tree = AIHubTree(tmp_path / "raw")
    for subject in range(1, 7):
        for frame in range(10):
            tree.add(f"{subject:03d}_G1", controlled_stem(subject, frame), user={"ID": 0})
    report = prepare_dataset(tree.root, tmp_path / "out", val_size=20, group_by="subject", progress=False)
    assert report["split"]["val_images"] >= 10 and report["split"]["leakage"]["train"]["shared_values"] == 0


def test_repackaged_folders_and_spaced_names_prepare_train_predict_and_evaluate(tmp_path, capsys):
    root = tmp_path / "raw"
    real_download(root, "1.Training", "2.Validation", label="라벨링데이터/", source="원천데이터/")
    report = prepare_dataset(root, tmp_path / "out", split="aihub", progress=False)
    assert report["meta"]["unrecognised_names"] == 0 and report["split"]["val_images"] == 6
    assert report["meta"]["values"]["aihub_split"] == {"training": 17, "validation": 6}
    summary = train(
        TrainConfig(
            train_manifest=str(tmp_path / "out" / "train.json"),
            val_manifest=str(tmp_path / "out" / "val.json"),
            run_dir=str(tmp_path / "run"),
            img_size=64,
            batch=4,
            nominal_batch=4,
            epochs=1,
            workers=0,
            cache=False,
        ),
        progress=False,
    )
    assert summary["epochs_done"] == 1 and not summary["stopped"]
    manifest, predictions = tmp_path / "out" / "train.json", tmp_path / "predictions.json"  # the spaced names
    command = ["predict", "--weights", summary["last"], "--images", str(manifest), "--out", str(predictions)]
    assert main([*command, "--img-size", "64", "--device", "cpu", "--quiet"]) == 0
    names = [r["file_name"] for r in json.loads(predictions.read_text())["annotations"]]
    assert names == [r["file_name"] for r in load_manifest(manifest).records] and any(" " in n for n in names)
    assert main(["evaluate", "--labels", str(manifest), "--predictions", str(predictions), "--json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out.splitlines()[-1])["mAP75"] <= 1


def test_training_refuses_an_empty_validation_manifest(tmp_path):
    tree = real_download(tmp_path / "raw")
    prepare_dataset(tree.root, tmp_path / "out", val_size=0, progress=False)  # asked for: no validation
    assert json.loads((tmp_path / "out" / "val.json").read_text())["annotations"] == []
    config = TrainConfig(
        train_manifest=str(tmp_path / "out" / "train.json"),
        val_manifest=str(tmp_path / "out" / "val.json"),
        run_dir=str(tmp_path / "run"),
        workers=0,
    )
    with pytest.raises(DrowsyError, match=r"val.json: no image to validate on"):
        train(config, progress=False)


def test_drowsy_prepare_split_aihub_from_the_command_line(tmp_path, capsys):
    tree = real_download(tmp_path / "raw")
    assert main(["prepare", str(tree.root), str(tmp_path / "out"), "--split", "aihub"]) == 0
    assert "17 train, 6 val images" in capsys.readouterr().out
    assert main(["prepare", str(tree.root), str(tmp_path / "out"), "--split", "aihub", "--val-size", "5"]) == 2
    assert "--split aihub takes the Validation/ folders as they are" in capsys.readouterr().err
