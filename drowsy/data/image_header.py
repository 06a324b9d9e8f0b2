"""Image size, channels and EXIF orientation from a file's first bytes, without decoding it.

JPEG and PNG sizes come from the first bytes (SOF marker / IHDR chunk): decoding 273k images would
take minutes, parsing headers takes seconds. Truncation is caught cheaply by the end marker (JPEG
EOI, PNG IEND). Other formats fall back to decoding with OpenCV. Used by `drowsy.data.labels` to
check every record against its image.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from drowsy.progress import progress as progress_bar

DEFAULT_HEADER_WORKERS = 2
_HEADER_CHUNK = 1000  # images per worker task

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"  # chunk type + CRC, the last 8 bytes of every complete PNG
# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG), CC (DAC) share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE = frozenset(range(0xD0, 0xDA)) | {0x01}
_JPEG_APP1, _EXIF_ORIENTATION = 0xE1, 0x0112  # the EXIF segment and its orientation tag
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels after decoding


def read_image_header(path: str | Path) -> tuple[int, int, int, int] | str:
    """(width, height, channels, EXIF orientation) of an image, or the reason it is unusable.

    The orientation is the JPEG's EXIF tag (1-8; 1, "as stored", when there is none and for PNG).
    drowsy reads every image as stored, ignoring the tag (`files.read_gray` too), so sizes, pixels and
    boxes agree; `validate_records` notes each image that has another orientation.

    JPEG and PNG sizes come from the first bytes (SOF marker / IHDR chunk): decoding 273k images
    would take minutes, parsing headers takes seconds. Truncation is caught cheaply by the end
    marker (JPEG EOI, PNG IEND). Other formats fall back to decoding with OpenCV. Raw `os.pread`
    costs half the CPU time of Python file objects, which matters at 273k images.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "image file not found"
    except OSError as err:
        return f"cannot open image ({err.strerror})"
    try:
        head = os.pread(fd, _HEAD, 0)
        if head.startswith(_JPEG_SOI):
            return _jpeg_header(fd, head)
        if head.startswith(_PNG_SIGNATURE):
            return _png_header(fd, head)
    except OSError as err:
        return f"cannot read image ({err.strerror})"
    finally:
        os.close(fd)
    if not head:
        return "empty image file"
    return _decoded_header(path)


_HEAD = 4096  # bytes read first: a file shorter than this is then read whole
_TRAILER = 64 * 1024  # bytes at a file's end searched for its end marker
_TAIL = 32  # bytes at a file's end looked at first: the end marker, maybe zero padding after it


def _ends_with(fd: int, head: bytes, marker: bytes, after: int) -> bool:
    """Whether the end marker is in the file's last `_TRAILER` bytes past offset `after` (the frame
    header: an EXIF thumbnail's own end marker comes before it). Encoders and cameras may pad or
    append data after the end marker (block padding, maker trailers), which decoders ignore; a file
    cut off in its image data has no end marker at all (nor one cut off before `after`).

    `head`, the file's first bytes, is the whole file when shorter than `_HEAD`; otherwise the last
    `_TAIL` bytes are read, and only when they do not end in the marker (zero padding aside), the
    `_TRAILER`: one small read for almost every image instead of 64 KiB."""
    if len(head) < _HEAD:
        return marker in head[after:]
    size = os.fstat(fd).st_size
    if os.pread(fd, _TAIL, max(after, size - _TAIL)).rstrip(b"\0").endswith(marker):
        return True
    begin = max(after, size - _TRAILER)
    return begin < size and marker in os.pread(fd, size - begin, begin)


