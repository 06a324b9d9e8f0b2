"""How long `prepare_dataset` takes, and how much memory it needs, on a dataset of the real size.

    python benchmarks/prepare_speed.py [--format competition|aihub] [--records 273224] [--workers K]

Builds (once, cached in a temp folder it prints) a dataset of `--records` tiny JPEGs (32x18 px, a
few distinct files hard-linked to every name, so it costs little disk) with face/eye/mouth boxes
and some phones and cigars at roughly the real class rates: in the competition layout (one
labels.json) or as an AIHub tree (one label JSON per image, 500 frames per subject folder, the real
names of the three subsets: 70 % controlled, 20 % real road, 10 % semi-controlled with key points).
Then runs `prepare_dataset` in a fresh process and prints its wall time, CPU time (the fair number on
a busy machine) and peak RSS from resource.getrusage (children included). Targets on 2 cores:
competition <= 12 s, AIHub <= 60 s, both <= 2 GB. The page cache
is warm after the first run; a cold disk reads 273k inodes more slowly (more header threads,
`--workers`, hide some of that latency).
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGE_SIZE = (32, 18)  # width, height in pixels
LINKS_PER_FILE = 60000  # ext4 allows at most 65000 hard links to one file


def build_fixture(root: Path, records: int, seed: int = 0) -> None:
    """`root/images/*.jpg` + `root/labels.json`; `root/complete` marks a finished build."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = source_images(root, records, rng)
    annotations = []
    for i in range(records):
        name = f"image_{i:014d}.jpg"
        target = images / name
        if not target.exists():
            os.link(sources[i % len(sources)], target)
        annotations.append({"file_name": name, "objects": synthetic_objects(rng)})
    (root / "labels.json").write_text(json.dumps({"annotations": annotations}))
    (root / "complete").touch()


AIHUB_KEYS = {"face": "Face", "phone": "Phone", "cigar": "Cigar", "mouth_opened": "Mouth", "mouth_closed": "Mouth"}


SUBSETS = ((0.7, "bbox(통제환경)"), (0.9, "bbox(실제도로환경)"), (1.0, "keypoint(준통제환경)"))  # cumulative shares
KEYPOINTS = {"Count": 70, "Points": [f"{10 + k % 13:.2f}" for k in range(140)]}


def aihub_path(i: int, records: int, frames_per_subject: int) -> tuple[str, str]:
    """(folder under [라벨]/[원천], file stem) of record i, in the real names of its subset: the first 70 % of
    the records controlled, then 20 % real road (a space before the frame in every 8th scenario), then 10 %
    semi-controlled sequences of 25 frames."""
    subject, local = divmod(i, frames_per_subject)
    subject += 1
    subset = next(folder for share, folder in SUBSETS if i < share * records)
    if subset == "bbox(통제환경)":
        folder = f"{subject:03d}_G1"
        return f"{subset}/{folder}", f"{folder}_01_무광원_계기판_정상주시_20200917_182234_{local:05d}"
    person = f"{'R' if subset == 'bbox(실제도로환경)' else 'Q'}_{subject:03d}_40_M"
    if subset == "bbox(실제도로환경)":
        scenario, frame = divmod(local, 20)
        separator = " " if scenario % 8 == 7 else "_"
        return f"{subset}/1.버스/{person}", f"{person}_{scenario + 1:02d}_M0_G1_C0{separator}{frame + 1:02d}"
    sequence, frame = divmod(local, 25)
    folder = f"{person}_{sequence + 1:02d}_M0_G0_C0"
    return f"{subset}/{folder}", f"{folder}_{frame + 1:02d}"


