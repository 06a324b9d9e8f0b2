"""`drowsy synth`: write the embedded synthetic dataset (an AIHub tree, or images + labels.json) or a video clip.

Relative paths resolve against the repository root, like every other command's.
"""

import argparse

from drowsy.errors import DrowsyError
from drowsy.paths import resolve
from drowsy.synth.demo_data import parse_size

HELP = "write synthetic driver images (AIHub tree or competition layout) or a scripted video clip"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", nargs="?", help="output folder: images/ and labels.json, or an AIHub tree (images mode)")
    parser.add_argument(
        "--format",
        dest="layout",
        choices=("aihub", "competition"),
        default="aihub",
        help="aihub (default): the public AIHub tree, 800x1280 portrait by default, one label JSON "
        "per image, subjects as recordings of frames; competition: OUT/images + labels.json",
    )
    parser.add_argument("--video", metavar="OUT", help="render a clip instead: OUT/clip.mp4, frames.json, events.json")
    parser.add_argument("--images", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument(
        "--size", help="image size WxH in pixels (default: aihub 800x1280, competition and --video 640x360)"
    )
    parser.add_argument(
        "--labels-out", help="competition layout: write labels here instead of OUT/labels.json (a test set)"
    )
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="competition layout: the held-out family (phones and cigarettes in a pose the other sets never "
        "draw, each in half the images) for a generalisation check, as notebook 01 writes it",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes rendering images (default 1)")
    parser.add_argument("--seconds", type=float, default=120.0, help="clip length in seconds (default 120)")
    parser.add_argument("--fps", type=float, default=15.0, help="clip frames per second (default 15)")
    parser.add_argument(
        "--script",
        choices=("story", "protocol", "alert"),
        default="story",
        help="what the clip plays: story (default: blinks, yawns, phone, smoking, a drowsy phase), "
        "protocol (Euro NCAP-style items: glances, VATS, microsleep to unresponsive, talking, "
        "sunglasses, glare, face out of frame, ...) or alert (alert driving, nothing to alert on)",
    )


def run(args) -> int:
    default_size = "800x1280" if args.layout == "aihub" and args.video is None else "640x360"
    size = parse_size(args.size or default_size, field="--size", minimum=64)  # smaller scenes cannot hold a face
    if (args.out is None) == (args.video is None):
        raise DrowsyError("synth: give exactly one of OUT (images) or --video OUT (clip)")
    if args.video is not None:
        if args.seconds <= 0 or args.fps <= 0:
            raise DrowsyError(f"synth: --seconds and --fps must be > 0, got {args.seconds} and {args.fps}")
        from drowsy.synth.clips.write import write_clip

        clip = write_clip(resolve(args.video), args.seconds, args.fps, args.seed, size, script=args.script)
        print(f"wrote {clip} with frames.json and events.json")
        return 0
    if args.images < 1 or args.workers < 1:
        raise DrowsyError(f"synth: --images and --workers must be >= 1, got {args.images} and {args.workers}")
    out = resolve(args.out)
    if args.layout == "aihub":
        if args.labels_out or args.held_out:
            raise DrowsyError(
                "synth: --labels-out and --held-out are for the competition layout (--format competition)"
            )
        from drowsy.synth.aihub_tree import write_aihub_tree

        write_aihub_tree(out, args.images, args.seed, size, workers=args.workers)
        print(f"wrote {args.images} images and their label JSONs to {out / 'Training'}")
        return 0
    from drowsy.synth.competition import write_dataset

    labels_out = resolve(args.labels_out) if args.labels_out else None
    labels = write_dataset(out, args.images, args.seed, size, labels_out, args.workers, held_out=args.held_out)
    print(f"wrote {args.images} images to {out / 'images'} and labels to {labels}")
    return 0