def _exif_orientation(segment: bytes) -> int:
    """The EXIF orientation tag (1-8) of an APP1 segment's payload, 1 when it has none or is unreadable."""
    tiff = segment[6:]
    if not segment.startswith(b"Exif\0\0") or tiff[:2] not in (b"II", b"MM") or len(tiff) < 8:
        return 1
    order = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        if int.from_bytes(tiff[entry : entry + 2], order) == _EXIF_ORIENTATION:
            value = int.from_bytes(tiff[entry + 8 : entry + 10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def _jpeg_header(fd: int, head: bytes) -> tuple[int, int, int, int] | str:
    buffer, start, pos = head, 0, 2  # buffer holds the file's bytes from offset `start`
    orientation = 1
    while True:
        if pos + 10 > start + len(buffer):
            buffer, start = os.pread(fd, 4096, pos), pos
            if len(buffer) < 4:
                return "truncated JPEG: no frame header"
        at = pos - start
        if buffer[at] != 0xFF:
            return "corrupt JPEG: bad marker"
        marker = buffer[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_SOF:
            if len(buffer) < at + 10:
                return "truncated JPEG: frame header cut off"
            height = int.from_bytes(buffer[at + 5 : at + 7], "big")
            width = int.from_bytes(buffer[at + 7 : at + 9], "big")
            channels = buffer[at + 9]
            if not (width and height and channels):
                return f"corrupt JPEG: frame header says {width}x{height}x{channels}"
            if not _ends_with(fd, head, _JPEG_EOI, start + at + 10):
                return "truncated JPEG: no end-of-image marker"
            return width, height, channels, orientation
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return "corrupt JPEG: no frame header before the image data"
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(buffer[at + 2 : at + 4], "big")
        if marker == _JPEG_APP1:  # EXIF: its orientation tag sits in the first entries
            orientation = _exif_orientation(os.pread(fd, min(length - 2, 4096), pos + 4))
        pos += 2 + length


def _png_header(fd: int, head: bytes) -> tuple[int, int, int, int] | str:
    if len(head) < 26 or head[12:16] != b"IHDR":
        return "corrupt PNG: no IHDR chunk"
    width = int.from_bytes(head[16:20], "big")
    height = int.from_bytes(head[20:24], "big")
    channels = _PNG_CHANNELS.get(head[25])
    if not (width and height and channels):
        return f"corrupt PNG: header says {width}x{height}, colour type {head[25]}"
    if not _ends_with(fd, head, _PNG_IEND, 33):
        return "truncated PNG: no IEND chunk"
    return width, height, channels, 1


def _decoded_header(path: str | Path) -> tuple[int, int, int, int] | str:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return "unreadable image (not a format OpenCV can decode)"
    return image.shape[1], image.shape[0], 1 if image.ndim == 2 else image.shape[2], 1


def _read_header_chunk(task: tuple[str, list[str]]) -> list[tuple[int, int, int, int] | str]:
    image_root, file_names = task
    return [read_image_header(os.path.join(image_root, name)) for name in file_names]


def read_image_headers(
    image_root: str | Path, file_names: list[str], workers: int | None = None, progress: bool = False
) -> list[tuple[int, int, int, int] | str]:
    """`read_image_header` for each of `file_names` (relative to `image_root`), in order.

    `workers` threads overlap the waits for the disk; the parsing needs little CPU (about 9 us per
    image), so threads beat processes here: no start-up, no pickling, no second copy of the labels,
    and none of the "spawn re-imports __main__" pitfalls. Default 2: more threads only help a cold
    disk, and on a warm page cache 4+ threads double the CPU time (GIL hand-offs).
    """
    workers = DEFAULT_HEADER_WORKERS if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root = str(image_root)
    tasks = [(root, file_names[i : i + _HEADER_CHUNK]) for i in range(0, len(file_names), _HEADER_CHUNK)]
    with progress_bar(total=len(file_names), desc="image headers", unit="img", enabled=progress) as bar:
        if workers == 1 or len(tasks) == 1:
            return _collect(map(_read_header_chunk, tasks), bar)
        with ThreadPoolExecutor(workers) as pool:
            return _collect(pool.map(_read_header_chunk, tasks), bar)


def _collect(chunks, bar) -> list:
    headers = []
    for chunk in chunks:
        headers.extend(chunk)
        bar.update(len(chunk))
    return headers
