"""The prepared splits exported for other detector toolkits: YOLO label files with the images hard-linked
(`out_dir/yolo`, with its data.yaml) and COCO instances files (`out_dir/coco`). Nothing is copied or
re-encoded.
"""

import shutil
from pathlib import Path

import yaml

from drowsy import CLASS_IDS, CLASSES
from drowsy.errors import DrowsyError
from drowsy.files import link_image, write_json
from drowsy.progress import progress as progress_bar

EXPORTS = ("yolo", "coco")


def yolo_label_lines(record: dict) -> str:
    """YOLO label text: one `class_id cx cy w h` line per object, normalised by the image size."""
    width, height = record["width"], record["height"]
    lines = []
    for obj in record["objects"]:
        x1, y1, x2, y2 = obj["position"]
        lines.append(
            f"{CLASS_IDS[obj['class']]} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n"
        )
    return "".join(lines)


def export_yolo(out_dir: Path, image_root: Path, splits: dict[str, list[dict]], progress: bool = False) -> Path:
    """`out_dir/yolo/<split>/{images,labels}` (images hard-linked) and `out_dir/yolo/data.yaml`."""
    root = out_dir / "yolo"
    for split, records in splits.items():
        _export_yolo_split(root / split, image_root, records, progress)
    data = {
        "path": str(root),
        "train": "train/images",
        "val": "val/images",
        "diet": "diet/images",  # the baseline trains on this one
        "nc": len(CLASSES),
        "names": dict(enumerate(CLASSES)),
    }
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return data_yaml


def _export_yolo_split(split_dir: Path, image_root: Path, records: list[dict], progress: bool) -> None:
    if split_dir.exists():  # holds only links and label files from an earlier run
        shutil.rmtree(split_dir)
    made_dirs = {split_dir / "images", split_dir / "labels"}
    for folder in made_dirs:  # even for an empty split, so the paths in data.yaml exist
        folder.mkdir(parents=True)
    label_owner: dict[Path, str] = {}
    for record in progress_bar(records, desc=f"yolo {split_dir.name}", unit="img", enabled=progress):
        name = record["file_name"]
        image, label = split_dir / "images" / name, (split_dir / "labels" / name).with_suffix(".txt")
        if label in label_owner:
            raise DrowsyError(
                f"{image_root}: images '{label_owner[label]}' and '{name}' would share the YOLO label "
                f"file {label.name}: rename one of them"
            )
        label_owner[label] = name
        for folder in (image.parent, label.parent):
            if folder not in made_dirs:
                folder.mkdir(parents=True, exist_ok=True)
                made_dirs.add(folder)
        link_image(image_root / name, image)
        label.write_text(yolo_label_lines(record), encoding="utf-8")


def coco_instances(records: list[dict]) -> dict:
    """COCO instances dict. Image and annotation ids start at 1 (COCOeval reads id 0 as "no match");
    category id = class id + 1, following COCO's 1-based categories. bbox is xywh pixels."""
    images, annotations = [], []
    for image_id, record in enumerate(records, start=1):
        images.append(
            {"id": image_id, "file_name": record["file_name"], "width": record["width"], "height": record["height"]}
        )
        for obj in record["objects"]:
            x1, y1, x2, y2 = obj["position"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CLASS_IDS[obj["class"]] + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def export_coco(out_dir: Path, splits: dict[str, list[dict]]) -> Path:
    """`out_dir/coco/<split>.json` COCO instances files (file names relative to the raw images)."""
    root = out_dir / "coco"
    root.mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        write_json(root / f"{split}.json", coco_instances(records), indent=None)
    return root
