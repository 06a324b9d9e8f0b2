"""Where frames and detections come from: `FrameSource` (video file, folder of images, camera),
batches of frames decoded ahead in a thread, and a clip's ground-truth boxes as perfect detections."""

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from drowsy import CLASS_IDS
from drowsy.errors import DrowsyError
from drowsy.files import list_images, read_gray, read_json
from drowsy.paths import resolve

FOLDER_FPS = 15.0  # frame rate assumed for a folder of images when none is given (the demo clips')


def truth_detections(frames_json: str | Path) -> tuple[list[np.ndarray], float]:
    """A clip's ground-truth boxes (frames.json of `drowsy.synth.clips.write_clip`) as perfect detections.

    Returns (per frame float32 [n, 6]: x1, y1, x2, y2 pixels, score 1, class_id; the clip's fps).
    """
    path = resolve(frames_json)
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("frames"), list) or "fps" not in document:
        raise DrowsyError(
            f'{path}: field \'frames\': expected {{"fps", "frames": [...]}} as written by drowsy synth --video'
        )
    detections = []
    for i, frame in enumerate(document["frames"]):
        rows = []
        for obj in frame.get("objects", []):
            if obj.get("class") not in CLASS_IDS:
                raise DrowsyError(f"{path}: record {i}: field 'class': unknown class {obj.get('class')!r}")
            rows.append([*obj["position"], 1.0, CLASS_IDS[obj["class"]]])
        detections.append(np.array(rows, np.float32).reshape(-1, 6))
    return detections, float(document["fps"])


class FrameSource:
    """Grayscale frames (uint8 [H, W]) from a video file, a folder of images or a camera index.

    Attributes: name, fps (frames per second), length (frames, None for a camera).
    Use as a context manager; `read()` returns the next frame or None at the end.
    """

    def __init__(self, source: str | int | Path, fps: float | None = None):
        self._capture, self._paths, self._shape = None, None, None
        if isinstance(source, int) or str(source).isdigit():
            self._open_camera(int(source), fps)
            return
        path = resolve(source)
        if path.is_dir():
            self._paths = deque(list_images(path))
            self.name, self.fps, self.length = str(path), fps or FOLDER_FPS, len(self._paths)
            return
        if not path.is_file():
            raise DrowsyError(f"{path}: video not found")
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise DrowsyError(f"{path}: not a readable video (OpenCV cannot open it)")
        self.name = str(path)
        self.fps = fps or self._capture.get(cv2.CAP_PROP_FPS) or FOLDER_FPS
        self.length = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def _open_camera(self, index: int, fps: float | None) -> None:
        logging = cv2.utils.logging
        level = logging.getLogLevel()
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)  # a missing camera makes every backend log its own failure
        try:
            self._capture = cv2.VideoCapture(index)
        finally:
            logging.setLogLevel(level)
        if not self._capture.isOpened():
            self._capture.release()
            raise DrowsyError(
                f"camera {index}: not available (OpenCV cannot open it; check the index, "
                "that it is plugged in and not used by another program)"
            )
        self.name, self.length = f"camera {index}", None
        self.fps = fps or self._capture.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray | None:
        if self._paths is not None:
            return self._read_image() if self._paths else None
        ok, frame = self._capture.read()
        if not ok:
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame

    def _read_image(self) -> np.ndarray:
        path = self._paths.popleft()
        image = read_gray(path)
        self._shape = self._shape or image.shape  # the first frame's
        if image.shape != self._shape:
            raise DrowsyError(
                f"{path}: {image.shape[1]}x{image.shape[0]} pixels, but the first frame is "
                f"{self._shape[1]}x{self._shape[0]}; frames of a stream share one size"
            )
        return image

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def frame_batches(source: FrameSource, batch: int, limit: int | None):
    """Lists of up to `batch` frames, decoded one batch ahead in a thread (OpenCV decoding releases
    the GIL, so it overlaps detection)."""

    def read_batch(count: int) -> list[np.ndarray]:
        frames = []
        while len(frames) < count and (frame := source.read()) is not None:
            frames.append(frame)
        return frames

    remaining = math.inf if limit is None else limit
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read_batch, min(batch, remaining))
        while True:
            frames = pending.result()
            remaining -= len(frames)
            if not frames:
                return
            pending = pool.submit(read_batch, min(batch, remaining))
            yield frames