def build_aihub_fixture(root: Path, records: int, seed: int = 0, frames_per_subject: int = 500) -> None:
    """An AIHub tree with the real names of its three subsets (`aihub_path`): images under `Training/[원천]...`
    and the label JSON of each under `[라벨]...` (with 70 key points in the semi-controlled subset);
    `root/complete` marks a finished build."""
    rng = np.random.default_rng(seed)
    sources = source_images(root, records, rng)
    width, height = IMAGE_SIZE
    made = set()
    for i in range(records):
        folder, stem = aihub_path(i, records, frames_per_subject)
        images, labels = (root / "Training" / f"[{kind}]{folder}" for kind in ("원천", "라벨"))
        if folder not in made:
            images.mkdir(parents=True, exist_ok=True)
            labels.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        if not (images / f"{stem}.jpg").exists():
            os.link(sources[i % len(sources)], images / f"{stem}.jpg")
        boxes = {
            key: {"isVisible": False, "Position": [0, 0, 0, 0]}
            for key in ("Face", "Leye", "Reye", "Mouth", "Cigar", "Phone")
        }
        eyes = iter(("Leye", "Reye"))
        for obj in synthetic_objects(rng):
            cls = obj["class"]
            key = next(eyes) if cls.startswith("eye") else AIHUB_KEYS[cls]
            boxes[key] = {"isVisible": True, "Position": [f"{v:.2f}" for v in obj["position"]]}
            if key in ("Leye", "Reye", "Mouth"):
                boxes[key]["Opened"] = cls.endswith("opened")
        document = {
            "FileInfo": {"FileName": f"{stem}.jpg", "Width": width, "Height": height, "Channel": 1},
            "UserInfo": {"ID": stem.split("_")[1] if stem[0] in "RQ" else stem[:3], "Gender": "남", "Age": 30},
            "Accessory": {"Mask": False, "Glasses": bool(i % 3 == 0), "Cap": False},
            "ObjectInfo": {"KeyPoints": KEYPOINTS if folder.startswith("keypoint") else {}, "BoundingBox": boxes},
        }
        (labels / f"{stem}.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    (root / "complete").touch()


def source_images(root: Path, records: int, rng: np.random.Generator) -> list[Path]:
    """A few distinct tiny JPEGs (hard-linked to every image name: little disk)."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    width, height = IMAGE_SIZE
    sources = []
    for k in range(max(8, math.ceil(records / LINKS_PER_FILE))):
        gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
        # Mostly grayscale like the competition images; every 4th source in colour.
        image = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR) if k % 4 == 3 else gray
        source = root / f"source_{k}.jpg"
        cv2.imwrite(str(source), image)
        sources.append(source)
    return sources


def synthetic_objects(rng: np.random.Generator) -> list[dict]:
    """A face, two eyes and a mouth inside the 32x18 image; sometimes a phone or a cigar."""
    dx, dy = rng.uniform(-2, 2, 2).round(1)
    eyes = "eye_closed" if rng.random() < 0.15 else "eye_opened"
    mouth = "mouth_opened" if rng.random() < 0.12 else "mouth_closed"
    boxes = [
        ("face", [8, 2, 24, 16]),
        (eyes, [11, 5, 14, 7]),
        (eyes, [18, 5, 21, 7]),
        (mouth, [13, 11, 19, 14]),
    ]
    if rng.random() < 0.045:
        boxes.append(("phone", [2, 4, 8, 14]))
    if rng.random() < 0.04:
        boxes.append(("cigar", [19, 12, 25, 14]))
    return [{"class": c, "position": [x1 + dx, y1 + dy, x2 + dx, y2 + dy]} for c, (x1, y1, x2, y2) in boxes]


def measure(raw_dir: str, out_dir: str, workers: int | None) -> None:
    """Run prepare_dataset once in this (fresh) process and print time and peak memory."""
    from drowsy.data.prepare import prepare_dataset

    start = time.perf_counter()
    report = prepare_dataset(raw_dir, out_dir, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    own, children = (u.ru_maxrss / 2**20 for u in usage)  # KiB -> GiB
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    records = report["totals"]["records"]
    print(f"records read {records['read']}, kept {records['kept']}; diet {report['splits']['diet']['images']}")
    print(f"prepare_dataset: {seconds:.2f} s wall; process CPU time {cpu:.2f} s (imports included)")
    print(f"peak RSS: {own:.2f} GiB (children: {children:.2f} GiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=273224, help="images in the synthetic dataset")
    parser.add_argument(
        "--format",
        choices=("competition", "aihub"),
        default="competition",
        help="layout of the dataset (default competition)",
    )
    parser.add_argument("--workers", type=int, default=None, help="header-reading threads (default 2)")
    parser.add_argument("--measure", nargs=2, metavar=("RAW", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure, args.workers)
        return
    layout = "aihub3" if args.format == "aihub" else args.format  # aihub3: the three subsets' real names
    root = Path(tempfile.gettempdir()) / f"drowsy_prepare_bench_{layout}_{args.records}"
    print(f"fixture: {root}")
    if not (root / "complete").exists():
        start = time.perf_counter()
        (build_aihub_fixture if args.format == "aihub" else build_fixture)(root, args.records)
        print(f"built fixture in {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory(prefix="drowsy_prepare_out_") as out_dir:
        # A fresh interpreter, so the fixture build does not count towards the peak memory.
        command = [sys.executable, __file__, "--measure", str(root), out_dir]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
