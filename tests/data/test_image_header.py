"""Image headers: size, channels and EXIF orientation read from JPEG and PNG bytes, without decoding."""

import cv2
import pytest

from drowsy.data.image_header import read_image_header, read_image_headers
from drowsy.data.labels import validate_records
from tests.helpers import EOI, JFIF, SCAN, SOI, encoded, jpeg_frame, jpeg_segment, write_image


@pytest.mark.parametrize(
    "name, width, height, channels",
    [
        ("gray.jpg", 32, 18, 1),
        ("colour.jpg", 40, 30, 3),
        ("upper.JPG", 17, 9, 3),
        ("gray.png", 21, 13, 1),
        ("colour.png", 32, 18, 3),
        ("alpha.png", 8, 6, 4),
        ("fallback.bmp", 12, 7, 3),
        ("fallback.pgm", 12, 7, 1),  # decoded to a 2-D array
    ],
)
def test_header_matches_decoded_image(tmp_path, name, width, height, channels):
    path = write_image(tmp_path / name, width, height, channels)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert decoded.shape[:2] == (height, width)
    assert read_image_header(path) == (width, height, channels, 1)


def test_jpeg_header_after_a_large_app_segment(tmp_path):
    # An EXIF-sized segment pushes the frame header past the first 4096 bytes read.
    data = write_image(tmp_path / "a.jpg", 30, 20, 3).read_bytes()
    payload = bytes(10000)
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    (tmp_path / "exif.jpg").write_bytes(data[:2] + app1 + data[2:])
    assert read_image_header(tmp_path / "exif.jpg") == (30, 20, 3, 1)


@pytest.mark.parametrize("suffix, keep", [(".jpg", 0.6), (".png", 0.6), (".jpg", 0.02)])
def test_truncated_image_is_reported(tmp_path, suffix, keep):
    data = write_image(tmp_path / f"full{suffix}", 64, 48, 3).read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: int(len(data) * keep)])
    assert "truncated" in read_image_header(tmp_path / f"cut{suffix}")


