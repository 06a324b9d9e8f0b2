"""`write_clip`: a script rendered to OUT/clip.mp4 with OUT/frames.json and OUT/events.json."""

from pathlib import Path

import cv2
import numpy as np

from drowsy.files import write_json
from drowsy.monitor.events import write_events
from drowsy.progress import progress as progress_bar
from drowsy.synth.clips.animate import base_scene, clip_states
from drowsy.synth.clips.protocol import alert_script, protocol_script
from drowsy.synth.clips.script import Script, story_script
from drowsy.synth.render import render_scene
from drowsy.synth.scene import SceneState, room_below

SCRIPTS = ("story", "protocol", "alert")


def make_script(kind: str, seconds: float, seed: int, size: tuple[int, int] = (640, 360)) -> Script:
    """The script of a clip of `kind` (one of SCRIPTS)."""
    if kind == "story":
        base = base_scene(seed, size)
        return story_script(seconds, seed, room_below(base.face_y, base.face_height, size[1]))
    if kind == "protocol":
        return protocol_script(seconds, seed)
    if kind == "alert":
        return alert_script(seconds, seed)
    raise ValueError(f"script must be one of {', '.join(SCRIPTS)}, got {kind!r}")


def write_clip(
    out_dir,
    seconds: float,
    fps: float,
    seed: int,
    size: tuple[int, int] = (640, 360),
    progress: bool = True,
    script: str = "story",
) -> Path:
    """Render a clip of `script` to OUT/clip.mp4 (grey, 'mp4v') with OUT/frames.json and OUT/events.json.

    frames.json: {"fps", "width", "height", "frames": [{"index", "time_s", "eyes_closed", "mouth_open",
    "phone", "cigarette", "yaw", "pitch", "objects": [{"class", "position": [x1, y1, x2, y2]}]}]}
    (boxes as in labels.json; yaw and pitch: the head's drawn turn, degrees). events.json: the
    `drowsy.monitor.events` schema with every event's alert time where it has one and, for "alert" clips, the
    alert-free stretches. Returns the path of clip.mp4.
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be > 0, got {seconds} and {fps}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width, height = size
    plan = make_script(script, seconds, seed, size)
    states, truth = clip_states(plan, seconds, fps, seed, size)
    clip_path = out_dir / "clip.mp4"
    _render_video(clip_path, states, truth, fps, seed, size, progress)
    write_json(out_dir / "frames.json", {"fps": fps, "width": width, "height": height, "frames": truth}, indent=None)
    write_events(out_dir / "events.json", plan.events, fps, len(truth), plan.alert_free or None)
    return clip_path


def _render_video(
    path: Path,
    states: list[SceneState],
    truth: list[dict],
    fps: float,
    seed: int,
    size: tuple[int, int],
    progress: bool,
) -> None:
    """Render every frame's scene into the video at `path`; adds each frame's boxes to its truth
    record as "objects". Frame i draws its noise from its own generator, so a frame does not depend
    on the ones before it."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height), isColor=False)
    if not writer.isOpened():
        raise OSError(f"{path}: cv2.VideoWriter cannot write 'mp4v'")
    try:
        for frame, state in progress_bar(
            zip(truth, states), desc="clip", total=len(states), unit="frame", enabled=progress
        ):
            image, objects = render_scene(np.random.default_rng([seed, 3, frame["index"]]), width, height, state)
            writer.write(image)
            frame["objects"] = objects
    finally:
        writer.release()
