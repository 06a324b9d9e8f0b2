"""Label exploration (notebooks 01-02): class tables, co-occurrence, box sizes, splits, the diet rules."""

import dataclasses
import json

import cv2
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from drowsy import CLASSES  # noqa: E402
from drowsy.errors import DrowsyError  # noqa: E402
from drowsy.notebooks import DietParams, ExploreParams  # noqa: E402
from drowsy.synth.competition import write_dataset
from drowsy.synth.demo_data import ensure_dataset, parse_size  # noqa: E402
from drowsy.viz import explore  # noqa: E402
from drowsy.viz.figures import save_figure  # noqa: E402
from tests.helpers import obj  # noqa: E402

# Four 100x50 images: a typical open-eyed driver, a drowsy one on the phone, an empty frame, a smoker.
RECORDS = [
    {
        "file_name": "a.jpg",
        "width": 100,
        "height": 50,
        "objects": [
            obj("face", 20, 0, 80, 50),
            obj("eye_opened"),
            obj("eye_opened", 50, 10, 70, 20),
            obj("mouth_closed"),
        ],
    },
    {
        "file_name": "b.jpg",
        "width": 100,
        "height": 50,
        "objects": [obj("face"), obj("eye_closed"), obj("eye_closed"), obj("mouth_opened"), obj("phone")],
    },
    {"file_name": "c.jpg", "width": 100, "height": 50, "objects": []},
    {
        "file_name": "d.jpg",
        "width": 100,
        "height": 50,
        "objects": [obj("face"), obj("cigar"), obj("eye_closed"), obj("eye_opened")],
    },
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_class_counts_and_images_per_class_are_exact_and_in_class_order():
    counts = explore.class_counts(RECORDS)
    assert list(counts.index) == list(CLASSES)
    assert counts.to_dict() == {
        "eye_opened": 3,
        "eye_closed": 3,
        "mouth_opened": 1,
        "mouth_closed": 1,
        "face": 3,
        "phone": 1,
        "cigar": 1,
    }
    images = explore.images_per_class(RECORDS)
    assert images.to_dict() == {
        "eye_opened": 2,
        "eye_closed": 2,
        "mouth_opened": 1,
        "mouth_closed": 1,
        "face": 3,
        "phone": 1,
        "cigar": 1,
    }


def test_class_counts_include_absent_classes_as_zero():
    counts = explore.class_counts(RECORDS[:1])
    assert counts["phone"] == 0 and counts["cigar"] == 0 and counts["eye_opened"] == 2


def test_cooccurrence_counts_images_holding_both_classes():
    matrix = explore.cooccurrence(RECORDS)
    assert matrix.shape == (7, 7)
    assert (matrix.to_numpy() == matrix.to_numpy().T).all()
    assert list(np.diag(matrix)) == list(explore.images_per_class(RECORDS))
    assert matrix.loc["face", "eye_opened"] == 2  # a and d
    assert matrix.loc["eye_opened", "eye_closed"] == 1  # only d
    assert matrix.loc["phone", "eye_closed"] == 1
    assert matrix.loc["phone", "cigar"] == 0


def test_objects_frame_has_one_row_per_object_with_derived_geometry():
    frame = explore.objects_frame(RECORDS)
    assert list(frame.columns) == [
        "file_name",
        "class",
        "x1",
        "y1",
        "x2",
        "y2",
        "w",
        "h",
        "cx",
        "cy",
        "width",
        "height",
    ]
    assert len(frame) == 13
    assert list(frame["class"].cat.categories) == list(CLASSES)
    face = frame.iloc[0]
    assert (face["file_name"], face["class"]) == ("a.jpg", "face")
    assert (face["w"], face["h"], face["cx"], face["cy"]) == (60, 50, 50, 25)
    assert (face["width"], face["height"]) == (100, 50)


def test_objects_frame_without_image_sizes_has_no_size_columns():
    raw = [{k: v for k, v in r.items() if k not in ("width", "height")} for r in RECORDS]
    assert "width" not in explore.objects_frame(raw).columns


def test_unknown_class_is_rejected():
    with pytest.raises(ValueError, match="unknown class 'dog'"):
        explore.class_counts([{"file_name": "x.jpg", "objects": [obj("dog")]}])


def test_split_class_table_shares_add_up_per_split():
    table = explore.split_class_table({"train": RECORDS, "val": RECORDS[:1]})
    assert len(table) == 14
    shares = table.groupby("split", observed=True)["share"].sum()
    assert shares.to_numpy() == pytest.approx([100, 100])
    assert table.query("split == 'val' and `class` == 'eye_opened'")["share"].item() == pytest.approx(50)
    sizes = explore.split_sizes({"train": RECORDS, "val": RECORDS[:1]})
    assert sizes.loc["train", "images"] == 4 and sizes.loc["train", "objects"] == 13


def test_sample_records_shows_every_class_and_is_deterministic():
    many = RECORDS * 5
    samples = explore.sample_records(many, 3, seed=1)
    assert len(samples) == 3
    shown = {obj["class"] for record in samples for obj in record["objects"]}
    assert shown == set(CLASSES)
    assert samples == explore.sample_records(many, 3, seed=1)
    assert len(explore.sample_records(RECORDS, 10)) == 4


def test_parse_size_reads_width_by_height_and_rejects_garbage():
    assert parse_size("640x360") == (640, 360)
    assert parse_size((32, 16)) == (32, 16)
    for bad in ("640", "0x360", "640x360x3", "wide"):
        with pytest.raises(DrowsyError, match="synth_size: expected WIDTHxHEIGHT") as caught:
            parse_size(bad)
        assert "\n" not in str(caught.value)


def test_params_reject_bad_values_in_the_config_cell():
    with pytest.raises(DrowsyError, match="expected WIDTHxHEIGHT .* got 'big'"):
        ExploreParams.from_dict({"synth_size": "big"})
    with pytest.raises(DrowsyError, match="field 'export' must be '', 'yolo' or 'coco', got 'voc'"):
        DietParams.from_dict({"export": "voc"})
    with pytest.raises(DrowsyError, match="field 'val_size' must be int, got 'x'"):
        DietParams.from_dict({"val_size": "x"})
    with pytest.raises(DrowsyError, match="unknown key.* nope; known: export, group_by"):
        DietParams.from_dict({"nope": 1})
    for export in ("", "yolo", "coco"):  # every allowed value goes through, the other fields keep their defaults
        assert DietParams.from_dict({"export": export}) == dataclasses.replace(DietParams(), export=export)


def test_ensure_dataset_without_data_and_without_synthesis_is_one_line_error(tmp_path):
    raw_dir = tmp_path / "train"
    with pytest.raises(DrowsyError) as caught:
        ensure_dataset(raw_dir, synth_images=0)
    assert str(caught.value) == (
        f"{raw_dir}: no labels.json and no AIHub tree: point raw_dir at your data or set synth_images > 0"
    )
    assert not raw_dir.exists()


def test_ensure_dataset_uses_existing_labels_and_writes_nothing(tmp_path):
    raw_dir = tmp_path / "train"
    (raw_dir / "images").mkdir(parents=True)
    (raw_dir / "labels.json").write_text(json.dumps({"annotations": []}))
    before = sorted(tmp_path.rglob("*"))
    assert ensure_dataset(raw_dir, synth_images=10) == raw_dir
    assert sorted(tmp_path.rglob("*")) == before


def test_ensure_dataset_leaves_an_aihub_tree_alone(tmp_path):
    raw_dir = tmp_path / "aihub"
    (raw_dir / "Training" / "[라벨]bbox(통제환경)" / "001_G1").mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    assert ensure_dataset(raw_dir, synth_images=10) == raw_dir
    assert sorted(tmp_path.rglob("*")) == before


def test_meta_class_counts_per_value():
    records = [
        {"file_name": "a.jpg", "objects": [{"class": "face"}, {"class": "phone"}], "meta": {"lighting": "left"}},
        {"file_name": "b.jpg", "objects": [{"class": "face"}], "meta": {"lighting": "none"}},
        {"file_name": "c.jpg", "objects": [{"class": "face"}], "meta": {"lighting": "left"}},
        {"file_name": "d.jpg", "objects": [{"class": "cigar"}]},
    ]
    table = explore.meta_class_counts(records, "lighting")
    assert list(table.index) == ["left", "none"]
    assert table.loc["left", "images"] == 2 and table.loc["left", "face"] == 2 and table.loc["left", "phone"] == 1
    assert table.loc["none", "phone"] == 0 and table["cigar"].sum() == 0
    assert explore.meta_class_counts(records, "behaviour").empty
    ax = explore.plot_meta_class_counts(table, "lighting")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["left (2)", "none (1)"]


def test_ensure_dataset_never_writes_into_a_folder_of_unlabelled_images(tmp_path):
    raw_dir = tmp_path / "task03_test"
    (raw_dir / "images").mkdir(parents=True)
    (raw_dir / "images" / "real.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(DrowsyError, match="holds images"):
        ensure_dataset(raw_dir, synth_images=10)
    assert [p.name for p in (raw_dir / "images").iterdir()] == ["real.jpg"]


@pytest.mark.parametrize("layout", ["aihub", "competition"])
def test_ensure_dataset_says_in_one_line_when_existing_data_leaves_synth_images_unused(tmp_path, capsys, layout):
    raw_dir = tmp_path / "train"
    ensure_dataset(raw_dir, 20, size="64x96", workers=1, progress=False, layout=layout)
    assert capsys.readouterr().err == ""
    before = sorted(tmp_path.rglob("*"))
    ensure_dataset(raw_dir, 20, size="64x96", workers=1, progress=False, layout=layout)  # the same set: silent
    ensure_dataset(raw_dir, 0, layout=layout)  # never synthesise: nothing to say
    assert capsys.readouterr().err == ""
    ensure_dataset(raw_dir, 40, size="64x96", workers=1, progress=False, layout=layout)
    assert capsys.readouterr().err == (
        f"warning: {raw_dir} already holds 20 images, so synth_images = 40 is not used: delete the folder to "
        "synthesise the set asked for, or set synth_images: 0 for your own data\n"
    )
    assert sorted(tmp_path.rglob("*")) == before


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for record in RECORDS:
        cv2.imwrite(str(root / record["file_name"]), np.full((50, 100), 128, dtype=np.uint8))
    return root


def test_plots_draw_the_numbers_of_the_tables(image_root, tmp_path):
    frame = explore.objects_frame(RECORDS)
    counts = explore.class_table(RECORDS)[["objects", "images"]].to_numpy().ravel()
    widths = [p.get_width() for p in explore.plot_class_counts(RECORDS).patches]
    assert sorted(w for w in widths if w > 0) == sorted(c for c in counts if c > 0)  # zero bars vanish on the log axis
    matrix = explore.cooccurrence(RECORDS).to_numpy()
    drawn = np.asarray(explore.plot_cooccurrence(RECORDS).collections[0].get_array()).reshape(matrix.shape)
    shares = np.asarray(explore.plot_cooccurrence(RECORDS, share=True).collections[0].get_array()).reshape(matrix.shape)
    diagonal = np.diag(matrix)[:, None]
    assert (drawn == matrix).all()
    assert np.allclose(shares, np.where(diagonal > 0, 100 * matrix / np.maximum(diagonal, 1), 0))
    by_count = explore.plot_objects_per_image(RECORDS).axes[0]  # images holding 4, 5, 0 and 4 objects
    assert [p.get_height() for p in by_count.patches] == [1, 2, 1]
    splits = explore.plot_split_distributions({"train": RECORDS, "diet": RECORDS[1:2], "val": RECORDS[:1]}).axes[1]
    assert [round(sum(p.get_width() for p in bars), 6) for bars in splits.containers] == [100.0] * 3  # shares per split
    samples = explore.plot_samples(image_root, RECORDS, n=3, seed=0)
    assert sum(bool(ax.images) for ax in samples.axes) == 3
    sizes = explore.plot_box_sizes(frame).axes[0]
    assert [t.get_text() for t in sizes.get_yticklabels()] == list(CLASSES)
    per_class = frame["class"].value_counts()
    titles = [ax.get_title() for ax in explore.plot_box_centres(frame).axes if ax.get_title()]
    assert titles == [f"all classes ({len(frame)} boxes)"] + [
        f"{c} ({per_class[c]} boxes)" for c in CLASSES if c in per_class
    ]
    path = save_figure(samples, tmp_path / "out", "01_test")
    assert path == tmp_path / "out" / "figures" / "01_test.png" and cv2.imread(str(path)).shape[0] > 100


def test_plot_samples_names_a_missing_image(tmp_path):
    with pytest.raises(DrowsyError, match="a.jpg"):
        explore.plot_samples(tmp_path, RECORDS[:1], n=1)


def test_box_centres_need_image_sizes():
    raw = [{k: v for k, v in r.items() if k not in ("width", "height")} for r in RECORDS]
    with pytest.raises(ValueError, match="image sizes"):
        explore.plot_box_centres(explore.objects_frame(raw))


def test_class_table_and_split_comparison_agree_with_the_counts():
    table = explore.class_table(RECORDS)
    assert table.loc["eye_closed", "objects"] == 3 and table.loc["face", "images"] == 3
    assert table.loc["face", "% of images"] == 75.0
    assert table["% of objects"].sum() == pytest.approx(100, abs=0.05)
    wide = explore.split_comparison({"train": RECORDS, "diet": RECORDS[1:2]})
    assert wide.loc["phone", ("objects", "diet")] == 1 and wide[("objects", "train")].dtype == np.int64
    assert wide.loc["phone", ("share", "diet")] == 20.0


def test_ensure_dataset_synthesises_train_and_a_different_test_set_with_labels_apart(tmp_path):
    raw_dir = ensure_dataset(
        tmp_path / "train",
        3,
        seed=5,
        size="96x64",
        test_dir=tmp_path / "test",
        test_labels=tmp_path / "test_labels.json",
        synth_test_images=2,
        held_out_dir=tmp_path / "held_out",
        held_out_labels=tmp_path / "held_out_labels.json",
        synth_held_out_images=4,
        progress=False,
    )
    assert raw_dir == tmp_path / "train"
    labels = raw_dir / "labels.json"
    assert len(json.loads(labels.read_text())["annotations"]) == 3
    assert not (tmp_path / "test" / "labels.json").exists()
    test_records = json.loads((tmp_path / "test_labels.json").read_text())["annotations"]
    assert len(test_records) == 2
    train_image = (tmp_path / "train" / "images" / test_records[0]["file_name"]).read_bytes()
    assert (tmp_path / "test" / "images" / test_records[0]["file_name"]).read_bytes() != train_image
    assert cv2.imread(str(tmp_path / "test" / "images" / test_records[0]["file_name"])).shape[:2] == (64, 96)
    # the held-out family: its own images (seed + 2), labels apart, the same as write_dataset's held_out set
    held_out = json.loads((tmp_path / "held_out_labels.json").read_text())["annotations"]
    assert not (tmp_path / "held_out" / "labels.json").exists()
    write_dataset(tmp_path / "again", 4, seed=7, size=(96, 64), labels_path=tmp_path / "again.json", held_out=True)
    assert held_out == json.loads((tmp_path / "again.json").read_text())["annotations"]
    name = held_out[0]["file_name"]
    assert (tmp_path / "held_out" / "images" / name).read_bytes() == (tmp_path / "again" / "images" / name).read_bytes()


def test_prepared_splits_load_and_report_tables_add_up(tiny_dataset):
    splits = explore.load_splits(tiny_dataset)
    assert list(splits) == ["train", "diet", "val"]
    report = json.loads((tiny_dataset / "report.json").read_text())
    totals = explore.report_totals(report)
    assert totals.loc["records", "read"] == totals.loc["records", "kept"] + totals.loc["records", "dropped"]
    sizes = explore.split_sizes(splits)
    assert sizes.loc["diet", "images"] == report["splits"]["diet"]["images"]
    assert sizes.loc["train", "images"] + sizes.loc["val", "images"] == totals.loc["records", "kept"]
    assert list(explore.issues_frame(report).columns) == ["record", "file_name", "field", "reason", "action"]
    ax = explore.plot_diet_rules(report)
    kept = report["diet"]["kept_by_rule"]
    assert [t.get_text() for t in ax.get_yticklabels()][: len(kept)] == list(kept)


def test_plot_diet_rules_takes_plain_rule_counts():
    ax = explore.plot_diet_rules({"cigar_or_phone": 5, "eye_closed_and_mouth_closed": 0})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cigar_or_phone", "eye_closed_and_mouth_closed"]
