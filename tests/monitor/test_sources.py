"""Frame sources: videos, folders and cameras, and their one-line errors."""

import cv2
import numpy as np
import pytest

from drowsy.errors import DrowsyError
from drowsy.monitor.sources import FrameSource


def test_an_unreadable_video_is_one_line_error(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(DrowsyError, match="broken.mp4: not a readable video") as err:
        FrameSource(broken)
    assert "\n" not in str(err.value)


def test_frames_of_another_size_end_the_stream_with_one_line(tmp_path):
    cv2.imwrite(str(tmp_path / "frame_000.png"), np.zeros((36, 64), np.uint8))
    cv2.imwrite(str(tmp_path / "frame_001.png"), np.zeros((48, 64), np.uint8))
    with FrameSource(tmp_path) as source:
        assert source.read().shape == (36, 64)
        with pytest.raises(DrowsyError, match="frame_001.png: 64x48 pixels, but the first frame is 64x36") as err:
            source.read()
    assert "\n" not in str(err.value)


def test_unavailable_camera_is_one_line_error():
    with pytest.raises(DrowsyError, match=r"^camera 63: not available") as err:
        FrameSource(63)
    assert "\n" not in str(err.value)


def test_missing_video_is_one_line_error(tmp_path):
    with pytest.raises(DrowsyError, match="nothing.mp4: video not found"):
        FrameSource(tmp_path / "nothing.mp4")