def test_unusable_files_give_a_reason(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    assert "unreadable" in read_image_header(tmp_path / "text.jpg")
    assert read_image_header(tmp_path / "empty.png") == "empty image file"
    assert "not found" in read_image_header(tmp_path / "missing.jpg")


def test_threaded_headers_match_one_by_one_in_order(tmp_path):
    write_image(tmp_path / "a.jpg", 32, 18, 1)
    write_image(tmp_path / "b.png", 20, 10, 3)
    names = ["a.jpg", "b.png", "missing.jpg"] * 900  # several chunks of work
    expected = [(32, 18, 1, 1), (20, 10, 3, 1), "image file not found"] * 900
    assert read_image_headers(tmp_path, names[:3]) == expected[:3]  # one chunk
    assert read_image_headers(tmp_path, names, workers=3) == expected
    assert read_image_headers(tmp_path, names, workers=1) == expected


def test_header_progress_is_off_by_default_and_counts_the_images(tmp_path, monkeypatch, capsys):
    write_image(tmp_path / "a.jpg")
    records = [{"file_name": "a.jpg", "objects": []}, {"file_name": "b.jpg", "objects": []}]
    monkeypatch.setenv("DROWSY_PROGRESS", "lines")
    validate_records(records, tmp_path)
    read_image_headers(tmp_path, ["a.jpg"])
    assert capsys.readouterr().out == ""
    validate_records(records, tmp_path, progress=True)
    assert capsys.readouterr().out.startswith("image headers: 2 img in ")  # one closing line in a log
    monkeypatch.setenv("DROWSY_PROGRESS", "bars")
    read_image_headers(tmp_path, ["a.jpg", "b.jpg", "c.jpg"], progress=True)
    assert "image headers: 100%" in capsys.readouterr().err  # a watched bar knows its total


@pytest.mark.parametrize(
    "body, expected",
    [
        (JFIF + jpeg_frame(40, 30, 3) + SCAN, (40, 30, 3, 1)),
        (JFIF + jpeg_segment(0xC4, bytes(29)) + jpeg_frame(40, 30) + SCAN, (40, 30, 1, 1)),  # DHT is no frame
        (JFIF + jpeg_segment(0xCC, bytes(4)) + jpeg_frame(41, 31) + SCAN, (41, 31, 1, 1)),  # nor is DAC
        (JFIF + jpeg_frame(640, 480, 3, marker=0xC2) + SCAN, (640, 480, 3, 1)),  # progressive
        (b"\xff\xff\xff" + JFIF + b"\xff\xff" + jpeg_frame(40, 30) + SCAN, (40, 30, 1, 1)),  # fill bytes
        (JFIF + b"\xff\x01" + jpeg_frame(40, 30) + SCAN, (40, 30, 1, 1)),  # TEM has no length field
        (JFIF + jpeg_frame(65535, 258) + SCAN, (65535, 258, 1, 1)),  # sizes are big-endian
        # 2 + 4084 bytes before the frame: its 10-byte header ends exactly at the end of the first 4096 read
        (jpeg_segment(0xE0, bytes(4080)) + jpeg_frame(40, 30) + SCAN, (40, 30, 1, 1)),
    ],
    ids=[
        "baseline",
        "dht-first",
        "dac-first",
        "progressive",
        "fill-bytes",
        "tem-marker",
        "big-endian",
        "frame-ends-at-4096",
    ],
)
def test_hand_made_jpeg_header_is_read_from_its_frame_segment(tmp_path, body, expected):
    (tmp_path / "a.jpg").write_bytes(SOI + body + EOI)
    assert read_image_header(tmp_path / "a.jpg") == expected


def decoded_size(path) -> tuple[int, int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image.shape[1], image.shape[0], 1 if image.ndim == 2 else image.shape[2]


def baseline_with_fill_bytes() -> bytes:
    data = encoded(".jpg", 37, 23, 3)
    frame = data.index(b"\xff\xc0")
    return data[:frame] + b"\xff" * 5 + data[frame:]


@pytest.mark.parametrize(
    "make",
    [
        baseline_with_fill_bytes,
        lambda: encoded(".jpg", 37, 23, 3, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
        lambda: encoded(".jpg", 37, 23) + bytes(16),  # zero padding after EOI
        lambda: encoded(".png", 37, 23, 4) + bytes(16),  # zero padding after IEND
        lambda: encoded(".jpg", 37, 23) + bytes(4096),  # padded to a block
        lambda: encoded(".jpg", 37, 23) + b"\xff" * 4 + b"maker trailer" * 50,  # a camera's data after EOI
        lambda: encoded(".png", 37, 23) + b"\x01" * 3000,
    ],
    ids=[
        "fill-bytes-before-frame",
        "progressive",
        "jpeg-zero-padding",
        "png-zero-padding",
        "jpeg-block-padding",
        "jpeg-trailer",
        "png-trailer",
    ],
)
def test_opencv_images_with_unusual_layout_match_decoded_size(tmp_path, make):
    path = tmp_path / "image.bin"
    path.write_bytes(make())
    header = read_image_header(path)
    assert header == (*decoded_size(path), 1) and header[:2] == (37, 23)


@pytest.mark.parametrize(
    "tail, complete",
    [
        (b"", True),  # ends in the marker: the 32-byte tail read finds it
        (bytes(100), True),  # zero padding longer than the tail
        (b"\xff" * 4 + b"maker trailer" * 400, True),  # 5 KB of a camera's data after EOI: the 64 KiB search
        (None, False),  # cut off in the scan data
    ],
    ids=["marker-at-end", "long-zero-padding", "long-trailer", "truncated"],
)
def test_images_longer_than_the_first_read_are_checked_for_their_end_marker(tmp_path, tail, complete):
    data = encoded(".jpg", 160, 120)  # noise: far more than the 4096 bytes read first
    assert len(data) > 3 * 4096
    path = tmp_path / "image.jpg"
    path.write_bytes(data[: len(data) // 2] if tail is None else data + tail)
    expected = (160, 120, 1, 1) if complete else "truncated JPEG: no end-of-image marker"
    assert read_image_header(path) == expected


def png_with_header(width: int, height: int, colour_type: int) -> bytes:
    """A real 5x3 PNG whose IHDR is rewritten (its CRC left stale: the header reader does not check it)."""
    data = bytearray(encoded(".png", 5, 3))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[25] = colour_type
    return bytes(data)


@pytest.mark.parametrize(
    "data, reason",
    [
        (png_with_header(0, 3, 0), "corrupt PNG: header says 0x3, colour type 0"),
        (png_with_header(5, 0, 0), "corrupt PNG: header says 5x0, colour type 0"),
        (png_with_header(5, 3, 5), "corrupt PNG: header says 5x3, colour type 5"),  # no colour type 5 exists
        (b"\x89PNG\r\n\x1a\n", "corrupt PNG: no IHDR chunk"),
        (b"\x89PNG\r\n\x1a\n" + bytes(4) + b"IDAT" + bytes(30), "corrupt PNG: no IHDR chunk"),
        (b"\x89PNG\r\n\x1a\x0b" + encoded(".png", 5, 3)[8:], "unreadable image (not a format OpenCV can decode)"),
        (encoded(".png", 5, 3)[:-12], "truncated PNG: no IEND chunk"),
        (encoded(".png", 5, 3)[:26], "truncated PNG: no IEND chunk"),  # cut right after the colour type
        (encoded(".png", 5, 3)[:33], "truncated PNG: no IEND chunk"),  # cut right after the IHDR chunk
    ],
    ids=[
        "zero-width",
        "zero-height",
        "bad-colour-type",
        "signature-only",
        "idat-first",
        "bad-signature",
        "no-iend",
        "cut-after-colour-type",
        "cut-after-ihdr",
    ],
)
def test_corrupt_png_gives_one_line_reason(tmp_path, data, reason):
    (tmp_path / "bad.png").write_bytes(data)
    assert read_image_header(tmp_path / "bad.png") == reason and "\n" not in reason


def test_png_colour_types_give_decoded_channels(tmp_path):
    for channels in (1, 3, 4):
        (tmp_path / "a.png").write_bytes(encoded(".png", 6, 4, channels))
        assert read_image_header(tmp_path / "a.png") == (*decoded_size(tmp_path / "a.png"), 1)
    (tmp_path / "gray_alpha.png").write_bytes(png_with_header(5, 3, 4))
    assert read_image_header(tmp_path / "gray_alpha.png") == (5, 3, 2, 1)  # gray + alpha


def test_png_sizes_are_four_byte_big_endian(tmp_path):
    (tmp_path / "huge.png").write_bytes(png_with_header(2**24 + 5, 2**25 + 3, 2))
    assert read_image_header(tmp_path / "huge.png") == (16_777_221, 33_554_435, 3, 1)


def tiff_ifd(entries: list[tuple[int, int]], order: str = "little", next_ifd: int = 0) -> bytes:
    """A TIFF IFD: its entry count, (tag, SHORT value) `entries`, the offset of the next IFD (0: none)."""
    return (
        len(entries).to_bytes(2, order)
        + b"".join(
            tag.to_bytes(2, order)
            + (3).to_bytes(2, order)
            + (1).to_bytes(4, order)
            + value.to_bytes(2, order)
            + bytes(2)
            for tag, value in entries
        )
        + next_ifd.to_bytes(4, order)
    )


def tiff_app1(
    entries: list[tuple[int, int]], byte_order: str = "II", ifd_offset: int = 8, pad: bool = True, cut: int = 0
) -> bytes:
    """An EXIF APP1 segment whose first IFD holds (tag, SHORT value) `entries`, at `ifd_offset` (or, without
    `pad`, right after the TIFF header whatever the offset says); `cut` bytes short at its end."""
    order = "little" if byte_order == "II" else "big"
    tiff = byte_order.encode() + (42).to_bytes(2, order) + ifd_offset.to_bytes(4, order)
    payload = b"Exif\0\0" + tiff + bytes(ifd_offset - 8 if pad else 0) + tiff_ifd(entries, order)
    return jpeg_segment(0xE1, payload[: len(payload) - cut])


# IFD0 (the image's) at offset 256 with one entry, and IFD1 (the thumbnail's) right after it at 274
# (little-endian 274 reads as the orientation tag 0x0112 where IFD0's entries end).
THUMBNAIL_IFD_TIFF = (
    b"II"
    + (42).to_bytes(2, "little")
    + (256).to_bytes(4, "little")
    + bytes(248)
    + tiff_ifd([(0x0101, 20)], next_ifd=274)
    + tiff_ifd([(0x0112, 6)])
)


@pytest.mark.parametrize(
    "app1, orientation",
    [
        (tiff_app1([(0x010F, 7), (0x0110, 2), (0x0112, 8)], "MM"), 8),  # after other tags
        (tiff_app1([(0x0112, 3)], "II", ifd_offset=20), 3),  # IFD not right after the TIFF header
        (tiff_app1([(0x0112, 0)]), 1),  # out of range: as stored
        (tiff_app1([(0x0112, 9)]), 1),
        (tiff_app1([(0x0110, 6)]), 1),  # the value 6 under another tag
        (tiff_app1([(0x0112, 6)], "XX"), 1),  # no byte order mark
        (tiff_app1([(0x0112, 6)], "II", ifd_offset=4000, pad=False), 1),  # IFD offset past the segment
        (jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"), 1),  # XMP, not EXIF
        (tiff_app1([(0x0100, 274), (0x0112, 6)]), 6),  # entries are 12 bytes apart: 274 is no tag
        (tiff_app1([(0x0112, 6)], cut=4), 6),  # the segment ends right after the entry (no next-IFD offset)
        (tiff_app1([(0x0112, 6)], cut=5), 1),  # the segment cuts the entry short
        (jpeg_segment(0xE1, b"Exif\0\0" + THUMBNAIL_IFD_TIFF), 1),  # the thumbnail's orientation is not the image's
    ],
    ids=[
        "after-other-tags",
        "ifd-further-on",
        "zero",
        "nine",
        "other-tag",
        "no-byte-order",
        "ifd-past-segment",
        "xmp",
        "value-274-before",
        "entry-ends-the-segment",
        "entry-cut-short",
        "thumbnail-ifd",
    ],
)
def test_exif_orientation_read_only_from_a_valid_orientation_tag(tmp_path, app1, orientation):
    data = encoded(".jpg", 30, 20)
    (tmp_path / "a.jpg").write_bytes(data[:2] + app1 + data[2:])
    assert read_image_header(tmp_path / "a.jpg") == (30, 20, 1, orientation)


def test_header_workers_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        read_image_headers(tmp_path, ["a.jpg"], workers=0)
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        validate_records([{"file_name": "a.jpg", "objects": []}], tmp_path, workers=0)


def test_a_thumbnails_end_marker_does_not_hide_a_truncated_jpeg(tmp_path):
    data = encoded(".jpg", 37, 23)
    thumbnail = b"Exif\0\0" + b"\xff\xd8 a thumbnail \xff\xd9"  # its own end marker, before the frame header
    app1 = b"\xff\xe1" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:2] + app1 + data[2:-40])  # cut off in the image data
    assert read_image_header(path) == "truncated JPEG: no end-of-image marker"
    path.write_bytes(data[:2] + app1 + data[2:])
    assert read_image_header(path)[:2] == (37, 23)
